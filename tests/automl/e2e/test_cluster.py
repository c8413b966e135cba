"""`--ray-address`: a sweep joins a running cluster (a head and a worker node started here on 127.0.0.1,
one CPU each) and logs through a tracking server on PostgreSQL (`automl server`, started here as a user
would, on a throwaway database cluster); its two concurrent trials land on both nodes and every trial's
run, params and metrics read back through the server's REST API. A node that cannot see the run folder
(no shared filesystem) makes the sweep refuse to start, with the fix; so does a cluster run on an SQLite
file store."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from automl.tune.ledger import Ledger

RAY = str(Path(sys.executable).with_name("ray"))
# Ray 2.60 turns token auth on by default. A driver joining a `ray start` cluster was refused here with
# "InvalidAuthToken: Authentication token is missing or incorrect" although ~/.ray/auth_token existed, so
# this local test cluster runs without auth; a real cluster passes its token to every node and driver.
ENV = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc):
    # each node runs `ray start --block` in its own session: its process group is everything it started
    with_group = [signal.SIGTERM, signal.SIGKILL]
    for sig in with_group:
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    port = _free_port()
    temp = Path(f"/tmp/sa-clu-{os.getpid()}")
    log = tmp_path_factory.mktemp("cluster")
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--include-dashboard=false", f"--temp-dir={temp}", *common],
                            stdout=open(log / "head.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env=ENV)
    procs = [head]
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.time() + 90
        def up():
            return subprocess.run([RAY, "status", f"--address={address}"], capture_output=True, env=ENV).returncode == 0

        while time.time() < deadline and not up():
            assert head.poll() is None, (log / "head.log").read_text()[-2000:]
            time.sleep(1)
        worker = subprocess.Popen([RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1", *common],
                                  stdout=open(log / "worker.log", "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True, env=ENV)
        procs.append(worker)
        while time.time() < deadline:
            status = subprocess.run([RAY, "status", f"--address={address}"], capture_output=True, text=True,
                                    env=ENV).stdout
            if "2.0 CPU" in status or " 0.0/2.0 CPU" in status:
                break
            assert worker.poll() is None, (log / "worker.log").read_text()[-2000:]
            time.sleep(1)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


def _postgres_missing() -> str:
    from automl.errors import AutomlInputError
    from automl.server.postgres import bin_dir

    try:
        bin_dir()
    except AutomlInputError as exc:  # `make test` installs Debian's postgresql; this is a machine without apt
        return str(exc)
    return ""


@pytest.fixture(scope="module")
def tracking_server(spawn_module):
    """`automl server` on a PostgreSQL cluster of its own in a temporary folder, port 0; its URL."""
    missing = _postgres_missing()
    if missing:
        pytest.skip(missing)
    home = Path(tempfile.mkdtemp(prefix="sa-pg-", dir="/tmp"))
    home.chmod(0o711)  # run as root, PostgreSQL runs as the postgres user, who must pass through this folder
    log = home / "server.out"
    with open(log, "w") as out:
        proc = spawn_module([sys.executable, "-m", "automl.cli", "server", "--pg-data", str(home / "pg"),
                             "--artifacts", str(home / "artifacts"), "--port", "0"], env=ENV, stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        deadline, url = time.time() + 180, None
        while time.time() < deadline and url is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            found = re.search(r"MLflow tracking server at (http://\S+)", log.read_text())
            url = found.group(1) if found else None
            time.sleep(0.5)
        assert url, log.read_text()[-3000:]
        assert "***@" in log.read_text() and (home / "pg.password").read_text().strip() not in log.read_text()
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # the user's Ctrl-C: the MLflow server, then the database, stop
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        assert not (home / "pg" / "postmaster.pid").exists(), log.read_text()[-2000:]
        shutil.rmtree(home, ignore_errors=True)


def _rest(url, path, body=None):
    req = urllib.request.Request(url + path) if body is None else urllib.request.Request(
        url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_a_cluster_sweep_on_a_file_store_is_refused_with_the_fix(tmp_path, sweep_overrides):
    out = subprocess.run([sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output",
                          str(tmp_path / "run"), "--ray-address", "127.0.0.1:1", "--no-probe",
                          *sweep_overrides(tmp_path)], env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert "is an SQLite file" in line and "automl server" in line and "--tracking-uri http://" in line, line
    assert not (tmp_path / "run" / "mlflow.db").exists()


def test_sweep_on_an_existing_cluster_uses_both_nodes(cluster, tracking_server, tmp_path):
    from stereo.data.synthetic import generate

    tr = generate(tmp_path / "train", "fsd", n=2, height=32, width=64, max_disparity=24, seed=0)
    va = generate(tmp_path / "val", "fsd", n=1, height=32, width=64, max_disparity=24, seed=1)
    run = tmp_path / "run"
    env = ENV
    out = subprocess.run([sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output", str(run),
                          "--ray-address", cluster, "--tracking-uri", tracking_server, "--num-samples", "2",
                          "--max-concurrent", "2",
                          "--scheduler", "none", f"dataset.train_dataset.data_sources[0].data_file={tr}",
                          "dataset.train_dataset.data_sources[0].dataset_name=FSD",
                          f"dataset.val_dataset.data_sources[0].data_file={va}",
                          "dataset.val_dataset.data_sources[0].dataset_name=FSD", "num_epochs=1", "max_steps=-1",
                          "dataset.train_dataset.augmentation.crop_size=[32,64]", "model.train_iters=1",
                          "model.valid_iters=1"], env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    trials = Ledger(run).trials()
    assert [t["status"] for t in trials] == ["completed", "completed"]
    assert len({t["node"] for t in trials}) == 2, trials  # one trial per one-CPU node
    assert json.loads((run / "results.json").read_text())["progress"]["complete"] is True
    assert not (run / "ray").exists()  # joining a cluster starts no local Ray
    assert not (run / "mlflow.db").exists()  # the server's database holds the records
    # every trial's run, params and metrics, read back through the server's REST API
    exp = _rest(tracking_server, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=depth_net")
    runs = _rest(tracking_server, "/api/2.0/mlflow/runs/search",
                 {"experiment_ids": [exp["experiment"]["experiment_id"]], "max_results": 50})["runs"]
    by_trial = {}
    for r in runs:
        tags = {t["key"]: t["value"] for t in r["data"].get("tags", [])}
        if tags.get("automl.trial_id"):
            by_trial[tags["automl.trial_id"]] = r
    for t in trials:
        r = by_trial[t["trial_id"]]
        assert r["info"]["status"] == "FINISHED" and r["info"]["run_id"] == t["run_id"]
        params = {p["key"]: p["value"] for p in r["data"]["params"]}
        assert float(params["train.optim.lr"]) == pytest.approx(t["params"]["train.optim.lr"])
        metrics = {m["key"]: m["value"] for m in r["data"]["metrics"]}
        assert metrics["val/epe"] == pytest.approx(t["metric"])
        assert r["info"]["artifact_uri"].startswith("mlflow-artifacts:/")  # artifacts go through the server
    # the best trial promoted to a registered model version, found with its metrics through the REST API
    best = json.loads((run / "results.json").read_text())["best"]
    promoted = subprocess.run([sys.executable, "-m", "automl.cli", "promote", str(run), "--name", "tiny-cluster",
                               "--alias", "champion"], env=env, capture_output=True, text=True, timeout=120)
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    assert promoted.stdout.startswith(f"registered model 'tiny-cluster' version 1 from trial {best['trial_id']}")
    version = _rest(tracking_server, "/api/2.0/mlflow/registered-models/alias?name=tiny-cluster&alias=champion")
    version = version["model_version"]
    tags = {t["key"]: t["value"] for t in version["tags"]}
    assert version["version"] == "1" and version["run_id"] == best["run_id"]
    assert tags["automl.trial_id"] == best["trial_id"] and tags["automl.sweep"] == str(run)
    assert float(tags["metric.val/epe"]) == pytest.approx(best["metric"], rel=1e-5)


def _can_unshare_mounts() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare_mounts(), reason="needs `unshare -m` (root or CAP_SYS_ADMIN) to give a "
                                                      "node its own view of the filesystem")
def test_a_node_that_cannot_see_the_run_folder_is_refused_with_the_fix(cluster, tracking_server, tmp_path):
    # a third node whose mount namespace hides tmp_path behind an empty tmpfs: what a worker machine
    # without the shared filesystem sees. Its trials would write the ledger where the driver never reads.
    blind = subprocess.Popen(["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs {tmp_path} && exec {RAY} start "
                              f"--address={cluster} --node-ip-address=127.0.0.1 --num-cpus=1 --block "
                              "--disable-usage-stats"], stdout=open(tmp_path.parent / "blind.log", "w"),
                             stderr=subprocess.STDOUT, start_new_session=True, env=ENV)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and "3.0 CPU" not in subprocess.run(
                [RAY, "status", f"--address={cluster}"], capture_output=True, text=True, env=ENV).stdout:
            assert blind.poll() is None, (tmp_path.parent / "blind.log").read_text()[-2000:]
            time.sleep(1)
        from stereo.data.synthetic import generate

        tr = generate(tmp_path / "train", "fsd", n=2, height=32, width=64, max_disparity=24, seed=0)
        run = tmp_path / "run"
        out = subprocess.run([sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output", str(run),
                              "--ray-address", cluster, "--tracking-uri", tracking_server, "--num-samples", "1",
                              f"dataset.train_dataset.data_sources[0].data_file={tr}",
                              f"dataset.val_dataset.data_sources[0].data_file={tr}",
                              "dataset.train_dataset.data_sources[0].dataset_name=FSD",
                              "dataset.val_dataset.data_sources[0].dataset_name=FSD"],
                             env=ENV, capture_output=True, text=True, timeout=300)
    finally:
        _stop(blind)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert "cannot see the run folder" in out.stderr and "every node mounts at the same path" in out.stderr
    assert Ledger(run).sweep()["state"] == "failed" and not Ledger(run).trials()  # nothing ran


def test_two_sweeps_at_once_through_the_server_lose_nothing(tracking_server, tmp_path, sweep_overrides, spawn):
    # the server-side twin of tests/automl/e2e/test_shared_store_e2e.py: two sweeps started at the same moment
    # (each with its embedded Ray) create one new experiment and log into the PostgreSQL store together
    experiment = f"race-{tmp_path.name}"
    sweeps = []  # `spawn` kills whatever is left of them, whatever happens
    for name in ("a", "b"):
        sweeps.append(spawn(
            [sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output", str(tmp_path / name),
             "--tracking-uri", tracking_server, "--experiment", experiment, "--num-samples", "1", "--scheduler",
             "none", "--no-probe", *sweep_overrides(tmp_path / f"data-{name}")], env=ENV, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    for proc in sweeps:
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-2000:] + err[-2000:]
        assert "already exists" not in out + err
    exp = _rest(tracking_server, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}")
    runs = _rest(tracking_server, "/api/2.0/mlflow/runs/search",
                 {"experiment_ids": [exp["experiment"]["experiment_id"]], "max_results": 50})["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    parents = [t for t in tags if t.get("automl.kind") == "sweep"]
    trials = [(r, t) for r, t in zip(runs, tags) if "automl.trial_id" in t]
    assert sorted(t["automl.run_dir"] for t in parents) == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert len(trials) == 2 and all(r["info"]["status"] == "FINISHED" for r in runs)
    assert all(any(m["key"] == "val/epe" for m in r["data"]["metrics"]) for r, _ in trials)
