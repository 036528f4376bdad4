"""The deploy pipeline, its configuration and the `vsp` command line."""
