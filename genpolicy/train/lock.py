"""Run folders safe for many writers: an exclusive lock per run folder, held for the run's life.

The lock is ``fcntl.flock`` on ``RUN/.lock``, taken before anything else is written there (an ``--overwrite`` too)
and released when the holder exits in any way, a SIGKILL included (the kernel drops it with the process), so a lock
left by a dead process is never in the way. The file names its holder (pid, host, command, time) for the one-line
error a second writer gets. Re-entrant within a process: the CLI holds it across ``--overwrite`` and training, and
:func:`~genpolicy.train.loop.train` takes it again without waiting on itself. (flock is per machine: on a folder
shared by several machines over NFS, each machine locks only against itself.)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

__all__ = ["RunFolderLocked", "hold_run_folder", "check_not_locked", "LOCK_FILE"]

LOCK_FILE = ".lock"
_HELD: dict[str, list] = {}  # resolved folder -> [file descriptor, depth]


class RunFolderLocked(RuntimeError):
    """Another process is writing this run folder."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    if not info:
        return "another process"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} ({info.get('command', '?')})"


def _locked(run_dir, path: Path) -> RunFolderLocked:
    return RunFolderLocked(f"{run_dir} is in use by {_holder(path)}; wait for it to finish or use another --run-dir")


@contextlib.contextmanager
def hold_run_folder(run_dir: str | Path):
    """Hold ``run_dir``'s lock for the block (creating the folder); a one-line :class:`RunFolderLocked` naming the
    holder if another process has it."""
    import fcntl  # POSIX

    run_dir = Path(run_dir)
    key = str(run_dir.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _locked(run_dir, path) from None
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv)[:300]}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode())
    _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            del _HELD[key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # no holder named once released
            os.close(fd)  # releases the lock


def check_not_locked(run_dir: str | Path) -> None:
    """A one-line :class:`RunFolderLocked` now, naming the holder, if another process writes ``run_dir`` (checked
    before any other question about the folder, so its writer is what the message names); nothing is held after."""
    import fcntl  # POSIX

    path = Path(run_dir) / LOCK_FILE
    if str(Path(run_dir).resolve()) in _HELD or not path.exists():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _locked(run_dir, path) from None
    finally:
        os.close(fd)
