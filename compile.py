"""Compiles the pipelines to build/<pipeline>.yaml: `python compile.py [--component-image IMAGE] [--output-dir DIR]`.

The same input gives byte-identical output, so the compiled YAML can be committed, diffed and reviewed.
"""

import argparse
import os
import sys
from pathlib import Path


def compile_pipelines(output_dir: Path, component_image: str = "") -> list[Path]:
    if component_image:
        os.environ["VSP_COMPONENT_IMAGE"] = component_image  # read when the components are first imported
    from kfp import compiler

    from pipelines.deploy import PIPELINE_NAME, deploy_pipeline

    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{PIPELINE_NAME}.yaml"
    compiler.Compiler().compile(deploy_pipeline, str(target))
    return [target]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python compile.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--component-image", default="", help="image the components run in on Vertex AI (built from Dockerfile)"
    )
    parser.add_argument("--output-dir", type=Path, default=Path("build"), help="where the YAML goes (default: build)")
    args = parser.parse_args(argv)
    for path in compile_pipelines(args.output_dir, args.component_image):
        print(f"compiled {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
