"""automl.ui: store resolution, the light server command, and a REAL MLflow server over REST."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from automl.report.results import write_report
from automl.ui.server import LIGHT_ENV, UiError, build_command, free_port, port_in_use, resolve_store, start_server

REPO = Path(__file__).resolve().parents[3]


def test_resolve_store_from_folder_parent_file_uri_and_env(tmp_path):
    db = tmp_path / "results" / "mlflow.db"
    (db.parent / "sweep_20260101" / "t0000").mkdir(parents=True)
    db.write_bytes(b"")
    uri = "sqlite:///" + str(db)
    assert resolve_store(str(db.parent)) == uri
    assert resolve_store(str(db.parent / "sweep_20260101" / "t0000")) == uri  # two levels up
    assert resolve_store(str(db)) == uri
    assert resolve_store("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert resolve_store(None, env={"MLFLOW_TRACKING_URI": uri}) == uri


@pytest.mark.parametrize("store, env, message", [
    (None, {}, "MLFLOW_TRACKING_URI is not set"),
    ("missing-folder", {}, "no such file or folder"),
    ("sqlite:///relative.db", {}, "relative"),
])
def test_resolve_store_errors_say_what_to_pass(tmp_path, store, env, message):
    with pytest.raises((UiError, ValueError), match=message):
        resolve_store(store if store != "missing-folder" else str(tmp_path / store), env=env)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    with pytest.raises(UiError, match="no mlflow.db"):
        resolve_store(str(tmp_path / "a" / "b" / "c"))


def test_build_command_is_light_and_loopback(tmp_path):
    uri = "sqlite:///" + str(tmp_path / "mlflow.db")
    argv, env = build_command(uri, port=5123)
    assert argv[1:4] == ["-m", "mlflow", "server"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "5123"
    assert argv[argv.index("--workers") + 1] == "1" and argv[argv.index("--backend-store-uri") + 1] == uri
    assert argv[argv.index("--default-artifact-root") + 1] == (tmp_path / "mlruns").as_uri()
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and env == LIGHT_ENV
    argv, _ = build_command("http://10.0.0.1:5000")
    assert "--default-artifact-root" not in argv


def _fill_store(root: Path):
    """A parent sweep run with 3 nested trial runs, logged through the production MlflowTracker."""
    from stereo.tracking import MlflowTracker, default_tracking_uri, ensure_experiment

    uri = default_tracking_uri(root)
    ensure_experiment(uri, "automl-sweep")
    tracker = MlflowTracker(uri)
    parent = tracker.start_run("sweep", experiment="automl-sweep")
    trials, dicts = {}, []
    for i in range(3):
        run = tracker.start_run(f"t{i:04d}", experiment="automl-sweep", parent_run_id=parent.run_id)
        tracker.log_params(run, {"train": {"optim": {"lr": 10 ** -(i + 2), "lr_decay": 0.5}}})
        for epoch in range(2):
            tracker.log_metrics(run, {"val/epe": 3.0 - i - epoch * 0.5}, step=epoch)
        tracker.end_run(run)
        trials[run.run_id] = (f"{10 ** -(i + 2)}", 2.5 - i)
        dicts.append({"trial_id": f"t{i:04d}", "status": "completed", "metric": 2.5 - i, "run_id": run.run_id,
                      "params": {"train.optim.lr": 10 ** -(i + 2), "train.optim.lr_decay": 0.5}, "epochs": 2})
    # the sweep's report, logged on the parent run through the production tracker
    write_report(root / "sweep", dicts, metric="val/epe", mode="min", space=None, best_spec=None, complete=True,
                 tracker=tracker, parent_run=parent, stream=None)
    tracker.end_run(parent)
    return uri, parent.run_id, trials


def _post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _get(url, **query):
    with urllib.request.urlopen(url + "?" + urllib.parse.urlencode(query), timeout=10) as resp:
        return json.loads(resp.read())


def _check_rest(url, parent_id, trials):
    exp = _get(url + "/api/2.0/mlflow/experiments/get-by-name", experiment_name="automl-sweep")["experiment"]
    found = _post(url + "/api/2.0/mlflow/runs/search", {
        "experiment_ids": [exp["experiment_id"]], "max_results": 100,
        "filter": f"tags.mlflow.parentRunId = '{parent_id}'"})["runs"]
    assert {r["info"]["run_id"] for r in found} == set(trials)
    for run in found:
        lr, epe = trials[run["info"]["run_id"]]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert params == {"train.optim.lr": lr, "train.optim.lr_decay": "0.5"}
        assert metrics["val/epe"] == pytest.approx(epe) and run["info"]["status"] == "FINISHED"
    # the report logged on the parent run is browsable from the UI (artifacts served from the files)
    files = _get(url + "/ajax-api/2.0/mlflow/artifacts/list", run_id=parent_id, path="report")["files"]
    assert {f["path"] for f in files} == {"report/results.json", "report/leaderboard.txt", "report/report.html",
                                          "report/plots"}
    with urllib.request.urlopen(f"{url}/get-artifact?path=report/report.html&run_uuid={parent_id}",
                                timeout=10) as resp:
        assert b"Sweep report" in resp.read()


@pytest.mark.slow
def test_real_server_serves_every_trial_and_stops_cleanly(tmp_path):
    _uri, parent_id, trials = _fill_store(tmp_path)
    server = start_server(str(tmp_path), port=0, log_path=str(tmp_path / "ui.log"))
    port = int(server.url.rsplit(":", 1)[1])
    try:
        assert server.url.startswith("http://127.0.0.1:")
        _check_rest(server.url, parent_id, trials)
    finally:
        code = server.stop()
    assert code is not None and not port_in_use("127.0.0.1", port)
    with pytest.raises(ProcessLookupError):  # no process of the server's group is left
        os.killpg(server.proc.pid, 0)


def _processes_with_token(token: str) -> list:
    """Pids whose environment carries `token`: automl ui, its guard, the MLflow server and its workers."""
    found, needle = [], f"AUTOML_UI_TEST_TOKEN={token}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def _wait_until(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def ui_cli(tmp_path):
    """Start `automl ui` as a user would; the finalizer kills whatever of it is left, even on failure."""
    token, started = os.urandom(8).hex(), []

    def start(store: Path, port: int):
        proc = subprocess.Popen(
            [sys.executable, "-m", "automl.cli", "ui", "--store", str(store), "--port", str(port)], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "AUTOML_UI_TEST_TOKEN": token})
        started.append(proc)
        out, deadline = "", time.monotonic() + 120
        while "MLflow UI: http" not in out and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 1.0)[0]:
                out += proc.stdout.readline()
        assert f"MLflow UI: http://127.0.0.1:{port}" in out, out
        return proc, out

    start.processes = lambda: _processes_with_token(token)
    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    leftovers = _processes_with_token(token)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_cli_prints_url_and_ctrl_c_stops_the_server(tmp_path, ui_cli):
    _uri, parent_id, trials = _fill_store(tmp_path)
    port = free_port()
    proc, out = ui_cli(tmp_path, port)
    assert len(ui_cli.processes()) >= 3  # automl ui, its guard, the server (and its worker)
    # the server log lives next to the store, not under a predictable temp name
    assert f"server log: {tmp_path / 'ui' / f'automl-ui-{port}.log'}" in out
    _check_rest(f"http://127.0.0.1:{port}", parent_id, trials)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Stopped." in rest
    assert _wait_until(lambda: not ui_cli.processes(), 10), ui_cli.processes()
    assert not port_in_use("127.0.0.1", port)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_no_server_outlives_automl_ui(tmp_path, ui_cli, sig):
    """A supervisor's SIGTERM, a closed terminal's SIGHUP, or a SIGKILL nobody can catch: the whole server
    (guard, mlflow server, uvicorn worker) is gone within seconds and the port is free."""
    (tmp_path / "mlflow.db").write_bytes(b"")
    port = free_port()
    proc, _ = ui_cli(tmp_path, port)
    # the URL is printed once the server answers; under load its worker process may still be on its way
    assert _wait_until(lambda: port_in_use("127.0.0.1", port) and len(ui_cli.processes()) >= 3, 30), ui_cli.processes()
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == (-sig if sig == signal.SIGKILL else 0)
    assert _wait_until(lambda: not ui_cli.processes(), 15), f"left behind: {ui_cli.processes()}"
    assert _wait_until(lambda: not port_in_use("127.0.0.1", port), 5)


def test_log_never_follows_a_planted_symlink(tmp_path):
    from automl.ui.server import UiInputError, open_log

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    planted = tmp_path / "ui" / "automl-ui-5000.log"
    planted.parent.mkdir()
    planted.symlink_to(victim)
    with pytest.raises(UiInputError, match="symlink"):
        open_log(planted)
    assert victim.read_text() == "keep me"


def test_bad_store_exits_2_and_public_host_warns(tmp_path, capsys):
    from automl.ui.server import main

    assert main(["--store", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file or folder" in err
    assert main(["--store", str(tmp_path / "missing"), "--host", "0.0.0.0"]) == 2
    assert "warning: --host 0.0.0.0 exposes the UI" in capsys.readouterr().err


def test_busy_port_is_refused_with_a_fix(tmp_path):
    import socket

    (tmp_path / "mlflow.db").write_bytes(b"")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        with pytest.raises(UiError, match="already in use.*--port 0"):
            start_server(str(tmp_path), port=s.getsockname()[1])


def test_the_printed_ui_command_works_from_a_make_checkout(tmp_path, monkeypatch):
    from automl.ui.server import ui_command

    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "automl").write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # a `make` checkout: the venv is not on PATH
    uri = "sqlite:///" + str(tmp_path / "runs" / "s1" / "mlflow.db")
    assert ui_command(uri, executable=str(venv / "python")) == f".venv/bin/automl ui --store {tmp_path / 'runs' / 's1'}"
    monkeypatch.setenv("PATH", f"{venv}:/usr/bin:/bin")
    (venv / "automl").chmod(0o755)
    assert ui_command(uri, executable=str(venv / "python")).startswith("automl ui --store ")
    assert ui_command("http://127.0.0.1:5000", executable=str(tmp_path / "python")).endswith(
        "-m automl.cli ui --store http://127.0.0.1:5000")
