"""The domain core of vertex-serving-pipelines: catalog, options, rules, the config codec, SDK set-up and tfserving/.

It imports nothing else of this project, so the pipeline steps, localvertex and the CLI all build on it.
"""

from importlib import metadata

try:
    __version__ = metadata.version("vertex-serving-pipelines")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"
