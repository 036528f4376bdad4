"""The runtime catalog: which serving image a container version offers per accelerator, and until when.

The facts live in `catalog.toml` (data, not code): Google publishes new versions and retires old ones, so users
extend or override it with TOML of the same schema (a file, text, or a gs:// URI) instead of waiting for a release
of this package. Machine facts (TPU v5e types, GPU families, default machine types) live there too, read by the
rules and by localvertex alike.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclasses_field
from pathlib import Path

from vertex_serving.errors import UserError

PACKAGED_CATALOG = Path(__file__).with_name("catalog.toml")
ACCELERATORS = ("cpu", "gpu", "tpu")
RUNTIMES = ("optimized", "standard")
_VERSION_KEYS = {"nightly", "end_of_patches", "end_of_availability", "cuda", *ACCELERATORS}
# Where a fix should send the user, by where the catalog was read.
EXTEND_WITH_FLAG = "add it with --catalog FILE"
EXTEND_WITH_PARAMETER = "add it with the pipeline parameter catalog (TOML text or a gs:// URI)"


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
    tpu_machine_prefixes: tuple[str, ...]
    tpu_accelerators_not_served: tuple[str, ...]
    default_machine_types: Mapping[str, str]
    gpu_families: Mapping[str, tuple[str, ...]]
    gpu_unsupported_by_optimized: Mapping[str, str]
    machine_families: Mapping[str, tuple[str, ...]] = dataclasses_field(default_factory=dict)
    locations: tuple[str, ...] = ()
    extend_hint: str = EXTEND_WITH_FLAG
    memory_gb_per_vcpu: Mapping[str, float] = dataclasses_field(default_factory=dict)
    per_gpu: Mapping[str, Mapping[str, float]] = dataclasses_field(default_factory=dict)

    def machine_types(self) -> list[str]:
        """Every machine type Vertex AI serves on: the families' sizes and the TPU v5e types."""
        return [f"{f}-{s}" for f, sizes in self.machine_families.items() for s in sizes] + list(self.tpu_machine_types)

    def known_machine_type(self, machine_type: str) -> bool:
        return machine_type in self.tpu_machine_types or any(
            machine_type == f"{family}-{size}" for family, sizes in self.machine_families.items() for size in sizes
        )

    def machine_resources(self, machine_type: str) -> tuple[int, float] | None:
        """(vCPUs, GB of memory) of a machine type, or None where the catalog does not know its size."""
        family, _, size = machine_type.rpartition("-")
        if family in self.memory_gb_per_vcpu and size.isdigit():
            return int(size), int(size) * float(self.memory_gb_per_vcpu[family])
        if family in self.per_gpu and size.endswith("g") and size[:-1].isdigit():
            gpus, sizes = int(size[:-1]), self.per_gpu[family]
            return int(gpus * sizes["vcpus"]), gpus * float(sizes["memory_gb"])
        return None

    def tpu_chips(self, machine_type: str) -> int | None:
        """TPU v5e chips of a machine type Vertex AI serves on, None for any other machine type."""
        return self.tpu_machine_types.get(machine_type)

    def is_cloud_tpu(self, machine_type: str) -> bool:
        """Any Cloud TPU machine type, served or not (ct4p, ct5p, ct6e... are TPU VMs Vertex does not serve on)."""
        return machine_type in self.tpu_machine_types or machine_type.startswith(self.tpu_machine_prefixes)

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
                f"use one of {_join(known)}, or {self.extend_hint}",
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
                    f"use {usable or 'a newer version'} ({self.extend_hint} for versions Google published since), "
                    "or set allow_unavailable_image=true to try it anyway",
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
                f"{self.extend_hint}, or name a version and set allow_unavailable_image=true",
            )
        return chosen.version

    def _has(self, version: str, accelerator: str, runtime: str | None) -> bool:
        return any(i.version == version for i in self.select(accelerator, runtime))

    def _usable(self, version: str, accelerator: str, runtime: str, as_of: dt.date) -> bool:
        return any(i.version == version and i.usable(as_of) for i in self.select(accelerator, runtime))


def load_catalog(*overrides: str | Path, extend_hint: str = EXTEND_WITH_FLAG) -> Catalog:
    """The packaged catalog, with each override (a file, TOML text or a gs:// URI) merged over it in order."""
    data = _parse(PACKAGED_CATALOG.read_text(), str(PACKAGED_CATALOG))
    source = str(PACKAGED_CATALOG)
    for override in overrides:
        if not str(override).strip():
            continue
        source = describe(override)
        _merge(data, _parse(read_source(override), source))
    return _build(data, source, extend_hint)


