"""The keeper of `automl ui`'s server: the server never outlives the `automl ui` that started it.

    python -m automl.ui.guard <owner pid> -- <server argv ...>

`automl ui` starts this guard as the leader of a new session (so a terminal's Ctrl-C reaches only
`automl ui`, which then stops the server itself); the guard starts the MLflow server in its own process
group, and the server's children (uvicorn workers) stay in it, so that one group is the whole server.

Why a guard: a Ctrl-C, SIGTERM or SIGHUP reaching `automl ui` can be handled there, but a SIGKILL (a
test timeout, an OOM kill, `kill -9`) cannot, and a server in its own session would run on without a
parent, holding the port. The guard learns of its owner's death twice over: Linux's parent-death
signal (``PR_SET_PDEATHSIG`` -> SIGTERM, immediate) and a poll of ``getppid()`` (the portable fallback,
every ``POLL_S``). Either way it takes the group down: SIGTERM, then SIGKILL after a grace period to
every process left in the group, then exits. Stdlib only, so it starts in well under a second.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from typing import List, Optional, Sequence

POLL_S = 0.25
GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send `sig` to this process when its parent dies; False where unsupported."""
    return _prctl(_PR_SET_PDEATHSIG, int(sig))


def become_subreaper() -> bool:
    """Orphaned descendants (a uvicorn worker whose server died) become our children, so we reap them:
    a container's PID 1 may never reap, and an unreaped zombie keeps the process group alive."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def group_members(pgid: int, zombies: bool = False) -> List[int]:
    """Pids in process group `pgid` (from /proc; empty where /proc is absent), zombies only if asked."""
    pids = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return pids
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        # field 5 is the pgid; the command name (field 2) may hold spaces, so split after its ')'
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and (zombies or fields[0] != "Z") and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def take_down(pgid: int, *, keep: Optional[int] = None, grace: float = GRACE_S) -> None:
    """SIGTERM every process of group `pgid` but `keep`; SIGKILL whatever is left after `grace` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        victims = [p for p in group_members(pgid) if p != keep]
        for pid in victims:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and [p for p in group_members(pgid, zombies=True) if p != keep]:
            _reap()
            time.sleep(0.05)


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def run(owner: int, argv: Sequence[str]) -> int:
    stop = {"signal": None}

    def _on_signal(signum, frame):
        stop["signal"] = signum

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    set_parent_death_signal(signal.SIGTERM)
    become_subreaper()
    if os.getppid() != owner:  # the owner died before the death signal was armed
        return 0
    server = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL)  # stays in our process group
    code = 0
    while stop["signal"] is None and os.getppid() == owner:
        polled = server.poll()
        if polled is not None:
            code = polled
            break
        time.sleep(POLL_S)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    take_down(os.getpgrp(), keep=os.getpid())
    server.poll()
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--" or not args[0].isdigit():
        print("usage: python -m automl.ui.guard <owner pid> -- <command ...>", file=sys.stderr)
        return 2
    return run(int(args[0]), args[2:])


if __name__ == "__main__":
    sys.exit(main())
