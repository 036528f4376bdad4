"""TF Serving's REST routing: which call a `/v1/...` request is, as http_rest_api_util.cc's ParseModelInfo reads it.

Every path under `/v1/` (any case) is TF Serving's; one that names no call is refused with 400 "Malformed
request", not 404. The model name and label are percent-decoded; the version must fit an int64.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote

from vertex_serving.tfserving.errors import ServingError

_VERSION_OR_LABEL = r"(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?"
_PREDICTION = re.compile(rf"/v1/models/([^/:]+){_VERSION_OR_LABEL}:(classify|regress|predict)", re.IGNORECASE)
_MODEL_STATUS = re.compile(rf"/v1/models(?:/([^/:]+))?{_VERSION_OR_LABEL}(?:/(metadata))?", re.IGNORECASE)
_INT64_MAX = 2**63 - 1
_CORS_ORIGIN = re.compile(r"https?://")


@dataclass(frozen=True)
class Call:
    """One REST call. `verb` is "classify", "regress" or "predict" for POST; GET reads status or "metadata"."""

    http_method: str
    path: str
    model: str = ""
    version: int | None = None
    label: str | None = None
    verb: str = ""
    metadata: bool = False

    def malformed(self) -> ServingError:
        return ServingError("INVALID_ARGUMENT", f"Malformed request: {self.http_method} {self.path}")


@functools.lru_cache(maxsize=1024)
def parse_call(http_method: str, path: str) -> Call:
    """The call a request makes; a path that names none is refused with `Malformed request`.

    `path` is the raw (still percent-encoded) path without the query string, as TF Serving matches it. Clients
    send the same few paths over and over: each is parsed once (a refusal raises and is not kept).
    """
    pattern = {"POST": _PREDICTION, "GET": _MODEL_STATUS}.get(http_method)
    match = pattern.fullmatch(path) if pattern else None
    if not match:
        raise Call(http_method, path).malformed()
    name, version, label, tail = match.groups()
    if version is not None and int(version) > _INT64_MAX:
        raise ServingError("INVALID_ARGUMENT", f"Failed to convert version: {version} to numeric.")
    call = Call(
        http_method,
        path,
        model=unquote(name or ""),
        version=None if version is None else int(version),
        label=None if label is None else unquote(label),
    )
    # The verb and "metadata" match in any case, but only their lower-case spelling selects them.
    if http_method == "POST":
        if tail not in ("classify", "regress", "predict"):
            raise call.malformed()
        return Call(**{**vars(call), "verb": tail})
    if not call.model:
        raise ServingError("INVALID_ARGUMENT", "Missing model name in request.")
    return Call(**{**vars(call), "metadata": tail == "metadata"})


def check_preflight(origin: str) -> None:
    """A CORS preflight (OPTIONS) passes when its Origin header holds an http(s) origin, as TF Serving checks it."""
    if not _CORS_ORIGIN.search(origin):
        raise ServingError("FAILED_PRECONDITION", "Origin header is missing in CORS preflight")
