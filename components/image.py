"""The container image every component runs in on Vertex AI Pipelines: this package installed (see Dockerfile).

`compile.py --component-image` sets VSP_COMPONENT_IMAGE before the components are imported; kfp.local's
SubprocessRunner ignores the image and runs the components with the already-installed package.
"""

import os

COMPONENT_IMAGE = os.environ.get("VSP_COMPONENT_IMAGE", "vertex-serving-pipelines:0.1.0")
