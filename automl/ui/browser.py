"""Headless Chromium on the MLflow UI: the rendered page as the browser sees it, and screenshots.

    python -m automl.ui.browser --store demo_runs/results --out docs/img     # `make ui-snapshot`

Used by the real-browser test (tests/automl/e2e/test_sweep_e2e.py) and by ``make ui-snapshot``. Chromium runs
with a fresh profile (what a newcomer's browser has: no saved columns) in a session of its own, and its
whole process group is killed when the call returns, however it returns. ``--virtual-time-budget`` lets
the React app fetch and render before ``--dump-dom`` / ``--screenshot`` (measured: ~4 s a page here).

Debian's package is ``chromium`` (``make`` installs it when absent: see the Makefile's ``chromium``
target); :func:`find_chromium` also accepts ``$CHROMIUM`` and the usual other names.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from automl.errors import AutomlError
from automl.ui.links import latest_sweep_links
from automl.ui.server import resolve_store

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--no-first-run", "--disable-extensions", "--mute-audio")
VIRTUAL_TIME_MS = 20000  # the page's own timers may run this far ahead: every fetch and render is done
WINDOW = (1920, 1080)


class BrowserError(AutomlError):
    """Chromium is missing or did not produce the page."""


def sweep_pages(base: str, store: str, experiment: str = "depth_net") -> dict:
    """{page name: URL} of the newest sweep in `store` as served at `base`: runs, compare, sweep (parent)."""
    from stereo.tracking import MlflowTracker

    links, parent = latest_sweep_links(MlflowTracker(resolve_store(store)), experiment, base)
    pages = {"runs": links.runs, "sweep": f"{base.rstrip('/')}/{parent}"}
    if links.compare:
        pages["compare"] = links.compare
    return pages

def find_chromium() -> Optional[str]:
    """``$CHROMIUM`` if set, else the first of :data:`NAMES` on PATH; None when there is none."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    return next((p for p in map(shutil.which, NAMES) if p), None)


def _run(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise BrowserError("no Chromium found; install it (`apt-get install -y --no-install-recommends "
                           "chromium`, or `make chromium`) or set CHROMIUM=/path/to/chrome")
    with tempfile.TemporaryDirectory(prefix="automl-chromium-") as profile:
        argv = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                f"--virtual-time-budget={VIRTUAL_TIME_MS}", *args]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BrowserError(f"chromium did not finish {args[-1]} within {timeout:.0f} s") from None
        finally:
            try:  # renderer, GPU and zygote processes may outlive the browser: end the whole group
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def dump_dom(url: str, timeout: float = 90.0) -> str:
    """The page's DOM after its scripts ran (the rendered runs table, not the empty app shell)."""
    res = _run(["--dump-dom", url], timeout)
    if res.returncode != 0 or "<html" not in res.stdout:
        raise BrowserError(f"chromium --dump-dom {url} exited {res.returncode}: {res.stderr.strip()[-500:]}")
    return res.stdout


def screenshot(url: str, path: str | os.PathLike, timeout: float = 90.0) -> Path:
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    res = _run([f"--screenshot={path}", url], timeout)
    if not path.is_file() or path.stat().st_size == 0:
        raise BrowserError(f"chromium --screenshot {url} wrote nothing (exit {res.returncode}): "
                           f"{res.stderr.strip()[-500:]}")
    return path


def visible_text(dom: str) -> str:
    """The page's text as a reader sees it (scripts, styles and tags removed, whitespace collapsed)."""
    import html
    import re

    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text))).strip()


def snapshot_pages(store: str, out_dir: str | os.PathLike, *, port: int = 0) -> list:
    """Start `automl ui` on `store`, screenshot the latest sweep's runs view, compare view and parent run
    (its description) into `out_dir`; returns the PNG paths."""
    from automl.ui.server import start_server

    server = start_server(store, port=port)
    try:
        pages = sweep_pages(server.url, store)
        return [screenshot(url, Path(out_dir) / f"mlflow_{name}.png") for name, url in pages.items()]
    finally:
        server.stop()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m automl.ui.browser",
                                     description="Screenshots of the MLflow UI for the latest sweep in a store.")
    parser.add_argument("--store", required=True, help="results folder holding mlflow.db (or a tracking URI)")
    parser.add_argument("--out", default="docs/img", help="folder for the PNGs (default: docs/img)")
    args = parser.parse_args(argv)
    try:
        for path in snapshot_pages(args.store, args.out):
            print(f"wrote {path}")
    except (BrowserError, RuntimeError, ValueError) as exc:
        print(f"ui-snapshot: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
