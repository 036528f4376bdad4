"""The runtime catalog: which serving image a container version offers per accelerator, and until when.

The facts live in `catalog.toml` (data, not code): Google publishes new versions and retires old ones, so users
extend or override it with a file of the same schema instead of waiting for a release of this package.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import UserError

PACKAGED_CATALOG = Path(__file__).with_name("catalog.toml")
ACCELERATORS = ("cpu", "gpu", "tpu")
RUNTIMES = ("optimized", "standard")
_VERSION_KEYS = {"nightly", "end_of_patches", "end_of_availability", *ACCELERATORS}
_IMAGE_KEYS = {"optimized", "standard", "cuda"}


@dataclass(frozen=True)
class Image:
    """One serving image: a container version on one accelerator with one runtime."""

    version: str
    accelerator: str
    runtime: str
    uri: str
    cuda: int | None = None
    end_of_patches: dt.date | None = None
    end_of_availability: dt.date | None = None
    nightly: bool = False

    def usable(self, as_of: dt.date) -> bool:
        """New deployments are refused after the end-of-availability date (the date itself still works)."""
        return self.end_of_availability is None or as_of <= self.end_of_availability

    def status(self, as_of: dt.date) -> str:
        if self.nightly:
            return "usable (nightly: no SLA)"
        if not self.usable(as_of):
            return f"past end of availability ({self.end_of_availability})"
        if self.end_of_patches and as_of > self.end_of_patches:
            return f"usable until {self.end_of_availability} (no patches since {self.end_of_patches})"
        return "usable"


@dataclass(frozen=True)
class Resolved:
    """An image chosen for a configuration, with what the user should hear about it."""

    image: Image
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    images: tuple[Image, ...]
    prebuilt: Mapping[str, Mapping[str, object]]
    tpu_machine_types: Mapping[str, int]
    gpu_families: Mapping[str, tuple[str, ...]]
    gpu_unsupported_by_optimized: Mapping[str, str]

    def versions(self) -> list[str]:
        """Container versions, nightly first, then newest to oldest."""
        return sorted({i.version for i in self.images}, key=_version_key, reverse=True)

    def select(self, accelerator: str | None = None, runtime: str | None = None) -> list[Image]:
        found = [i for i in self.images if accelerator in (None, i.accelerator) and runtime in (None, i.runtime)]
        return sorted(
            found,
            key=lambda i: (_version_key(i.version), -ACCELERATORS.index(i.accelerator), i.runtime == "optimized"),
            reverse=True,
        )

    def find(self, uri: str) -> Image | None:
        """The catalog entry for an image URI, so a deploy can tell which runtime a model asked for."""
        return next((i for i in self.images if i.uri == uri), None)

    def resolve_image(
        self,
        container_version: str,
        accelerator: str,
        runtime: str = "optimized",
        as_of: dt.date | None = None,
        allow_unavailable_image: bool = False,
    ) -> Resolved:
        """The image for `(container_version, accelerator, runtime)` on `as_of`, or a UserError naming the fix."""
        as_of = as_of or dt.date.today()
        if accelerator not in ACCELERATORS:
            raise UserError("accelerator", accelerator, "is not an accelerator", f"use one of {_join(ACCELERATORS)}")
        if runtime not in RUNTIMES:
            raise UserError("runtime", runtime, "is not a runtime", f"use one of {_join(RUNTIMES)}")
        known = self.versions()
        if container_version not in known:
            raise UserError(
                "container_version",
                container_version,
                "is not in the catalog",
                f"use one of {_join(known)}, or add it with --catalog FILE",
            )
        same_version = [i for i in self.images if i.version == container_version]
        if not any(i.accelerator == accelerator for i in same_version):
            offering = _join(v for v in known if self._has(v, accelerator, None))
            raise UserError(
                "container_version",
                container_version,
                f"has no {accelerator} image",
                f"use a version that offers {accelerator}: {offering}",
            )
        image = next((i for i in same_version if i.accelerator == accelerator and i.runtime == runtime), None)
        if image is None:
            offering = _join(v for v in known if self._has(v, accelerator, runtime))
            raise UserError(
                "runtime",
                runtime,
                f"has no image for container_version={container_version!r} on {accelerator}",
                "use runtime='optimized'" + (f", or a version with a {runtime} image: {offering}" if offering else ""),
            )
        warnings: list[str] = []
        if image.nightly:
            warnings.append(
                f"container_version={container_version!r} is a nightly image with no SLA: pin a stable version for production"
            )
        elif not image.usable(as_of):
            if not allow_unavailable_image:
                usable = _join(v for v in known if self._usable(v, accelerator, runtime, as_of))
                raise UserError(
                    "container_version",
                    container_version,
                    f"reached end of availability on {image.end_of_availability} (as of {as_of}) and cannot serve new deployments",
                    f"use {usable or 'a newer version'} (extend the catalog with --catalog FILE for versions Google "
                    "published since), or set allow_unavailable_image=true to try it anyway",
                )
            warnings.append(
                f"container_version={container_version!r} is past end of availability ({image.end_of_availability}); "
                "allow_unavailable_image=true was set, so it is used anyway"
            )
        elif image.end_of_patches and as_of > image.end_of_patches:
            warnings.append(
                f"container_version={container_version!r} gets no patches since {image.end_of_patches} "
                f"and is unavailable after {image.end_of_availability}"
            )
        return Resolved(image, tuple(warnings))

    def newest_usable(self, accelerator: str, runtime: str = "optimized", as_of: dt.date | None = None) -> str:
        """The default container version: the newest stable one usable on `as_of`, else nightly."""
        as_of = as_of or dt.date.today()
        usable = [i for i in self.select(accelerator, runtime) if i.usable(as_of)]
        stable = [i for i in usable if not i.nightly]
        chosen = (stable or usable or [None])[0]
        if chosen is None:
            raise UserError(
                "container_version",
                "",
                f"has no default: no {runtime} {accelerator} image is usable on {as_of}",
                "extend the catalog with --catalog FILE, or name a version and set allow_unavailable_image=true",
            )
        return chosen.version

    def _has(self, version: str, accelerator: str, runtime: str | None) -> bool:
        return any(i.version == version for i in self.select(accelerator, runtime))

    def _usable(self, version: str, accelerator: str, runtime: str, as_of: dt.date) -> bool:
        return any(i.version == version and i.usable(as_of) for i in self.select(accelerator, runtime))


def load_catalog(*overrides: str | Path) -> Catalog:
    """The packaged catalog, with each override file merged over it in order (its entries win)."""
    data = _read(PACKAGED_CATALOG)
    for path in overrides:
        _merge(data, _read(Path(path)))
    return _build(data, str(overrides[-1]) if overrides else str(PACKAGED_CATALOG))


def _read(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserError("catalog", str(path), "does not exist", "give the path of a TOML catalog file") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError("catalog", str(path), f"is not valid TOML ({e})", "fix the file") from None


def _merge(base: dict, extra: Mapping) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _build(data: Mapping, source: str) -> Catalog:
    def bad(key: str, problem: str, fix: str) -> UserError:
        return UserError("catalog", source, f"{problem} at {key}", fix)

    images = []
    for version, entry in data.get("versions", {}).items():
        unknown = set(entry) - _VERSION_KEYS
        if unknown:
            raise bad(f"versions.{version}", f"has unknown keys {sorted(unknown)}", f"use only {sorted(_VERSION_KEYS)}")
        nightly = bool(entry.get("nightly", False))
        if not nightly and not _is_numeric(version):
            raise bad(f"versions.{version}", "has a version that is neither X.Y nor nightly", "add nightly = true")
        dates = {k: entry.get(k) for k in ("end_of_patches", "end_of_availability")}
        for key, value in dates.items():
            if value is not None and not isinstance(value, dt.date):
                raise bad(f"versions.{version}.{key}", f"has {value!r}, not a date", "write a TOML date: 2025-08-15")
        for accelerator in ACCELERATORS:
            spec = entry.get(accelerator)
            if spec is None:
                continue
            unknown = set(spec) - _IMAGE_KEYS
            if unknown:
                raise bad(
                    f"versions.{version}.{accelerator}",
                    f"has unknown keys {sorted(unknown)}",
                    f"use only {sorted(_IMAGE_KEYS)}",
                )
            for runtime in RUNTIMES:
                if spec.get(runtime):
                    images.append(
                        Image(version, accelerator, runtime, spec[runtime], spec.get("cuda"), nightly=nightly, **dates)
                    )
    machines = data.get("machine_types", {})
    return Catalog(
        images=tuple(images),
        prebuilt=data.get("prebuilt", {}),
        tpu_machine_types=dict(machines.get("tpu", {})),
        gpu_families={k: tuple(v) for k, v in machines.get("gpu", {}).items()},
        gpu_unsupported_by_optimized=dict(machines.get("gpu_unsupported_by_optimized", {})),
    )


def _is_numeric(version: str) -> bool:
    return all(p.isdigit() for p in version.split("."))


def _version_key(version: str) -> tuple[float, ...]:
    return (float("inf"),) if not _is_numeric(version) else tuple(float(p) for p in version.split("."))


def _join(items) -> str:
    return ", ".join(str(i) for i in items)
