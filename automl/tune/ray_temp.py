"""Where the embedded Ray of a sweep keeps its session files: ``<run_dir>/ray``, reached by a short path.

Ray binds unix sockets under ``<temp>/session_<time>_<pid>/sockets/`` (about 64 characters), and an
AF_UNIX path stops at 107 bytes, so a typical run folder (``/home/me/project/automl_runs/<skill>-<stamp>``)
is too deep to be Ray's temp dir. The limit is on the path *string* handed to ``bind``, not on where it
resolves, so a deep run folder gets a short symlink ``/tmp/sa-<hash>`` -> ``<run_dir>/ray``: the files
live in the run folder, the sockets are bound through the short name (checked on this machine with Ray
2.60). A run folder at most ``SOCKET_ROOM`` characters deep is handed to Ray directly.

Lifecycle: :func:`claim` before ``ray.init`` (it writes ``owner.json`` with the driver's pid), then
:func:`release` after ``ray.shutdown`` removes both the folder and the link. A driver killed with SIGKILL
cannot release; the next sweep on this machine (:func:`remove_stale`) and the resume of that run
(:func:`claim`) remove what a dead owner left behind. A live owner is never touched.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from automl.errors import AutomlError

SOCKET_ROOM = 40  # Ray appends up to ~64 chars (/session_<time>_<pid>/sockets/plasma_store); AF_UNIX stops at 107
LINK_ROOT = Path("/tmp")
LINK_PREFIX = "sa-"
FILES_NAME = "ray"  # <run_dir>/ray
OWNER_FILE = "owner.json"


class RayTempError(AutomlError):
    """The run folder's Ray files belong to a live driver; the message names it."""


@dataclass(frozen=True)
class RayTemp:
    files: Path  # <run_dir>/ray: where Ray's session files are
    address: Path  # what ray.init gets as _temp_dir: `files` itself, or a short symlink to it

    @property
    def link(self) -> Optional[Path]:
        return None if self.address == self.files else self.address


def ray_temp(run_dir: str | os.PathLike, link_root: Path = LINK_ROOT) -> RayTemp:
    files = Path(run_dir).expanduser().resolve() / FILES_NAME
    if len(str(files)) <= SOCKET_ROOM:
        return RayTemp(files, files)
    digest = hashlib.sha1(str(files.parent).encode()).hexdigest()[:10]
    return RayTemp(files, Path(link_root) / f"{LINK_PREFIX}{digest}")


def _start_time(pid: int) -> Optional[str]:
    """The process's start time (clock ticks since boot) from /proc, so a reused pid is not mistaken."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()[19]  # field 22 of proc(5); the name in (...) may hold spaces


def owner_record() -> dict:
    """This process as an owner: pid and start time (a reused pid is not mistaken for it)."""
    return {"pid": os.getpid(), "start_time": _start_time(os.getpid())}


def owner_alive(owner: dict) -> bool:
    """Is the process an :func:`owner_record` describes still running (and not us)?"""
    return owner.get("pid") != os.getpid() and _alive(owner)


def _alive(owner: dict) -> bool:
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    recorded, now = owner.get("start_time"), _start_time(pid)
    return recorded is None or now is None or recorded == now


def _owner(files: Path) -> Optional[dict]:
    try:
        data = json.loads((files / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remove(temp: RayTemp) -> None:
    shutil.rmtree(temp.files, ignore_errors=True)
    if temp.link is not None and temp.link.is_symlink():
        temp.link.unlink(missing_ok=True)


def claim(temp: RayTemp) -> RayTemp:
    """Make `temp` ready for ray.init: what a dead driver left is removed, a live one's raises."""
    owner = _owner(temp.files)
    if owner is not None and owner_alive(owner):
        raise RayTempError(f"{temp.files} is in use by a running sweep driver (pid {owner['pid']}); wait for it to "
                           f"finish or stop it (kill {owner['pid']}) before running this sweep again")
    link = temp.link
    if link is not None and link.is_symlink() and Path(os.readlink(link)) != temp.files:
        other = Path(os.readlink(link))
        if _alive(_owner(other) or {}):
            raise RayTempError(f"{link} already points at {other}, in use by a running sweep; run this sweep "
                               "from another folder")
        if other.name == FILES_NAME and _owner(other) is not None:
            shutil.rmtree(other, ignore_errors=True)  # a dead driver's files in another run folder
    elif link is not None and link.is_dir() and not link.is_symlink():
        if _alive(_owner(link) or {}):
            raise RayTempError(f"{link} is in use by a running Ray; run this sweep from another folder")
        shutil.rmtree(link, ignore_errors=True)  # a plain temp dir an older version left behind
    _remove(temp)
    temp.files.mkdir(parents=True)
    (temp.files / OWNER_FILE).write_text(json.dumps(owner_record()))
    if temp.link is not None:
        temp.link.symlink_to(temp.files, target_is_directory=True)
    return temp


def release(temp: RayTemp) -> None:
    """Remove the session files and the short link (after ray.shutdown)."""
    _remove(temp)


def remove_stale(link_root: Path = LINK_ROOT) -> List[Path]:
    """Remove the links (and their run folders' Ray files) that dead drivers left; returns what went."""
    gone = []
    try:
        links = [p for p in Path(link_root).glob(LINK_PREFIX + "*") if p.is_symlink()]
    except OSError:
        return gone
    for link in links:
        target = Path(os.readlink(link))
        if target.name != FILES_NAME:
            continue  # not one of ours
        owner = _owner(target)
        if target.is_dir() and owner is None:
            continue  # not claimed by a sweep: leave it alone
        if owner is None or not _alive(owner):
            _remove(RayTemp(target, link))
            gone.append(link)
    return gone
