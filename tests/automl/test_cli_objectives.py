"""`automl run --objective/--constraint/--warm-start` flags: a bad one is refused in the plan with exit 2 and one
line that says the fix, before anything is created; a good one shows in the launch review (no sweep runs here)."""
from __future__ import annotations

import pytest

from automl.cli import main

TWO = ["--objective", "val/epe:min", "--objective", "train/time_s:min"]


@pytest.mark.parametrize("flags, message", [
    (["--objective", "val/epee:min"], "--objective val/epee:min: no trial reports 'val/epee' (did you mean "
                                      "'val/epe'?)"),
    (["--objective", "val/epe:down"], "--objective val/epe:down: mode 'down' is not min or max; e.g. --objective "
                                      "val/epe:min"),
    (["--objective", "val/epe"], "--objective val/epe: give the direction after a colon"),
    (["--constraint", "val/lat<=25"], "--constraint val/lat<=25: no trial reports 'val/lat'"),
    (["--constraint", "val/epe=3"], "--constraint 'val/epe=3': '=' is not a bound; use <= or >="),
    (["--constraint", "val/epe<="], "--constraint 'val/epe<=': expected METRIC<=NUMBER or METRIC>=NUMBER"),
    (["--objective", "deploy/latency_ms:min"], "add --score-on deploy"),
    ([*TWO, "--scheduler", "asha"], "--scheduler asha stops trials by ranking one validation metric and cannot rank "
                                    "the objectives (val/epe, train/time_s); drop --scheduler"),
    ([*TWO, "--algorithm", "cmaes"], "--algorithm cmaes (Optuna's CmaEsSampler) optimises one objective"),
    (["--metric", "val/epe", "--objective", "val/bp3:min"], "--metric val/epe and --objective both name the objective"),
    (["--warm-start", "nowhere"], "--warm-start nowhere: "),
    ([*TWO, "--warm-start", "x", "--algorithm", "grid"], "--algorithm grid runs every point whatever the history"),
])
def test_a_bad_objective_flag_is_one_line_exit_2_and_nothing_is_created(tmp_path, capsys, sweep_overrides, flags,
                                                                        message):
    out = tmp_path / "r"
    assert main(["run", "--skill", "tiny-demo", "--dry-run", "--no-probe", "--output", str(out), *flags,
                 *sweep_overrides(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("automl: error: ") and message in err[0], err
    assert not out.exists()


def test_two_objectives_show_in_the_review_with_the_scheduler_auto_picked(tmp_path, capsys, sweep_overrides):
    assert main(["run", "--skill", "tiny-demo", "--dry-run", "--no-probe", "--output", str(tmp_path / "r"), *TWO,
                 "--constraint", "val/epe<=30", "--algorithm", "nsga2", *sweep_overrides(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "objectives   val/epe (min), train/time_s (min): the Pareto front" in out
    assert "best = the front's trial best by val/epe (the first objective)" in out
    assert "constraint   val/epe <= 30: only trials that meet it are on the front or best" in out
    assert "note: scheduler none (--scheduler auto): early stopping ranks trials by one metric" in out
    assert "scheduler    none" in out and "algorithm    nsga2: Optuna NSGAIISampler" in out


def test_one_objective_keeps_asha_by_default(tmp_path, capsys, sweep_overrides):
    assert main(["run", "--skill", "tiny-demo", "--dry-run", "--no-probe", "--output", str(tmp_path / "r"),
                 "--objective", "epe:min", *sweep_overrides(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "objective    val/epe (min), the best validation" in out and "scheduler    asha" in out


def test_resume_refuses_new_objectives(tmp_path, capsys):
    (tmp_path / "launch.json").write_text("{}")
    assert main(["run", "--resume", str(tmp_path), "--objective", "val/epe:min"]) == 2
    assert "the saved launch.json decides objective; drop those options" in capsys.readouterr().err
