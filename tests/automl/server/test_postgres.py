"""automl/server/postgres.py without a database server: where PostgreSQL is found, and the data folders it
refuses before anything starts (each a one-line error with the fix, exit 2)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from automl.errors import exit_code_of
from automl.server import postgres
from automl.server.postgres import PostgresCluster, PostgresInputError, bin_dir


def test_bin_dir_prefers_pg_bindir_then_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PG_BINDIR", str(tmp_path))
    assert bin_dir() == tmp_path
    monkeypatch.delenv("PG_BINDIR")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "initdb").write_text("#!/bin/sh\n")
    (fake / "initdb").chmod(0o755)
    monkeypatch.setenv("PATH", str(fake))
    assert bin_dir() == fake


def test_no_postgresql_is_bad_input_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("PG_BINDIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "Path", lambda *a: tmp_path / "none" if a == ("/usr/lib/postgresql",) else Path(*a))
    with pytest.raises(PostgresInputError) as err:
        bin_dir()
    assert "apt-get install postgresql" in str(err.value) and "--db" in str(err.value)
    assert exit_code_of(err.value) == 2


def test_a_folder_that_is_not_a_data_folder_is_refused(tmp_path):
    data = tmp_path / "pg"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    with pytest.raises(PostgresInputError, match="is not a PostgreSQL data folder"):
        PostgresCluster(data, port=5999).init()
    assert (data / "notes.txt").read_text() == "mine" and not (tmp_path / "pg.password").exists()


def test_a_cluster_without_its_password_file_is_refused(tmp_path):
    data = tmp_path / "pg"
    data.mkdir()
    (data / "PG_VERSION").write_text("15\n")
    with pytest.raises(PostgresInputError, match="password file .* is gone"):
        PostgresCluster(data, port=5999).init()


@pytest.mark.skipif(os.geteuid() != 0, reason="the postgres-user path is taken only when run as root")
def test_as_root_a_folder_the_postgres_user_cannot_reach_is_refused(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(PostgresInputError) as err:
        PostgresCluster(private / "pg", port=5999).init()
    assert "cannot pass through" in str(err.value) and "run as a non-root user" in str(err.value)
    assert not (private / "pg").exists()


def test_the_url_carries_the_password_and_the_safe_url_does_not(tmp_path):
    pg = PostgresCluster(tmp_path / "pg", port=5999)
    pg.password_file.write_text("s3cret\n")
    assert pg.url == "postgresql://mlflow:s3cret@127.0.0.1:5999/mlflow"
    assert "s3cret" not in pg.safe_url and pg.safe_url.endswith("@127.0.0.1:5999/mlflow")
