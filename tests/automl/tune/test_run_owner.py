"""automl/tune/run_owner.py: a run folder's owner is a live process, told apart from a dead one and from a
new process that reuses a dead one's pid."""
from __future__ import annotations

import os
import subprocess
import sys

from automl.tune.run_owner import owner_alive, owner_record


def test_a_live_other_process_owns_and_a_dead_one_does_not():
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert owner_alive({"pid": live.pid})
    finally:
        live.kill()
        live.wait()
    assert not owner_alive({"pid": live.pid})


def test_this_process_and_nonsense_never_count_as_another_owner():
    me = owner_record()
    assert me["pid"] == os.getpid() and not owner_alive(me)
    assert not owner_alive({}) and not owner_alive({"pid": "12"}) and not owner_alive({"pid": 0})


def test_a_reused_pid_is_not_the_recorded_owner():
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not owner_alive({"pid": live.pid, "start_time": "1"})  # same pid, another start: another process
    finally:
        live.kill()
        live.wait()
