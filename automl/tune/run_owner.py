"""Which live process owns a run folder: the driver records itself (``<run_dir>/ledger/driver.json``,
automl/driver.py) so that a second driver on the same folder is refused while the first one lives, and
a dead one's record is ignored. A process is its pid *and* its start time, so a reused pid is not
mistaken for the driver that died."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


def _start_time(pid: int) -> Optional[str]:
    """The process's start time (clock ticks since boot) from /proc; None where that is unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()[19]  # field 22 of proc(5); the name in (...) may hold spaces


def owner_record() -> dict:
    """This process as an owner: pid and start time."""
    return {"pid": os.getpid(), "start_time": _start_time(os.getpid())}


def owner_alive(owner: dict) -> bool:
    """Is the process an :func:`owner_record` describes still running (and not this one)?"""
    pid = owner.get("pid")
    if pid == os.getpid() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    recorded, now = owner.get("start_time"), _start_time(pid)
    return recorded is None or now is None or recorded == now
