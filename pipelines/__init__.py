"""The face of vertex-serving-pipelines: the pipeline definitions, compiling, running and the `vsp` command line."""
