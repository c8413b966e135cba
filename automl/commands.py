"""The commands we print for the user to paste (resume a sweep, retrain its best trial, open the UI),
spelled so that they work as printed: the console script when the one on PATH belongs to this
interpreter; else the script beside this interpreter (a `make` checkout's `.venv/bin/automl`, which is not
on PATH; relative to the current folder when it lies below it); else ``<python> -m <module>``."""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def program(script: str, module: str, executable: str = sys.executable) -> str:
    """How to call console script `script` (or ``python -m module``) from this interpreter, as printed."""
    bindir = Path(executable).parent
    on_path = shutil.which(script)
    if on_path and Path(on_path).parent.resolve() == bindir.resolve():
        return script
    if (bindir / script).is_file():
        here = Path.cwd()
        below = here != Path(here.anchor) and (bindir / script).is_relative_to(here)
        return str((bindir / script).relative_to(here)) if below else str(bindir / script)
    return f"{shlex.quote(executable)} -m {module}"


def automl_command(args: str, executable: str = sys.executable) -> str:
    return f"{program('automl', 'automl.cli', executable)} {args}"


def depth_net_command(args: str, executable: str = sys.executable) -> str:
    return f"{program('depth_net', 'stereo.cli', executable)} {args}"


def resume_command(run_dir: str | os.PathLike) -> str:
    """`automl run --resume <run_dir>`: continues an interrupted sweep; finished trials are never re-run."""
    return automl_command(f"run --resume {shlex.quote(str(run_dir))}")
