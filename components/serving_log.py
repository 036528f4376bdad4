"""The optimized runtime's optimization log of the new DeployedModel, quoted in the smoke-test report.

Vertex AI adds the runtime's optimization log to the DeployedModel's prediction log in Cloud Logging; the report
gives the filter that finds it, and quotes the lines (each flag, its effect, the warmup replay) where the API
answers Cloud Logging's `entries:list` for them (localvertex does).
"""

import json
import urllib.error
import urllib.request


def read_serving_log(api_endpoint: str, project: str, log_filter: str, timeout: float = 10) -> list[str]:
    """The log lines that `entries:list` at `api_endpoint` returns for the filter, oldest first."""
    lines, token = [], ""
    while True:
        body = {"resourceNames": [f"projects/{project}"], "filter": log_filter, "pageSize": 1000}
        if token:
            body["pageToken"] = token
        request = urllib.request.Request(
            f"{api_endpoint.rstrip('/')}/v2/entries:list",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            found = json.loads(response.read())
        lines += [e.get("textPayload", "") for e in found.get("entries", [])]
        token = found.get("nextPageToken", "")
        if not token:
            return lines


def optimization_log_section(
    api_endpoint: str, project: str, location: str, endpoint_name: str, deployed_model_id: str
) -> str:
    """Markdown: the Cloud Logging filter of the DeployedModel's log, and its optimization lines where readable."""
    from vertex_serving.optimize import log_filter, optimization_lines

    query = log_filter(project, location, endpoint_name.rsplit("/", 1)[-1], deployed_model_id)
    text = f"\n## Optimization log\n\nCloud Logging filter of this DeployedModel's log:\n\n```\n{query}\n```\n"
    if not api_endpoint:
        return text
    try:
        lines = optimization_lines("\n".join(read_serving_log(api_endpoint, project, query)))
    except (urllib.error.URLError, OSError, ValueError) as e:
        return text + f"\nThe log could not be read from {api_endpoint} ({e}).\n"
    quoted = "\n".join(f"    {line}" for line in lines) or "    (no optimization lines)"
    return text + f"\n{quoted}\n"
