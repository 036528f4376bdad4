"""`vsp emulator logs`: a DeployedModel's model-server log, kept by localvertex in its data folder."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from localvertex.deployer import server_log
from vertex_serving.errors import UserError


def show_log(
    data_dir: Path, deployed_model_id: str, follow: bool = False, out=None, stop: Callable[[], bool] = lambda: False
) -> int:
    """Prints the log; with `follow`, keeps printing what the server adds until interrupted (or `stop()`)."""
    out = out or sys.stdout
    path = server_log(data_dir, deployed_model_id) if deployed_model_id.isdigit() else None
    if path is None or not path.is_file():
        raise UserError(
            "DEPLOYED_MODEL_ID",
            deployed_model_id,
            f"has no model-server log in {data_dir / 'logs'}",
            "give an id from `vsp emulator status` (and its --data-dir)",
        )
    with path.open(errors="replace") as log:
        out.write(log.read())
        out.flush()
        try:
            while follow and not stop():
                added = log.read()
                if added:
                    out.write(added)
                    out.flush()
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return 0
