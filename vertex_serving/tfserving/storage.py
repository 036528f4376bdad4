"""Brings `AIP_STORAGE_URI` to a local directory: a local path as is, `gs://` through google-cloud-storage.

google-cloud-storage honours `STORAGE_EMULATOR_HOST`, so the same code reads from Cloud Storage or from the
local GCS emulator. Object names are checked so that none can write outside the cache directory.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from vertex_serving.tfserving.errors import ServingError


def fetch_model(uri: str, cache_dir: Path) -> Path:
    if not uri.startswith("gs://"):
        path = Path(uri.removeprefix("file://")).expanduser()
        if not path.is_dir():
            raise ServingError("NOT_FOUND", f"AIP_STORAGE_URI {uri} is not a directory")
        return path
    from google.cloud import storage

    bucket_name, _, prefix = uri.removeprefix("gs://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    client = storage.Client()
    bucket = client.bucket(bucket_name)
    # Download by name, not by each listing's mediaLink: an emulator restarted on another port lists stale links.
    blobs = [bucket.blob(b.name) for b in client.list_blobs(bucket_name, prefix=prefix) if not b.name.endswith("/")]
    if not blobs:
        raise ServingError("NOT_FOUND", f"AIP_STORAGE_URI {uri} holds no objects")
    root = cache_dir.resolve()
    for blob in blobs:
        target = safe_target(root, blob.name[len(prefix) :])
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
    return root


def safe_target(root: Path, relative: str) -> Path:
    """`root/relative`, refusing absolute names and `..` parts that would escape `root`."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or any(p in ("..", ".") for p in parts):
        raise ServingError("INVALID_ARGUMENT", f"Refusing object name {relative!r}: it would leave the model folder")
    target = root.joinpath(*parts).resolve()
    if not target.is_relative_to(root):
        raise ServingError("INVALID_ARGUMENT", f"Refusing object name {relative!r}: it would leave the model folder")
    return target
