"""`vsp emulator logs`: a DeployedModel's model-server log from localvertex's data folder, followed as it grows."""

import io
import threading

from pipelines.cli import main


def test_logs_prints_the_deployed_models_server_log(tmp_path, capsys):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "deployed-model-2001.log").write_text("modelserver INFO allow_precompilation=true: XLA\n")
    assert main(["emulator", "logs", "2001", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "modelserver INFO allow_precompilation=true: XLA\n"


def test_an_unknown_or_path_like_id_is_one_line_and_exit_code_2(tmp_path, capsys):
    for bad in ("2002", "../emulator"):
        assert main(["emulator", "logs", bad, "--data-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: DEPLOYED_MODEL_ID={bad!r} has no model-server log in") and err.count("\n") == 1


def test_follow_prints_what_the_server_adds(tmp_path):
    from pipelines.logs import show_log

    log = tmp_path / "logs" / "deployed-model-7.log"
    log.parent.mkdir()
    log.write_text("first\n")
    out, done = io.StringIO(), threading.Event()

    def grow():
        with log.open("a") as f:
            f.write("second\n")
        while "second" not in out.getvalue():
            threading.Event().wait(0.05)
        done.set()

    threading.Thread(target=grow).start()
    assert show_log(tmp_path, "7", follow=True, out=out, stop=done.is_set) == 0
    assert out.getvalue() == "first\nsecond\n"
