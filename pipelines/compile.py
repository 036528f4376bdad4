"""Compiles the pipelines to `<output-dir>/<pipeline>.yaml` for Vertex AI Pipelines (`vsp compile`).

The same input gives byte-identical output, so the compiled YAML can be committed, diffed and reviewed. The
component image is an argument: each compile builds its pipeline for the image it is given.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from components import COMPONENT_IMAGE

# HOST[:PORT]/PATH[:TAG|@DIGEST] where HOST names a registry (has a dot or a port, or is localhost).
_REGISTRY_PATH = re.compile(
    r"(?:[a-z0-9.-]+\.[a-z0-9-]+|localhost)(?::\d+)?/[a-z0-9._/-]+(?::[\w.-]+|@sha256:[0-9a-f]{64})?"
)


def is_registry_path(image: str) -> bool:
    """Whether Vertex AI Pipelines could pull `image`: a name with a registry host, like REGION-docker.pkg.dev/..."""
    return bool(_REGISTRY_PATH.fullmatch(image))


def registry_warning(image: str) -> str | None:
    if is_registry_path(image):
        return None
    return (
        f"component_image={image!r} is not a registry path, so the compiled YAML runs locally but not on Vertex AI "
        "Pipelines: build the Dockerfile, push it, and compile with --component-image "
        "REGION-docker.pkg.dev/PROJECT/REPOSITORY/vertex-serving-pipelines:TAG"
    )


def compile_pipelines(output_dir: Path, component_image: str = COMPONENT_IMAGE) -> list[Path]:
    """Writes every pipeline of the package, built for `component_image`; returns the files written."""
    from kfp import compiler

    from pipelines import deploy, retrain

    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pipeline in (
        (deploy.PIPELINE_NAME, deploy.build(component_image)),
        (retrain.PIPELINE_NAME, retrain.example(component_image)),
    ):
        target = output_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(target))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="vsp compile",
        description="Compile the pipelines for Vertex AI Pipelines.",
        epilog="example:\n  vsp compile --component-image us-docker.pkg.dev/my-project/vsp/vertex-serving-pipelines:"
        + COMPONENT_IMAGE.rsplit(":", 1)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser) -> None:
    parser.add_argument(
        "--component-image",
        default=COMPONENT_IMAGE,
        help=f"registry path of the image the steps run in, built from the Dockerfile (default: {COMPONENT_IMAGE})",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("build"), help="where the YAML goes (default: build)")


def run(args) -> int:
    if warning := registry_warning(args.component_image):
        print(f"warning: {warning}", file=sys.stderr)
    for path in compile_pipelines(args.output_dir, args.component_image):
        print(f"compiled {path}")
    return 0
