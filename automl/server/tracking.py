"""`automl server`: an MLflow tracking server on a real database, for sweeps on a cluster and for teams.

    automl server                                  # PostgreSQL in ./automl_server/pg, artifacts beside it
    automl server --pg-data /srv/automl/pg --artifacts /shared/mlflow-artifacts --host 0.0.0.0
    automl server --db postgresql://user:pw@db.internal/mlflow --artifacts s3://bucket/mlflow

It prints the tracking URI to give every sweep (``automl run ... --tracking-uri http://host:port``, or
``MLFLOW_TRACKING_URI``). Why: a sweep on a Ray cluster writes from every node, and a SQLite file on a
network filesystem is what SQLite's own FAQ warns against (locking is unreliable there), so `automl run
--ray-address` refuses a file store (automl/plan/cluster.py). The server owns the database; trials on any
node talk HTTP to it, and their artifacts go through it (``--serve-artifacts``) into ``--artifacts`` (a
folder, or any store MLflow's artifact repositories take: s3://, gs://, ...), so nodes need no access to
the artifact store themselves.

Without ``--db`` it runs a PostgreSQL cluster of its own (automl/server/postgres.py: initdb on first use,
loopback TCP, a generated password kept 0600 beside the data folder). Ctrl-C, SIGTERM or SIGHUP stops the
MLflow server and then that database; a second `automl server` on the same folder picks both up again.
Database URLs are never printed with their password.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from automl.server.postgres import PostgresCluster, PostgresError, bin_dir
from automl.ui.server import (LIGHT_ENV, Stop, UiError, UiInputError, free_port, is_loopback, port_in_use,
                              spawn_guarded, stoppable)

DEFAULT_HOME = Path("automl_server")
DEFAULT_PORT = 5000


def redact(url: str) -> str:
    """A database URL with its password replaced by *** (for consoles and logs)."""
    return re.sub(r"(://[^:/@\s]+:)[^\s/]*@", r"\1***@", url)


def server_command(db_url: str, artifacts: str, *, host: str, port: int, python: str = sys.executable) -> list:
    """The `mlflow server` argv: the database, artifacts proxied into `artifacts`, one light worker."""
    if "://" not in artifacts:
        artifacts = Path(artifacts).expanduser().resolve().as_uri()
    return [python, "-m", "mlflow", "server", "--host", host, "--port", str(int(port)), "--workers", "1",
            "--backend-store-uri", db_url, "--serve-artifacts", "--artifacts-destination", artifacts]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="automl server", description="An MLflow tracking server on PostgreSQL (or any database MLflow "
        "takes) for sweeps on a Ray cluster and for teams. Prints the --tracking-uri to use; Ctrl-C stops it.")
    db = p.add_mutually_exclusive_group()
    db.add_argument("--pg-data", metavar="DIR", help="PostgreSQL data folder, made on first use (default "
                    f"./{DEFAULT_HOME}/pg); its password is kept in DIR.password (mode 0600)")
    db.add_argument("--db", metavar="URL", help="use this SQLAlchemy database URL instead of a PostgreSQL of our "
                    "own (postgresql://, mysql://, ...); the database must exist")
    p.add_argument("--pg-port", type=int, default=0, help="port of our PostgreSQL (default 0: a free one)")
    p.add_argument("--artifacts", metavar="PATH|URI", help="where artifacts go: a folder every user of the server "
                   f"can reach through it, or s3://..., gs://... (default ./{DEFAULT_HOME}/artifacts)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine "
                   "only; a cluster needs an address its nodes reach, e.g. 0.0.0.0 behind a firewall)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"server port (default {DEFAULT_PORT}; 0 picks "
                   "a free one)")
    p.add_argument("--log", help=f"server log (default ./{DEFAULT_HOME}/mlflow-server.log)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    home = Path(args.pg_data).expanduser().resolve().parent if args.pg_data else DEFAULT_HOME.resolve()
    if not is_loopback(args.host):
        print(f"automl server: warning: --host {args.host} serves every run, param and artifact to anyone who "
              "reaches this port, without authentication; keep it behind a firewall or an SSH tunnel",
              file=sys.stderr)
    state = {"pg": None, "server": None}

    def cleanup() -> None:  # the MLflow server first, then the database it writes to
        if state["server"] is not None:
            state["server"].stop()
        if state["pg"] is not None:
            state["pg"].stop()

    with stoppable(cleanup):
        try:
            port = free_port(args.host) if args.port == 0 else args.port
            if port_in_use(args.host, port):
                raise UiInputError(f"port {port} on {args.host} is already in use; pass --port 0 to pick a free one")
            if args.db:
                db_url = args.db
            else:
                bin_dir()  # PostgreSQL installed? one line with the fix if not
                data = Path(args.pg_data).expanduser() if args.pg_data else home / "pg"
                pg = state["pg"] = PostgresCluster(data, port=args.pg_port or free_port("127.0.0.1"))
                print(f"automl server: starting PostgreSQL in {pg.data} ...", flush=True)
                pg.start()
                db_url = pg.url
            artifacts = args.artifacts or str(home / "artifacts")
            log = Path(args.log).expanduser() if args.log else home / "mlflow-server.log"
            print(f"automl server: database {redact(db_url)}; artifacts {artifacts}", flush=True)
            server = state["server"] = spawn_guarded(server_command(db_url, artifacts, host=args.host, port=port),
                                                     dict(LIGHT_ENV), log, f"http://{args.host}:{port}", wait=False)
            server.wait_ready()
            url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{port}"
            print(f"automl server: MLflow tracking server at {url}   (Ctrl-C stops it; log: {log})", flush=True)
            print(f"  use it:  automl run ... --tracking-uri {url}   (or export MLFLOW_TRACKING_URI={url})",
                  flush=True)
            code = server.proc.wait()
            print(f"automl server: the MLflow server exited with code {code}; log: {log}", file=sys.stderr)
            return 1
        except (UiError, PostgresError, ValueError) as exc:
            print(f"automl server: {redact(str(exc))}", file=sys.stderr)
            return getattr(exc, "exit_code", 2)
        except (Stop, KeyboardInterrupt):
            print("\nautoml server: stopping ...", flush=True)
            return 0

if __name__ == "__main__":
    sys.exit(main())
