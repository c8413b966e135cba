"""Runs the benchmark's sweeps as the user would (`automl run` subprocesses), N at a time, resumably.

Layout under the root (default bench/out/search_efficiency, git-ignored)::

    task/                      data + pre-trained checkpoint (bench/search_efficiency/task.py)
    sweeps/<algorithm>_seed<k>/  one sweep each (results.json, ledger/, mlflow.db ...)
    sweeps/spread/             30 random settings, no early stopping: how much settings matter
    logs/<sweep>.log           each sweep's console output
    walls.json                 wall time of every sweep run by this script

A sweep whose results.json says complete is skipped; one that was cut is continued with
`automl run --resume` (finished trials are never re-run), so the benchmark resumes where it stopped.

Fixed costs: on a busy 2-core machine `ray.init` plus a new MLflow store (schema migrations) took up to
two minutes of a sweep. So the sweeps join one local Ray head started here (`--ray-address`, as on a
cluster; its process group is stopped at the end) and each sweep's store starts as a copy of an empty,
migrated one. Both are the user's own options; the per-trial path is unchanged.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from bench.search_efficiency.algorithms import ALGORITHMS, num_samples, sampler_seed, sweep_argv
from bench.search_efficiency.task import EPOCHS, SKILL, SPACE_FILE

SPREAD = "spread"
# sequential ones first so that the two share the machine, then the 2-at-a-time Ray sweeps
ORDER = ("gp", "optuna", "tpe+asha", "tpe", "random+asha", "random")
_LOCK = threading.Lock()
_STOP = threading.Event()  # set on Ctrl-C/SIGTERM: no new sweep starts, running ones are stopped gracefully
_LIVE: set = set()


def sweep_dir(root: Path, name: str, seed: Optional[int] = None) -> Path:
    return root / "sweeps" / (name if seed is None else f"{name}_seed{seed}")


def is_complete(run_dir: Path) -> bool:
    path = run_dir / "results.json"
    if not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text())["progress"]["complete"])
    except (ValueError, KeyError, TypeError):
        return False


def _record_wall(root: Path, key: str, entry: dict) -> None:
    from stereo.atomic_io import atomic_write_json

    with _LOCK:
        path = root / "walls.json"
        walls = json.loads(path.read_text()) if path.is_file() else {}
        walls[key] = entry
        atomic_write_json(path, walls)


# Ray 2.60 turns token auth on; a driver joining a local `ray start` head was refused without the token
# (tests/automl/e2e/test_cluster.py), so this loopback-only head runs without it
RAY_ENV = {"RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ray_head(num_cpus: int, log: Path) -> Iterator[str]:
    """A local Ray head (`ray start --head --block` in its own session) for the sweeps to join; its whole
    process group is stopped on the way out."""
    ray = Path(sys.executable).with_name("ray")
    port = _free_port()
    temp = Path(f"/tmp/sa-bench-{os.getpid()}")  # short: Ray's socket paths must stay under 107 bytes
    env = {**os.environ, **RAY_ENV}
    log.parent.mkdir(parents=True, exist_ok=True)
    head = subprocess.Popen([str(ray), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                             f"--num-cpus={num_cpus}", "--include-dashboard=false", f"--temp-dir={temp}", "--block",
                             "--disable-usage-stats"], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while subprocess.run([str(ray), "status", f"--address={address}"], capture_output=True,
                             env=env).returncode != 0:
            if head.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the benchmark's Ray head did not start; see {log}")
            time.sleep(2)
        yield address
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if head.poll() is not None:
                break
            try:
                os.killpg(head.pid, sig)
                head.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(temp, ignore_errors=True)


def empty_store(root: Path) -> Path:
    """An MLflow sqlite store with its schema in place, copied into each new sweep folder."""
    path = root / "empty_mlflow.db"
    if not path.is_file():
        from mlflow.tracking import MlflowClient

        tmp = root / "empty_mlflow.tmp.db"
        tmp.unlink(missing_ok=True)
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()  # creates and migrates the schema
        os.replace(tmp, path)
    return path


def command(root: Path, name: str, seed: Optional[int], budget: int, overrides: List[str],
            spread: int = 30, ray_address: Optional[str] = None) -> List[str]:
    """The subprocess command line of one sweep (a cut `automl run` sweep is resumed instead)."""
    run_dir = sweep_dir(root, name, seed)
    py = [sys.executable, "-m"]
    join = ["--ray-address", ray_address] if ray_address else []
    if name == "optuna":
        return py + ["bench.search_efficiency.optuna_ref", "--run-dir", str(run_dir), "--seed",
                     str(sampler_seed(name, seed)), "--num-samples", str(num_samples(name, budget, EPOCHS)),
                     "--skill", SKILL, "--search-space", str(SPACE_FILE), *overrides]
    if (run_dir / "launch.json").is_file():
        return py + ["automl.cli", "run", "--resume", str(run_dir), *join]
    if name == SPREAD:
        return py + ["automl.cli", "run", "--skill", SKILL, "--policy", "on", "--search-space", str(SPACE_FILE),
                     "--algorithm", "random", "--scheduler", "none", "--num-samples", str(spread),
                     "--max-concurrent", "2", "--seed", str(sampler_seed(SPREAD, 0)), "--output", str(run_dir),
                     *join, *overrides]
    return py + ["automl.cli", *sweep_argv(name, seed, budget, EPOCHS, str(run_dir), str(SPACE_FILE), SKILL,
                                           join + overrides)]


def _run_one(root: Path, name: str, seed: Optional[int], budget: int, overrides: List[str], spread: int,
             ray_address: Optional[str]) -> None:
    run_dir = sweep_dir(root, name, seed)
    if is_complete(run_dir) or _STOP.is_set():
        return
    key = run_dir.name
    resumed = run_dir.exists()
    if not resumed and name != "optuna":
        run_dir.mkdir(parents=True)
        shutil.copyfile(empty_store(root), run_dir / "mlflow.db")
    argv = command(root, name, seed, budget, overrides, spread, ray_address)
    log = root / "logs" / f"{key}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **RAY_ENV})
        with _LOCK:
            _LIVE.add(proc)
        code = proc.wait()
        with _LOCK:
            _LIVE.discard(proc)
    wall = time.time() - start
    _record_wall(root, key, {"wall_s": round(wall, 1), "exit": code, "resumed": resumed, "started": start})
    print(f"{key}: exit {code} after {wall:.0f} s{' (resumed)' if resumed else ''}", flush=True)


def run_sweeps(root: Path, seeds: Sequence[int], budget: int, overrides: List[str], *, jobs: int = 2,
               spread: int = 30, algorithms: Sequence[str] = ORDER, shared_ray: bool = True) -> None:
    """The spread sweep, then every (seed, algorithm) sweep, `jobs` at a time, seed by seed; with
    `shared_ray` the sweeps join one local Ray head with 2 CPUs per job (each sweep runs 2 trials at once)."""
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {', '.join(unknown)}; known: {', '.join(ALGORITHMS)}")
    work: List[Tuple[str, Optional[int]]] = [(SPREAD, None)] if spread else []
    names = [n for n in ORDER if n in algorithms] + [n for n in algorithms if n not in ORDER]
    work += [(name, seed) for seed in seeds for name in names]
    todo = [(n, s) for n, s in work if not is_complete(sweep_dir(root, n, s))]
    if not todo:
        return
    empty_store(root)
    with contextlib.ExitStack() as stack:
        head = ray_head(2 * max(1, jobs), root / "logs" / "ray_head.log") if shared_ray else None
        address = stack.enter_context(head) if head else None
        pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        old = signal.signal(signal.SIGTERM, _term_as_interrupt)
        try:
            futures = [pool.submit(_run_one, root, name, seed, budget, overrides, spread, address)
                       for name, seed in todo]
            for future in futures:
                future.result()
        except KeyboardInterrupt:
            _stop_running()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            signal.signal(signal.SIGTERM, old)


def _term_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_running(grace_s: float = 90.0) -> None:
    """Stop: SIGTERM every running sweep (automl run stops gracefully, resumable), SIGKILL after grace."""
    _STOP.set()
    with _LOCK:
        live = list(_LIVE)
    for proc in live:
        proc.terminate()
    deadline = time.time() + grace_s
    for proc in live:
        try:
            proc.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