def describe(source: str | Path) -> str:
    """A catalog source as an error message names it: its path or URI, or the start of its TOML text."""
    text = str(source)
    if not _is_text(text):
        return text
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"TOML text {first[:40]!r}" + ("..." if len(text.strip()) > len(first[:40]) else "")


def read_source(source: str | Path) -> str:
    """The TOML text of a catalog source: inline text, a local file, or a gs:// object."""
    text = str(source)
    if _is_text(text):
        return text
    if text.startswith("gs://"):
        from google.api_core import exceptions
        from google.auth import exceptions as auth_exceptions
        from google.cloud import storage

        bucket, _, name = text.removeprefix("gs://").partition("/")
        try:
            return storage.Client().bucket(bucket).blob(name).download_as_text()
        except (exceptions.GoogleAPICallError, auth_exceptions.GoogleAuthError) as e:
            reason = str(e).splitlines()[0]
            raise UserError("catalog", text, f"cannot be read ({reason})", "give a gs:// URI of a TOML file") from None
    try:
        return Path(text).expanduser().read_text()
    except OSError as e:
        raise UserError(
            "catalog", text, f"cannot be read ({e.strerror})", "give the path of a TOML catalog file"
        ) from None


def _is_text(source: str) -> bool:
    return "\n" in source or "=" in source or source.lstrip().startswith("[")


def _parse(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError("catalog", source, f"is not valid TOML ({e})", "fix the TOML there") from None


def _merge(base: dict, extra: Mapping) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _build(data: Mapping, source: str, extend_hint: str) -> Catalog:
    def bad(key: str, problem: str, fix: str) -> UserError:
        return UserError("catalog", source, f"{problem} at {key}", fix)

    unknown = set(data) - {"prebuilt", "machine_types", "locations", *RUNTIMES}
    if unknown:
        raise bad(
            "the top level",
            f"has unknown tables {sorted(unknown)}",
            f"use only {sorted(RUNTIMES)}, prebuilt, machine_types, locations",
        )
    images = []
    for runtime in RUNTIMES:
        for version, entry in data.get(runtime, {}).items():
            key = f"{runtime}.{version}"
            if not isinstance(entry, Mapping):
                raise bad(key, "is not a table", f'write [{runtime}."{version}"]')
            unknown = set(entry) - _VERSION_KEYS
            if unknown:
                raise bad(key, f"has unknown keys {sorted(unknown)}", f"use only {sorted(_VERSION_KEYS)}")
            nightly = bool(entry.get("nightly", False))
            if not nightly and not _is_numeric(version):
                raise bad(key, "has a version that is neither X.Y nor nightly", "add nightly = true")
            dates = {k: entry.get(k) for k in ("end_of_patches", "end_of_availability")}
            for name, value in dates.items():
                if value is not None and not isinstance(value, dt.date):
                    raise bad(f"{key}.{name}", f"has {value!r}, not a date", "write a TOML date: 2025-08-15")
            for accelerator in ACCELERATORS:
                uri = entry.get(accelerator)
                if uri is None:
                    continue
                if not isinstance(uri, str) or not uri:
                    raise bad(
                        f"{key}.{accelerator}", f"has {uri!r}, not an image URI", "write the image URI as a string"
                    )
                cuda = entry.get("cuda") if accelerator == "gpu" else None
                images.append(Image(version, accelerator, runtime, uri, cuda, nightly=nightly, **dates))
    machines = data.get("machine_types", {})
    tpu = machines.get("tpu", {})
    return Catalog(
        images=tuple(images),
        prebuilt=data.get("prebuilt", {}),
        tpu_machine_types={k: v for k, v in tpu.items() if isinstance(v, int)},
        tpu_machine_prefixes=tuple(machines.get("tpu_prefixes", ())),
        tpu_accelerators_not_served=tuple(machines.get("tpu_accelerators_not_served", ())),
        default_machine_types=dict(machines.get("default", {})),
        gpu_families={k: tuple(v) for k, v in machines.get("gpu", {}).items()},
        gpu_unsupported_by_optimized=dict(machines.get("gpu_unsupported_by_optimized", {})),
        machine_families={k: tuple(str(s) for s in v) for k, v in machines.get("families", {}).items()},
        locations=tuple(data.get("locations", {}).get("vertex_ai", ())),
        extend_hint=extend_hint,
        memory_gb_per_vcpu=dict(machines.get("memory_gb_per_vcpu", {})),
        per_gpu={k: dict(v) for k, v in machines.get("per_gpu", {}).items()},
    )


def _is_numeric(version: str) -> bool:
    return all(p.isdigit() for p in version.split("."))


def _version_key(version: str) -> tuple[float, ...]:
    return (float("inf"),) if not _is_numeric(version) else tuple(float(p) for p in version.split("."))


def _join(items) -> str:
    return ", ".join(str(i) for i in items)
