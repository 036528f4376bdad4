"""Cloud Logging's entries:list over the kept model-server logs: the same filter as on Vertex AI finds the lines."""

import pytest

from localvertex.errors import VertexError
from localvertex.logs import LogEntries
from vertex_serving.optimize import log_filter


def entries(data_dir, body: dict) -> dict:
    return LogEntries(data_dir).list_entries(body)


def test_a_deployed_models_log_lines_come_back_as_log_entries_page_by_page(tmp_path):
    (tmp_path / "logs").mkdir()
    lines = [f"2026-01-01 modelserver INFO line {n}" for n in range(3)]
    (tmp_path / "logs" / "deployed-model-2001.log").write_text("\n".join(lines) + "\n")
    body = {"resourceNames": ["projects/p"], "filter": log_filter("p", "us-central1", "1000", "2001"), "pageSize": 2}
    first = entries(tmp_path, body)
    assert [e["textPayload"] for e in first["entries"]] == lines[:2] and first["nextPageToken"] == "2"
    entry = first["entries"][0]
    assert entry["resource"] == {
        "type": "aiplatform.googleapis.com/Endpoint",
        "labels": {"resource_container": "p", "endpoint_id": "1000", "location": "us-central1"},
    }
    assert entry["labels"] == {"deployed_model_id": "2001"} and entry["severity"] == "INFO"
    rest = entries(tmp_path, body | {"pageToken": first["nextPageToken"]})
    assert [e["textPayload"] for e in rest["entries"]] == lines[2:] and "nextPageToken" not in rest


def test_a_filter_without_a_deployed_model_is_refused(tmp_path):
    with pytest.raises(VertexError) as e:
        entries(tmp_path, {"filter": 'resource.type="aiplatform.googleapis.com/Endpoint"'})
    assert e.value.status == "INVALID_ARGUMENT" and "labels.deployed_model_id" in str(e.value)
