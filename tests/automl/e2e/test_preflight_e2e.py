"""A real tiny sweep (Ray Tune + Optuna + MLflow) run as the user runs it, checking what the pre-flight
promises once Ray is up: every TCP socket the embedded Ray listens on is on 127.0.0.1; the dead key is
out of the search and named on the parent MLflow run; a sweep in which no trial was scored exits 1
and says why (both trials raise at their first validation, by fault injection)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _listening_sockets() -> dict:
    """{socket inode: (ip, port)} of every TCP socket in LISTEN state on this machine."""
    found = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A":  # TCP_LISTEN
                continue
            ip_hex, port_hex = cols[1].split(":")
            raw = bytes.fromhex(ip_hex)
            if v6:  # four little-endian 32-bit words
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                import ipaddress

                addr = ipaddress.IPv6Address(raw)
                ip = str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)
            else:
                ip = ".".join(str(b) for b in raw[::-1])
            found[cols[9]] = (ip, int(port_hex, 16))
    return found


def _ray_processes(root: int, marker: str) -> dict:
    """{pid: command name} of `root`, every process below it, and any process whose command line names
    `marker` (the sweep's Ray session folder: catches a Ray daemon re-parented to init)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        parents[int(stat.parent.name)] = (int(text[text.rindex(")") + 2:].split()[1]), name, marker in cmdline)
    found, todo = {}, [root] + [p for p, (_, _, named) in parents.items() if named]
    while todo:
        pid = todo.pop()
        found[pid] = parents.get(pid, (0, "?", False))[1]
        todo += [p for p, (pp, _, _) in parents.items() if pp == pid and p not in found]
    return found


def _listeners_of(root: int, marker: str) -> set:
    sockets = _listening_sockets()
    out = set()
    for pid, name in _ray_processes(root, marker).items():
        for fd in Path(f"/proc/{pid}/fd").glob("*") if Path(f"/proc/{pid}/fd").is_dir() else ():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            inode = target[len("socket:["):-1] if target.startswith("socket:[") else None
            if inode in sockets:
                out.add((name, *sockets[inode]))
    return out


@pytest.fixture(scope="module")
def unscored(tmp_path_factory, sweep_overrides, trial_faults, ray_tmpdir):
    root = tmp_path_factory.mktemp("preflight-e2e")
    run = root / "run"
    overrides = [*sweep_overrides(root, n_train=4, epochs=2), "train.optim.lr_steps=[1000]"]  # lr_decay dead
    env = trial_faults.env("0=raise,1=raise", {**os.environ, "RAY_TMPDIR": str(ray_tmpdir),
                                               "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    proc = subprocess.Popen([sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output", str(run),
                             "--num-samples", "2", "--max-concurrent", "1", "--no-probe", *overrides],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    marker = str(ray_tmpdir)  # this sweep's Ray session folder is under it, named in its daemons' command lines
    seen = set()
    try:
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline:
            seen |= _listeners_of(proc.pid, marker)  # snapshots while Ray runs: GCS, raylet, workers, the driver
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    return {"run": run, "rc": proc.returncode, "out": out, "err": err, "seen": seen}


def test_every_ray_socket_listens_on_loopback_only(unscored):
    seen = unscored["seen"]
    names = {name for name, _, _ in seen}
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names), seen
    assert all(ip == "127.0.0.1" for _, ip, _ in seen), sorted(seen)


def test_a_sweep_with_no_scored_trial_exits_1_and_says_why(unscored):
    assert unscored["rc"] == 1, unscored["out"][-3000:] + unscored["err"][-3000:]
    err = [line for line in unscored["err"].splitlines() if line.startswith("automl: error:")]
    assert len(err) == 1, unscored["err"]
    assert err[0].startswith("automl: error: no trial was scored (2 of 2 failed; first failure t0000: RuntimeError: "
                             "injected fault")
    assert str(unscored["run"] / "leaderboard.txt") in err[0] and (unscored["run"] / "leaderboard.txt").is_file()


def test_the_dead_key_is_out_of_the_search_and_named_on_the_parent_run(unscored):
    from stereo.tracking import MlflowTracker, default_tracking_uri

    assert "train.optim.lr_decay: DEAD, left out of the search" in unscored["out"]
    runs = MlflowTracker(default_tracking_uri(unscored["run"])).find_runs("depth_net")
    parent = [r for r in runs if r.tags.get("automl.kind") == "sweep"]
    assert len(parent) == 1
    tags = parent[0].tags
    assert json.loads(tags["automl.dead_params"]) == {"keys": ["train.optim.lr_decay"], "searched_anyway": False}
    assert "never multiplied by lr_decay" in tags["automl.dead.train.optim.lr_decay"]
    trials = [r for r in runs if "automl.trial_id" in r.tags]
    assert len(trials) == 2 and all(json.loads(r.tags["automl.sampled"]) == ["train.optim.lr"] for r in trials)
