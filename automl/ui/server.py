"""`automl ui`: the MLflow UI on 127.0.0.1 for a results folder, a sweep folder or a tracking URI.

    automl ui --store demo_runs/results       # finds demo_runs/results/mlflow.db
    automl ui --store sqlite:////abs/mlflow.db --port 0

Light footprint (measured, docs/reference stack_facts §1.6): `mlflow server` with defaults starts
4 uvicorn workers plus a job runner with 6 huey consumers (15 processes, 2.5 GB RSS, ~20 s to ready);
`--workers 1` with ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` is 2 processes, ~0.5 GB, ~7 s. A
tracking UI needs nothing more.

The server never outlives us. It runs under :mod:`automl.ui.guard` in a session of its own (so a
terminal's Ctrl-C reaches only us); Ctrl-C, SIGTERM and SIGHUP here stop the whole server group
(SIGTERM, then SIGKILL after a grace period), and if we are SIGKILLed the guard notices (parent-death
signal, pid poll) and takes the server down itself.

The server log goes next to the store (``<store dir>/ui/automl-ui-<port>.log``) or, for a remote
store, into a private temporary folder; it is opened without following symlinks.
"""
from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

from automl.errors import AutomlError, AutomlInputError
from stereo.tracking import artifact_root, check_tracking_uri

DB_NAME = "mlflow.db"
DEFAULT_PORT = 5000
READY_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0  # > the guard's own grace (automl/ui/guard.py GRACE_S)
GUARD = Path(__file__).with_name("guard.py")
LIGHT_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no huey job runner (most of the footprint)
             "MLFLOW_DISABLE_TELEMETRY": "true"}  # offline machines: no telemetry attempts


class UiError(AutomlError):
    """The UI cannot start; the message says why and what to do."""

    exit_code = 1


class UiInputError(AutomlInputError, UiError):
    """Bad input (store, port, host, log path): exit 2, before anything starts."""

    exit_code = 2


def resolve_store(store: Optional[str], env: Mapping[str, str] = os.environ) -> str:
    """Tracking URI for `store`: a URI as is; a .db file; a folder holding mlflow.db (or a parent of it
    up to two levels, so a sweep folder inside a results folder works); else ``MLFLOW_TRACKING_URI``."""
    if not store:
        uri = env.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise UiInputError("no store given and MLFLOW_TRACKING_URI is not set; pass --store <results dir> "
                          "(the folder holding mlflow.db) or --store sqlite:////abs/path/mlflow.db")
        return check_tracking_uri(uri)
    if "://" in store:
        return check_tracking_uri(store)
    path = Path(store).expanduser().resolve()
    if path.is_file():
        return check_tracking_uri("sqlite:///" + str(path))
    if path.is_dir():
        for folder in (path, path.parent, path.parent.parent):
            if (folder / DB_NAME).is_file():
                return "sqlite:///" + str(folder / DB_NAME)
        raise UiInputError(f"no {DB_NAME} in {path} or its two parent folders; point --store at the results "
                      "folder of a run or sweep (where mlflow.db was written)")
    raise UiInputError(f"--store {store}: no such file or folder; pass a results folder, a .db file or a "
                  "tracking URI")


def ui_command(tracking_uri: Optional[str], run_dir: str | os.PathLike | None = None,
               executable: str = sys.executable) -> str:
    """`automl ui --store ...` for a sweep's store, spelled so that it works as printed: the console script
    when the one on PATH belongs to this interpreter; else the script beside this interpreter (a `make`
    checkout's `.venv/bin/automl`, which is not on PATH); else `<python> -m automl.cli`."""
    import shlex

    from automl.commands import program as automl_program

    if tracking_uri and tracking_uri.startswith("sqlite:///"):
        store = str(Path(tracking_uri[len("sqlite:///"):]).parent)
    else:
        store = tracking_uri or str(run_dir or ".")
    program = automl_program("automl", "automl.cli", executable)
    return f"{program} ui --store {shlex.quote(store)}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def build_command(store_uri: str, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, workers: int = 1,
                  python: str = sys.executable) -> tuple:
    """(argv, extra env) for a light `mlflow server` on `store_uri` (no shell: arguments stay arguments)."""
    argv = [python, "-m", "mlflow", "server", "--host", host, "--port", str(int(port)),
            "--workers", str(int(workers)), "--backend-store-uri", store_uri]
    root = artifact_root(store_uri)
    if root is not None:
        # runs already carry file:// artifact URIs next to the DB; new experiments made in the UI go there
        # too, and the server reads those files directly (no artifact proxy to run)
        argv += ["--default-artifact-root", root.as_uri(), "--no-serve-artifacts"]
    return argv, dict(LIGHT_ENV)


