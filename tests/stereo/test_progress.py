"""stereo.progress: the action's first line (before any heavy import) and the progress bars over data."""
import subprocess
import sys
from pathlib import Path

import pytest

from stereo.progress import ProgressBar, announce, progress

REPO = Path(__file__).resolve().parents[2]


def test_first_line_names_action_spec_and_results_dir(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("results_dir: /jobs/a\nevaluate:\n  checkpoint: x.pth\n")
    assert announce("evaluate", str(spec)) == f"depth_net evaluate: spec {spec}, results_dir /jobs/a/evaluate"
    assert capsys.readouterr().out.splitlines() == [f"depth_net evaluate: spec {spec}, results_dir /jobs/a/evaluate"]
    assert announce("evaluate", str(spec), ["results_dir=/b"]).endswith("results_dir /b/evaluate")
    assert announce("evaluate", str(spec), ["evaluate.results_dir=/c"]).endswith("results_dir /c")
    spec.write_text("results_dir: /jobs/a\ntrain:\n  results_dir: /own\n")
    assert announce("train", str(spec)).endswith("results_dir /own")
    assert announce("convert", str(spec)).endswith("results_dir /jobs/a")  # convert writes into it
    assert announce("init-checkpoint", None, ["output=/p/x.pth"]).endswith(
        "spec (key=value pairs only), results_dir /p/init-checkpoint")
    assert announce("train", str(tmp_path / "missing.yaml")).endswith("results_dir (unknown: FileNotFoundError)")


def test_first_line_imports_nothing_heavy():
    """The line is printed before torch, Lightning or MLflow load (they take seconds)."""
    code = ("import sys; import stereo.cli; from stereo.progress import announce; announce('evaluate', 'x.yaml');"
            "heavy = [m for m in ('torch', 'pytorch_lightning', 'mlflow', 'onnxruntime') if m in sys.modules];"
            "assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("depth_net evaluate: spec x.yaml, results_dir ")


def test_progress_yields_everything_with_a_counted_bar_on_stdout(capsys, monkeypatch):
    assert list(progress(iter(range(5)), total=5, desc="evaluate")) == [0, 1, 2, 3, 4]
    out = capsys.readouterr().out
    assert "evaluate" in out and "5/5" in out
    with ProgressBar(total=4, desc="inference (onnxruntime)") as bar:
        bar.update(3)
        bar.update(1)
    assert "4/4" in capsys.readouterr().out
    monkeypatch.setenv("STEREO_PROGRESS", "0")
    assert list(progress(range(3), total=3, desc="quiet")) == [0, 1, 2]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("action", ["validate"])
def test_validate_prints_no_first_line(tmp_path, capsys, action):
    from stereo.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text("results_dir: /jobs/a\n")
    assert main([action, "-e", str(spec)]) == 0
    assert capsys.readouterr().out.startswith("model_name:")  # stdout is the resolved spec, nothing else
