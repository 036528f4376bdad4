"""The upload step labels each model version with the run that made it."""

from components.upload import run_label


def test_run_labels_are_valid_vertex_label_values():
    assert run_label("Vertex-Serving-Deploy 2026/11/22 05:54") == "vertex-serving-deploy-2026-11-22-05-54"
    assert len(run_label("x" * 100)) == 63
