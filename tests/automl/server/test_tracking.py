"""automl/server/tracking.py without a server: the command it starts, secrets kept out of consoles, and the
cluster refusal of a file store (automl/plan/cluster.py). The real server: tests/automl/e2e/test_cluster.py."""
from __future__ import annotations

from automl.plan.cluster import cluster_problems
from automl.server.tracking import main, redact, server_command


def test_database_urls_are_printed_without_their_password():
    assert redact("postgresql://mlflow:p@ss:w0rd@db:5432/mlflow") == "postgresql://mlflow:***@db:5432/mlflow"
    assert redact("could not connect to postgresql://u:pw@h/d: refused") == \
        "could not connect to postgresql://u:***@h/d: refused"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_the_server_proxies_artifacts_into_the_given_folder_or_store(tmp_path):
    argv = server_command("postgresql://u:pw@h/d", str(tmp_path / "a"), host="127.0.0.1", port=5001)
    assert argv[argv.index("--backend-store-uri") + 1] == "postgresql://u:pw@h/d"
    assert "--serve-artifacts" in argv and argv[argv.index("--artifacts-destination") + 1] == (tmp_path / "a").as_uri()
    assert argv[argv.index("--workers") + 1] == "1" and argv[argv.index("--port") + 1] == "5001"
    s3 = server_command("postgresql://h/d", "s3://bucket/mlflow", host="0.0.0.0", port=5000)
    assert s3[s3.index("--artifacts-destination") + 1] == "s3://bucket/mlflow"


def test_a_port_in_use_is_one_line_and_exit_2(capsys, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--db", "postgresql://u:pw@127.0.0.1:1/none", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"port {port}" in err[0] and "--port 0" in err[0]


def test_only_a_cluster_run_on_a_file_store_is_refused():
    assert cluster_problems(ray_address=None, tracking_uri="sqlite:////r/mlflow.db") == []
    assert cluster_problems(ray_address="10.0.0.1:6379", tracking_uri="http://10.0.0.2:5000") == []
    (line,) = cluster_problems(ray_address="10.0.0.1:6379", tracking_uri="sqlite:////r/mlflow.db")
    assert "SQLite file" in line and "automl server" in line and "--tracking-uri http://" in line
