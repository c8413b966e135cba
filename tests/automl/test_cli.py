"""automl/cli.py: help, dry run, resume rules, one-line errors (no sweep is started here)."""
import subprocess
import sys

from automl.cli import main


def test_help_explains_the_run(capsys):
    out = subprocess.run([sys.executable, "-m", "automl.cli", "run", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for needle in ("--policy", "--algorithm", "bayesian", "--scheduler", "asha", "--num-samples", "--resume",
                   "--ray-address", "--max-failures", "--dry-run", "never re-run", "key=value"):
        assert needle in out, needle


def test_dry_run_prints_the_review_and_starts_nothing(tmp_path, capsys, sweep_overrides):
    assert main(["run", "--skill", "tiny-demo", "--dry-run", "--no-probe", "--output", str(tmp_path / "r"),
                 *sweep_overrides(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "launch review" in out and "decision     sweep" in out and "NOT READY" not in out
    assert not (tmp_path / "r").exists()


def test_dry_run_of_a_spec_that_is_not_ready_exits_2(tmp_path, capsys):
    assert main(["run", "--skill", "tiny-demo", "--dry-run", "--output", str(tmp_path / "r")]) == 2
    captured = capsys.readouterr()
    assert "NOT READY" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("automl: error: NOT READY:") and "<train_annotations>" in err[0]
    assert not (tmp_path / "r").exists()


def test_unready_spec_refuses_to_launch_with_one_line(tmp_path, capsys):
    assert main(["run", "--skill", "tiny-demo", "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("automl: error: not launching:") and "<" in err[0]


def test_unknown_skill_is_bad_input(tmp_path, capsys):
    assert main(["run", "--skill", "tiny-dmo", "--dry-run"]) == 2
    assert "did you mean 'tiny-demo'" in capsys.readouterr().err


def test_resume_refuses_options_the_plan_decides(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path), "--num-samples", "3"]) == 2
    assert "the saved launch.json decides num_samples" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path), "--gpus-per-trial", "1"]) == 2
    assert "the saved launch.json decides gpus_per_trial" in capsys.readouterr().err


def test_override_of_a_searched_key_is_shown_fixed(tmp_path, capsys, sweep_overrides):
    assert main(["run", "--skill", "tiny-demo", "--dry-run", "--output", str(tmp_path / "r"),
                 "--no-probe", *sweep_overrides(tmp_path, n_train=4), "learning_rate=5e-4"]) == 0
    out = capsys.readouterr().out
    assert "train.optim.lr fixed at 5e-4 by your override; not searched" in out
    assert "train.optim.lr=5e-4" in out and "decision     sweep" in out


def test_request_phrases_reach_the_review(tmp_path, capsys, sweep_overrides):
    data = sweep_overrides(tmp_path)
    assert main(["run", "--skill", "tiny-demo", "--request", "compare with plain training", "--dry-run",
                 "--no-probe", "--output", str(tmp_path / "r"), *data]) == 0
    assert 'mentions "plain training" in a comparison, not as a request' in capsys.readouterr().out
    assert main(["run", "--skill", "tiny-demo", "--request", "automl_policy: off", "--dry-run",
                 "--no-probe", "--output", str(tmp_path / "r"), *data]) == 0
    assert "decision     plain (policy off)" in capsys.readouterr().out


def test_policy_off_dry_run_is_plain(tmp_path, capsys, sweep_overrides):
    assert main(["run", "--skill", "tiny-demo", "--policy", "off", "--dry-run", "--output", str(tmp_path),
                 *sweep_overrides(tmp_path)]) == 0
    assert "plain (policy off)" in capsys.readouterr().out


def test_ui_subcommand_is_delegated():
    out = subprocess.run([sys.executable, "-m", "automl.cli", "ui", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "automl ui" in out.stdout


def test_a_mistyped_metric_is_refused_before_any_trial(tmp_path, capsys, sweep_overrides):
    # it used to pass the review and fail every trial after Ray had trained it (exit 1, Ray tracebacks)
    assert main(["run", "--skill", "tiny-demo", "--dry-run", "--no-probe", "--metric", "val/epee", "--output",
                 str(tmp_path / "r"), *sweep_overrides(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("automl: error: --metric val/epee: no trial reports 'val/epee' (did "
                                               "you mean 'val/epe'?); use one of val/epe, "), err
    assert not (tmp_path / "r").exists()


def test_a_bad_option_value_is_one_line_not_the_usage_block():
    done = subprocess.run([sys.executable, "-m", "automl.cli", "run", "--algorithm", "foo"], capture_output=True,
                          text=True)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()  # argparse quotes the choices differently across Python versions
    assert len(lines) == 1 and lines[0].startswith("automl run: error: argument --algorithm: invalid choice: 'foo'")
    assert "bayesian" in lines[0] and lines[0].endswith("; see `automl run --help`"), lines
