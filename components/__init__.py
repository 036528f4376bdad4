"""The pipeline's steps: one module each, a thin @dsl.component over plain functions that have unit tests."""
