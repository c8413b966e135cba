"""A PostgreSQL cluster of our own for the tracking server: made with ``initdb``, run with ``pg_ctl``.

    pg = PostgresCluster(Path("team/pg"), port=5433)
    pg.start()            # initdb on first use, then pg_ctl start -w; creates the database
    pg.url                # postgresql://mlflow:<password>@127.0.0.1:5433/mlflow (never printed: see .safe_url)
    pg.stop()

It listens on TCP only (no Unix socket), on 127.0.0.1 unless told otherwise, and asks for a password
(scram-sha-256) that is generated on first use and kept in ``<data>/../<data name>.password`` (mode 0600),
so the database URL carries a secret: :attr:`safe_url` is what consoles and logs show.

PostgreSQL refuses to run as root. Run as root (a container, CI), the cluster is made and run as the
``postgres`` user Debian's package creates (``runuser``), and the data folder must be reachable by that
user: a one-line error names the folder that is not, and the fix.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import List, Optional

from automl.errors import AutomlError, AutomlInputError

USER = "mlflow"  # the database role the server logs in as (owner of its database)
DATABASE = "mlflow"
SYSTEM_USER = "postgres"  # who runs the cluster when we are root (Debian's postgresql package makes it)
START_TIMEOUT_S = 60


class PostgresError(AutomlError):
    """The database could not be made or started; the message says why and where its log is."""

    exit_code = 1


class PostgresInputError(AutomlInputError, PostgresError):
    """No PostgreSQL on this machine, or a data folder it cannot use: exit 2 with the fix."""

    exit_code = 2


def bin_dir() -> Path:
    """The folder of ``initdb``/``pg_ctl``: ``$PG_BINDIR``, PATH, then Debian's /usr/lib/postgresql/<v>/bin."""
    env = os.environ.get("PG_BINDIR")
    if env:
        return Path(env)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    raise PostgresInputError("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin); "
                             "install it (Debian: apt-get install postgresql) or give --db <SQLAlchemy URL> of a "
                             "database you run yourself")


def _as_root() -> bool:
    return os.geteuid() == 0


class PostgresCluster:
    """One PostgreSQL data folder, its server process and the tracking database in it."""

    def __init__(self, data: Path, *, port: int, host: str = "127.0.0.1"):
        self.data, self.port, self.host = Path(data).resolve(), int(port), host
        self.password_file = self.data.with_name(self.data.name + ".password")
        self.log = self.data.with_name(self.data.name + ".log")

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{self._password()}@{self.host}:{self.port}/{DATABASE}"

    @property
    def safe_url(self) -> str:
        return f"postgresql://{USER}:***@{self.host}:{self.port}/{DATABASE}"

    def _password(self) -> str:
        return self.password_file.read_text().strip()

    def _run(self, argv: List[str], *, check: bool = True, env: Optional[dict] = None) -> subprocess.CompletedProcess:
        program = [str(bin_dir() / argv[0]), *argv[1:]]
        if _as_root():
            program = ["runuser", "-u", SYSTEM_USER, "--", *program]
        done = subprocess.run(program, capture_output=True, text=True, env={**os.environ, **(env or {})},
                              stdin=subprocess.DEVNULL, timeout=START_TIMEOUT_S * 2)
        if check and done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise PostgresError(f"{argv[0]} failed (exit {done.returncode}): {tail[0]}; log: {self.log}")
        return done

    def _check_reachable(self) -> None:
        """As root, every folder above the data folder must let the ``postgres`` user through."""
        if not _as_root():
            return
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresInputError(f"running as root, PostgreSQL needs the {SYSTEM_USER!r} user to run as, and "
                                     "there is none; install Debian's postgresql package or run as another "
                                     "user") from None
        for folder in [*reversed(self.data.parents)]:
            if folder.exists() and not os.stat(folder).st_mode & 0o001:
                raise PostgresInputError(f"--pg-data {self.data}: the {SYSTEM_USER} user that runs PostgreSQL for "
                                         f"root cannot pass through {folder} (mode "
                                         f"{oct(os.stat(folder).st_mode & 0o777)}); choose a folder under one "
                                         "it can reach (e.g. /srv/automl/pg) or run as a non-root user")

    def _own(self, *paths: Path) -> None:
        if _as_root():
            entry = pwd.getpwnam(SYSTEM_USER)
            for path in paths:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> bool:
        """initdb the data folder unless it already holds a cluster; True when it was made now."""
        if (self.data / "PG_VERSION").is_file():
            if not self.password_file.is_file():
                raise PostgresInputError(f"--pg-data {self.data} holds a cluster but its password file "
                                         f"{self.password_file} is gone; restore it or choose a new folder")
            return False
        if self.data.exists() and any(self.data.iterdir()):
            raise PostgresInputError(f"--pg-data {self.data} exists and is not a PostgreSQL data folder; give an "
                                     "empty or new folder")
        self._check_reachable()
        self.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                     0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
        self._own(self.data, self.password_file)
        self._run(["initdb", "-D", str(self.data), "-U", USER, f"--pwfile={self.password_file}",
                   "--auth-host=scram-sha-256", "--auth-local=reject", "-E", "UTF8", "--no-locale"])
        return True

    def start(self) -> None:
        """Start the server (initdb first when needed) and make sure the tracking database exists."""
        self.init()
        if self.running():  # left running by an `automl server` that was killed: use it where it listens
            self.port = int((self.data / "postmaster.pid").read_text().splitlines()[3])
            return
        if not self.log.exists():
            self.log.touch(mode=0o600)
            self._own(self.log)
        options = f"-p {self.port} -c listen_addresses={self.host} -c unix_socket_directories=''"
        self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                   "-t", str(START_TIMEOUT_S), "start"])
        env = {"PGPASSWORD": self._password()}
        exists = self._run(["psql", "-h", self.host, "-p", str(self.port), "-U", USER, "-d", "postgres", "-tAc",
                            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"], env=env)
        if exists.stdout.strip() != "1":
            self._run(["createdb", "-h", self.host, "-p", str(self.port), "-U", USER, DATABASE], env=env)

    def running(self) -> bool:
        return self._run(["pg_ctl", "-D", str(self.data), "status"], check=False).returncode == 0

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"], check=False)
        deadline = time.monotonic() + START_TIMEOUT_S
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
