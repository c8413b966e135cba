"""depth_net CLI: exit codes, one-line errors on stderr, help text, the action table."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from stereo.cli import ACTIONS, Action, main


def _spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_validate_prints_resolved_spec_and_exits_0(tmp_path, capsys):
    path = _spec(tmp_path, """
        model:
          model_type: FoundationStereo
        train:
          num_epochs: 2
        """)
    assert main(["validate", "-e", str(path), "train.optim.lr=1.0e-5"]) == 0
    out, err = capsys.readouterr()
    resolved = yaml.safe_load(out)
    assert resolved["model"]["model_type"] == "FoundationStereo"
    assert resolved["train"]["num_epochs"] == 2 and resolved["train"]["optim"]["lr"] == pytest.approx(1e-5)
    assert resolved["train"]["optim"]["lr_scheduler"] == "MultiStepLR"  # defaults filled in
    assert err == ""


def test_validate_problems_are_one_line_each_and_exit_2(tmp_path, capsys):
    path = _spec(tmp_path, """
        model:
          stereo_backbone:
            encoder: vits
        train:
          num_epochs: ten
        """)
    assert main(["validate", "-e", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:3: model.stereo_backbone.encoder: unknown key")
    assert lines[1].startswith(f"{path}:5: train.num_epochs: expected an integer")
    assert "Traceback" not in err


def test_validate_warnings_keep_exit_0(tmp_path, capsys):
    path = _spec(tmp_path, "model:\n  max_disparity: 192\n")
    assert main(["validate", "-e", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"{path}:2: model.max_disparity: warning: differs from dataset.max_disparity" in err


def test_bad_override_and_missing_file_exit_2(tmp_path, capsys):
    path = _spec(tmp_path, "train:\n  num_epochs: 2\n")
    assert main(["validate", "-e", str(path), "train.optim.lr=abc"]) == 2
    assert "command line: train.optim.lr: expected a number (got 'abc')" in capsys.readouterr().err
    assert main(["validate", "-e", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "spec file not found" in err


def test_validate_for_an_action_checks_its_inputs(tmp_path, capsys):
    path = _spec(tmp_path, "results_dir: /tmp/x\n")
    assert main(["validate", "--action", "export", "-e", str(path)]) == 2
    assert "export.checkpoint: export needs a checkpoint" in capsys.readouterr().err


def test_validate_a_convert_spec(tmp_path, capsys):
    path = _spec(tmp_path, "data_root: /data\nresults_dir: /out\nsplit_ratio: 1.5\n")
    assert main(["validate", "--action", "convert", "-e", str(path)]) == 2
    assert "split_ratio: out of range: must be in [0.0, 1.0] (got 1.5)" in capsys.readouterr().err


def test_library_exception_is_one_line_exit_1_and_debug_shows_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(ACTIONS, "explode", Action("json:dumps", "A row whose function fails."))
    path = _spec(tmp_path, "{}\n")
    assert main(["explode", "-e", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("depth_net explode: TypeError: ")
    assert main(["explode", "-e", str(path), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_adding_an_action_is_one_row(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(ACTIONS, "dump", Action("dataclasses:asdict", "Print the spec as a dict."))
    path = _spec(tmp_path, "model_name: demo\n")
    assert main(["dump", "-e", str(path)]) == 0
    assert "'model_name': 'demo'" in capsys.readouterr().out


def test_help_explains_actions_overrides_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in ACTIONS:
        assert name in out
    assert "key=value" in out and "train.optim.lr=1.0e-5" in out
    assert "0  success" in out and "2  bad input" in out and "1  failure" in out


def test_validate_help(capsys):
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    out = capsys.readouterr().out
    assert "-e SPEC.yaml" in out and "--action" in out and "exit codes" in out and "--debug" in out
    flat = " ".join(out.split())
    listed = flat.split("one of: ", 1)[1].split(" (e.g.", 1)[0].split(", ")
    assert listed == [a for a in ACTIONS if a not in ("validate", "flow")]  # each once; flow takes a flow spec
    assert "{" not in out  # no {a,b,...} dump of the choices in the usage or option lines
    assert "flat convert spec" in out and "docs/spec_reference.md" in out
    with pytest.raises(SystemExit) as info:
        main(["validate", "--action", "trian", "-e", "spec.yaml"])
    assert info.value.code == 2 and "invalid choice: 'trian'" in capsys.readouterr().err


def test_help_tells_a_newcomer_what_to_pass(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "depth_net <action> -e spec.yaml [key=value ...]" in out
    assert "`depth_net <action> --help` describes one action" in out
    assert "docs/spec_reference.md lists every key" in out and "convert takes its own flat spec" in out
    assert "depth_net validate -e spec.yaml --action train" in out and "depth_net convert -e convert.yaml" in out
    assert "<results_dir>/<action>/status.json" in out


def test_convert_runs_as_an_action(tmp_path, capsys):
    for scene in ("a", "b"):
        folder = tmp_path / "data" / scene
        folder.mkdir(parents=True)
        (folder / "im0.png").write_bytes(b"")
        (folder / "im1.png").write_bytes(b"")
    out_dir = tmp_path / "out"
    path = _spec(tmp_path, f"""
        data_root: {tmp_path / 'data'}
        results_dir: {out_dir}
        image_dir_pattern: [im0]
        right_dir_pattern: [im1]
        image_extension: png
        split_ratio: 0.0
        """, name="convert.yaml")
    assert main(["convert", "-e", str(path)]) == 0, capsys.readouterr().err
    lines = (out_dir / "test.txt").read_text().splitlines()
    assert sorted(len(line.split(" ")) for line in lines) == [2, 2]
    first, _, result = capsys.readouterr().out.partition("\n")  # the first line, then the result as JSON
    assert first == f"depth_net convert: spec {path}, results_dir {out_dir}"
    printed = json.loads(result)
    assert printed["status"] == "SUCCESS" and printed["counts"] == {"test": 2}
    assert printed["files"] == {"test": str(out_dir / "test.txt")}
    status = [json.loads(line) for line in (out_dir / "convert" / "status.json").read_text().splitlines()]
    assert status[-1]["status"] == "SUCCESS" and status[-1]["kpi"] == {"samples/test": 2.0}
    assert (out_dir / "convert" / "experiment.yaml").is_file()


def test_convert_bad_pattern_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "data" / "a").mkdir(parents=True)
    path = _spec(tmp_path, f"""
        data_root: {tmp_path / 'data'}
        results_dir: {tmp_path / 'out'}
        image_dir_pattern: [im0]
        image_extension: png
        """, name="convert.yaml")
    assert main(["convert", "-e", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("depth_net convert: ActionError: convert failed (bad input): ")
    assert "convert found no file" in err[-1] and "check image_dir_pattern" in err[-1]
