"""A suite's run root: a local folder, or any fsspec URL (``s3://bucket/suite``, ``gs://...``, ``file:///...``).

With a URL, every process works in a local mirror of the folders it needs (``$GENPOLICY_SCRATCH``, default
``~/.cache/genpolicy/runs``, one folder per URL): a job pulls its run folder (and the shared critic it loads) before
it starts and pushes its files after every checkpoint and at the end, each file written under a temporary name and
then moved, so a reader never sees half a file; the driver pulls the whole tree to plan and to write the table, and
pushes the table back. The run-folder lock then guards each machine's mirror, not the remote folder: the suite
runner itself gives each folder to one job at a time."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["RunRoot"]

_SKIP = {".lock"}


class RunRoot:
    """Where a suite's run folders live (see the module)."""

    def __init__(self, where: str | Path):
        s = str(where)
        self.url = s.rstrip("/") if "://" in s else None
        if self.url is None:
            self.base = Path(s)
            self.fs = None
        else:
            import fsspec

            self.fs, self.remote = fsspec.core.url_to_fs(self.url)
            scratch = Path(os.environ.get("GENPOLICY_SCRATCH", Path.home() / ".cache" / "genpolicy" / "runs"))
            self.base = scratch / hashlib.sha256(self.url.encode()).hexdigest()[:12]

    @classmethod
    def of(cls, where) -> RunRoot:
        return where if isinstance(where, RunRoot) else cls(where)

    def __reduce__(self):  # sent to Ray workers as its address; each worker makes its own mirror
        return RunRoot, (self.url or str(self.base),)

    def __str__(self) -> str:
        return self.url or str(self.base)

    def local(self, rel: str = "") -> Path:
        """The folder ``rel`` on this machine (the root itself or its mirror)."""
        return self.base / rel if rel else self.base

    def name(self, rel: str) -> str:
        """``rel`` as a user finds it: a path, or the URL."""
        return f"{self.url}/{rel}" if self.url else str(self.base / rel)

    def pull(self, rel: str = "") -> None:
        """Copy ``rel`` (a file or folder; everything with ``""``) from the remote root into the mirror."""
        if self.fs is None:
            return
        src = f"{self.remote}/{rel}".rstrip("/")
        if not self.fs.exists(src):
            return
        files = self.fs.find(src) if self.fs.isdir(src) else [src]
        for f in files:
            sub = f[len(self.remote):].lstrip("/")
            if Path(sub).name in _SKIP or sub.endswith(".tmp"):
                continue
            dst = self.base / sub
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".pull.tmp")
            self.fs.get_file(f, str(tmp))
            os.replace(tmp, dst)

    def push(self, rel: str = "") -> None:
        """Copy ``rel`` (a file or folder) from the mirror to the remote root, file by file (temporary name, then
        moved into place)."""
        if self.fs is None:
            return
        src = self.base / rel
        files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file()) if src.exists() else []
        for p in files:
            if p.name in _SKIP or p.name.endswith(".tmp"):
                continue
            dst = f"{self.remote}/{p.relative_to(self.base).as_posix()}"
            self.fs.makedirs(dst.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(p), dst + ".tmp")
            self.fs.mv(dst + ".tmp", dst)
