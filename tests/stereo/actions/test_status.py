"""status.json writing and reading."""
from __future__ import annotations

import json
import math
import re

import pytest

from stereo.actions.status import StatusLogger, last_finite_kpi, last_kpi, read_status


def test_lines_have_tao_fields_and_formats(tmp_path):
    log = StatusLogger(tmp_path)
    log.write("STARTED", "Starting train.")
    log.write("RUNNING", "epoch 0", kpi={"train_loss": 1.5}, categorical={"split": {"a": 1}},
              graphical={"loss": [1.5]})
    raw = (tmp_path / "status.json").read_text().splitlines()
    assert len(raw) == 2
    first, second = (json.loads(x) for x in raw)
    assert re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", first["date"])
    assert re.fullmatch(r"\d{1,2}:\d{1,2}:\d{1,2}", first["time"])
    assert first["status"] == "STARTED" and first["verbosity"] == "INFO" and first["message"] == "Starting train."
    assert "kpi" not in first and "categorical" not in first
    assert second["kpi"] == {"train_loss": 1.5}
    assert second["categorical"] == {"split": {"a": 1}} and second["graphical"] == {"loss": [1.5]}


def test_kpi_is_merged_across_writes_not_replaced(tmp_path):
    log = StatusLogger(tmp_path)
    log.write("RUNNING", kpi={"train_loss": 1.0})
    log.write("RUNNING", kpi={"val_loss": 2.0})
    log.write("RUNNING", kpi={"train_loss": 0.5})
    assert read_status(tmp_path)[-1]["kpi"] == {"train_loss": 0.5, "val_loss": 2.0}


def test_new_logger_does_not_carry_stale_kpi(tmp_path):
    StatusLogger(tmp_path).write("SUCCESS", kpi={"val/epe": 1.0})
    StatusLogger(tmp_path).write("STARTED")
    assert "kpi" not in read_status(tmp_path)[-1]
    assert last_kpi(tmp_path) == {"val/epe": 1.0}  # the previous run's last kpi line is still findable


@pytest.mark.parametrize("kwargs, exc, match", [({"status": "DONE"}, ValueError, "DONE"),
                                                ({"status": "RUNNING", "verbosity": "LOUD"}, ValueError, "LOUD"),
                                                ({"status": "RUNNING", "kpi": {"epe": "x"}}, TypeError, "epe")])
def test_bad_values_raise(tmp_path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        StatusLogger(tmp_path).write(**kwargs)


def test_last_kpi_accepts_namespaced_and_bare_names(tmp_path):
    StatusLogger(tmp_path / "pyt").write("SUCCESS", kpi={"val/epe": 1.25, "val/d1": 0.1})
    StatusLogger(tmp_path / "deploy").write("SUCCESS", kpi={"epe": 2.5})
    assert last_kpi(tmp_path / "pyt", "epe") == 1.25
    assert last_kpi(tmp_path / "pyt" / "status.json", "val/epe") == 1.25
    assert last_kpi(tmp_path / "deploy", "val/epe") == 2.5
    with pytest.raises(KeyError, match="val/d1"):
        last_kpi(tmp_path / "pyt", "bp9")


def test_tao_style_file_with_replaced_kpi_and_torn_last_line(tmp_path):
    path = tmp_path / "status.json"
    path.write_text('{"date": "1/2/2026", "time": "3:4:5", "status": "RUNNING", "kpi": {"train_loss": 1.0}}\n'
                    '{"date": "1/2/2026", "time": "3:4:6", "status": "RUNNING", "kpi": {"val_loss": NaN}}\n'
                    '{"date": "1/2/2026", "time": "3:4:7", "status": "SUCC')  # killed mid-write
    lines = read_status(path)
    assert len(lines) == 2
    assert math.isnan(last_kpi(path, "val_loss"))
    with pytest.raises(ValueError, match="not finite|nan"):
        last_finite_kpi(path, "val_loss")


def test_nan_kpi_round_trips(tmp_path):
    StatusLogger(tmp_path).write("RUNNING", kpi={"val/epe": math.nan})
    assert math.isnan(last_kpi(tmp_path, "epe"))


def test_corrupt_middle_line_and_missing_file_raise(tmp_path):
    path = tmp_path / "status.json"
    path.write_text('{"status": "STARTED"}\nnot json\n{"status": "SUCCESS"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_status(path)
    with pytest.raises(FileNotFoundError, match="results_dir"):
        read_status(tmp_path / "nope")
