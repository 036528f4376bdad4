"""One module per pipeline step: plain functions that do the work, and a thin kfp component around them.

Steps import only the core (`vertex_serving`). `COMPONENT_IMAGE` is only the default; `pipelines.compile` builds
the pipeline for the image the user names.
"""

from vertex_serving import __version__

COMPONENT_IMAGE = f"vertex-serving-pipelines:{__version__}"
