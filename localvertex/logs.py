"""Cloud Logging's `entries:list` for the model servers' logs, so a DeployedModel's log reads as on Vertex AI.

On Vertex AI a serving container's stdout and stderr go to Cloud Logging under the endpoint's resource, labelled
with the DeployedModel's id; the optimized runtime adds its optimization log there. Here each model server's log
file is kept in `<data-dir>/logs/`, and this answers the same request (`POST /v2/entries:list` with a filter that
names `labels.deployed_model_id`) with its lines as `LogEntry`s.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aiohttp import web

from localvertex.deployer import server_log
from localvertex.errors import VertexError
from localvertex.rest import check_local, error_response, json_response

_LABEL = r'{name}\s*=\s*"(?P<value>[^"]*)"'
_SEVERITY = re.compile(r" (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
MAX_PAGE = 1000  # Cloud Logging's largest page


class LogEntries:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    async def entries_list(self, request: web.Request) -> web.Response:
        """`POST /v2/entries:list`, checked as every other state-reading call from this machine is."""
        try:
            check_local(request)
            body = json.loads(await request.read() or b"{}")
            if not isinstance(body, dict):
                raise VertexError("INVALID_ARGUMENT", "Invalid JSON payload: the body is not an object")
            return json_response(self.list_entries(body))
        except json.JSONDecodeError as e:
            return error_response(VertexError("INVALID_ARGUMENT", f"Invalid JSON payload: {e}"))
        except VertexError as e:
            return error_response(e)

    def list_entries(self, body: dict) -> dict:
        text = body.get("filter", "")
        deployed_model_id = _label(text, "labels.deployed_model_id")
        if not deployed_model_id:
            raise VertexError(
                "INVALID_ARGUMENT",
                'localvertex lists the logs of one DeployedModel: the filter needs labels.deployed_model_id="ID"',
            )
        path = server_log(self.data_dir, deployed_model_id)
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        start = int(body.get("pageToken") or 0)
        size = min(int(body.get("pageSize") or 50), MAX_PAGE)
        project = next((r.split("/")[1] for r in body.get("resourceNames", []) if r.startswith("projects/")), "")
        resource = {
            "type": "aiplatform.googleapis.com/Endpoint",
            "labels": {
                "resource_container": project,
                "endpoint_id": _label(text, "resource.labels.endpoint_id"),
                "location": _label(text, "resource.labels.location"),
            },
        }
        entries = [
            {
                "logName": f"projects/{project}/logs/aiplatform.googleapis.com%2Fprediction_container",
                "resource": resource,
                "labels": {"deployed_model_id": deployed_model_id},
                "textPayload": line,
                "severity": (_SEVERITY.search(line) or [None, "DEFAULT"])[1],
                "insertId": f"{deployed_model_id}-{start + index}",
            }
            for index, line in enumerate(lines[start : start + size])
        ]
        found = {"entries": entries}
        if start + size < len(lines):
            found["nextPageToken"] = str(start + size)
        return found


def _label(text: str, name: str) -> str:
    found = re.search(_LABEL.format(name=re.escape(name)), text)
    return found["value"] if found else ""
