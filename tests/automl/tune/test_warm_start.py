"""automl/tune/warm_start.py: one line per difference between two sweeps' search spaces (the reuse itself runs
end to end in tests/automl/e2e/test_multi_objective_e2e.py)."""
from automl.tune.warm_start import WarmStart, space_differences


def test_each_changed_parameter_is_one_line():
    old = {"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 1e-2}, "decay": {"low": 0.1, "high": 1.0},
           "same": {"low": 0, "high": 1}}
    new = {"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 1e-3}, "wd": {"low": 0.0, "high": 0.1},
           "same": {"low": 0, "high": 1, "notes": "ignored"}}
    lines = space_differences(old, new)
    assert lines == ['lr: {"distribution": "log_uniform", "low": 0.0001, "high": 0.01} -> {"distribution": '
                     '"log_uniform", "low": 0.0001, "high": 0.001} (trials outside the new range: dropped)',
                     "decay: searched in the warm-start sweep, not now (its trials set it: dropped)",
                     "wd: searched now, not in the warm-start sweep (its trials lack it: dropped)"]
    assert space_differences(old, old) == []


def test_the_summary_counts_what_was_reused_and_dropped():
    ws = WarmStart("/runs/a", "completed", trials=[{}, {}], dropped={"not completed": 1, "outside the new space": 2})
    assert ws.summary() == ("reusing 2 completed trial(s) of /runs/a (completed), 3 dropped (1 not completed; 2 "
                            "outside the new space)")
