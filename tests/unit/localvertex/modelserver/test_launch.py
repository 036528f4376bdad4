"""A DeployedModel's log is kept across starts of its server, and a failed start reports its own error."""

import sys

from localvertex.modelserver.launch import start_model_server


def test_a_restart_appends_to_the_log_and_reports_its_own_failure(tmp_path):
    log = tmp_path / "deployed-model-1.log"
    for word in ("first", "second"):
        command = [sys.executable, "-c", f"print('modelserver: {word} start failed')"]
        server = start_model_server(str(tmp_path), log_path=log, command=command)
        server.process.wait(30)
        assert server.reason() == f"modelserver: {word} start failed"
    assert log.read_text().splitlines() == ["modelserver: first start failed", "modelserver: second start failed"]