class UiServer:
    """A running `mlflow server` under its guard; `stop()` ends the guard's whole process group."""

    def __init__(self, proc: subprocess.Popen, url: str, log_path: Path):
        self.proc, self.url, self.log_path = proc, url, log_path

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise UiError(f"mlflow server exited with code {self.proc.returncode} before it was ready; "
                              f"its log ({self.log_path}) ends with:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        self.stop()
        raise UiError(f"mlflow server did not answer {self.url}/health within {timeout:.0f} s; "
                      f"see {self.log_path}")

    def stop(self, grace: float = STOP_GRACE_S) -> int:
        """SIGTERM the group, SIGKILL what is left after `grace` seconds; returns the guard's exit code."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._signal(signal.SIGKILL)  # anything that outlived the guard
        return self.proc.returncode

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the guard is its own session leader: pgid == pid
        except (ProcessLookupError, PermissionError):
            pass


def default_log_path(store_uri: str, port: int) -> Path:
    """``<store dir>/ui/automl-ui-<port>.log`` for a local store, else a fresh private temp folder's."""
    root = artifact_root(store_uri)
    folder = root.parent / "ui" if root is not None else Path(tempfile.mkdtemp(prefix="automl-ui-"))
    return folder / f"automl-ui-{port}.log"


def open_log(path: Path) -> int:
    """Open `path` for writing (0600) without following a symlink planted at its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise UiInputError(f"cannot write the server log {path}: {exc.strerror or exc}"
                           f"{' (it is a symlink)' if path.is_symlink() else ''}; pass --log <file> "
                           "in a folder you own") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_server(store: Optional[str], *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 log_path: Optional[str] = None, wait: bool = True) -> UiServer:
    uri = resolve_store(store)
    port = free_port(host) if port == 0 else port
    if port_in_use(host, port):
        raise UiInputError(f"port {port} on {host} is already in use (another MLflow UI?); pass --port 0 to "
                           "pick a free one, or --port <n>")
    argv, extra_env = build_command(uri, host=host, port=port)
    log = Path(log_path) if log_path else default_log_path(uri, port)
    return spawn_guarded(argv, extra_env, log, f"http://{host}:{port}", wait=wait)


def spawn_guarded(argv: Sequence[str], extra_env: Mapping[str, str], log: Path, url: str, *,
                  wait: bool = True) -> UiServer:
    """Start `argv` (an `mlflow server`) under :mod:`automl.ui.guard` in a session of its own, its output in
    `log`; wait until `url`/health answers unless told not to."""
    fd = open_log(log)
    try:
        guarded = [sys.executable, str(GUARD), str(os.getpid()), "--", *argv]
        proc = subprocess.Popen(guarded, env={**os.environ, **extra_env}, stdout=fd, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        os.close(fd)
    server = UiServer(proc, url, log)
    if wait:
        server.wait_ready()
    return server


def _print_sweep_links(uri: str, url: str) -> None:
    """The newest sweep's ranked runs view and compare view at this server's address, if the store has one."""
    from automl.ui.links import latest_sweep_links
    from stereo.tracking import MlflowTracker

    try:
        links, _ = latest_sweep_links(MlflowTracker(uri), base=url)
    except Stop:  # Ctrl-C while the store is read: stop, as anywhere else
        raise
    except Exception:  # noqa: BLE001 - a store without sweeps (plain runs): nothing to point at
        return
    print(f"latest sweep:  {links.runs}", flush=True)
    if links.compare:
        print(f"compare top:   {links.compare}", flush=True)


class Stop(Exception):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) reached a foreground server command (`automl ui|server`)."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_stop(signum, frame) -> None:
    raise Stop(signal.Signals(signum).name)


@contextlib.contextmanager
def stoppable(cleanup) -> Iterator[None]:
    """Inside, a stop signal raises :class:`Stop` (also during start-up, so it takes the server down); on the
    way out the signals are ignored while ``cleanup()`` runs (a second Ctrl-C must not cut it short), then the
    previous handlers come back."""
    previous = {sig: signal.signal(sig, _raise_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        try:
            cleanup()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="automl ui", description="Open the MLflow UI on a results folder. The server stops with this "
                                      "command: Ctrl-C, SIGTERM, a closed terminal or a kill of this process.")
    parser.add_argument("--store", help="results or sweep folder (holding mlflow.db), a .db file, or a "
                                        "tracking URI; default: $MLFLOW_TRACKING_URI")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind; the default keeps the UI private to this machine")
    parser.add_argument("--log", help="server log file (default: <store dir>/ui/automl-ui-<port>.log)")
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        print(f"automl ui: warning: --host {args.host} exposes the UI (and every run, param and artifact in "
              "the store) to other machines without authentication; use 127.0.0.1 and an SSH tunnel unless "
              "that is what you want", file=sys.stderr)
    state = {"server": None, "stopping": False}

    def cleanup() -> None:
        if state["server"] is not None:
            state["server"].stop()
        if state["stopping"]:
            print("Stopped.", flush=True)

    with stoppable(cleanup):
        try:
            server = state["server"] = start_server(args.store, host=args.host, port=args.port, log_path=args.log,
                                                    wait=False)
            print(f"Starting the MLflow UI on {resolve_store(args.store)} ...", flush=True)
            server.wait_ready()
            print(f"MLflow UI: {server.url}   (Ctrl-C stops it; server log: {server.log_path})", flush=True)
            _print_sweep_links(resolve_store(args.store), server.url)
            code = server.proc.wait()
            print(f"automl ui: the server exited with code {code}; log: {server.log_path}", file=sys.stderr)
            return 1
        except (UiError, ValueError) as exc:  # ValueError: check_tracking_uri's one-line refusals
            print(f"automl ui: {exc}", file=sys.stderr)
            return getattr(exc, "exit_code", 2)
        except (Stop, KeyboardInterrupt):
            state["stopping"] = True
            print("\nStopping the MLflow UI ...", flush=True)
            return 0

if __name__ == "__main__":
    sys.exit(main())
