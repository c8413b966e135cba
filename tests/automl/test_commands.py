"""automl/commands.py: a printed command works as printed, wherever the console scripts are."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from automl.commands import program, resume_command


def _script(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_script_on_path_of_this_interpreter_is_named_bare(tmp_path, monkeypatch):
    bindir = tmp_path / "venv" / "bin"
    _script(bindir, "automl")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    assert program("automl", "automl.cli", str(bindir / "python")) == "automl"


def test_a_script_beside_the_interpreter_but_not_on_path_is_spelled_with_its_path(tmp_path, monkeypatch):
    bindir = tmp_path / "repo" / ".venv" / "bin"
    _script(bindir, "automl")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.chdir(tmp_path / "repo")  # a make checkout: the user stands in the repo
    assert program("automl", "automl.cli", str(bindir / "python")) == ".venv/bin/automl"
    monkeypatch.chdir(tmp_path)
    assert program("automl", "automl.cli", str(bindir / "python")) == "repo/.venv/bin/automl"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert program("automl", "automl.cli", str(bindir / "python")) == str(bindir / "automl")
    monkeypatch.chdir("/")  # never a path relative to the root
    assert program("automl", "automl.cli", str(bindir / "python")) == str(bindir / "automl")


def test_without_a_script_it_is_python_dash_m(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    python = tmp_path / "py" / "python3"
    assert program("depth_net", "stereo.cli", str(python)) == f"{python} -m stereo.cli"


def test_resume_quotes_a_folder_with_spaces():
    assert resume_command("/runs/my sweep").endswith("run --resume '/runs/my sweep'")
