"""The hidden staging directory an export builds in: made inside the output directory (so the final
rename is atomic), marked with its owner's process id, and swept away by the next export once that
process is gone (a SIGKILLed export cannot clean up after itself)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

from ..errors import ConfigError

PREFIX = ".pea-export-"
OWNER = ".owner"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _stale(staging: Path) -> bool:
    """True when the export that made `staging` is dead: its owner pid on this host no longer runs.
    Directories without an owner file (older pea-deploy) or from another host are left alone."""
    try:
        host, pid = (staging / OWNER).read_text().split()
    except (OSError, ValueError):
        return False
    return host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))


def sweep_stale(out: Path) -> list[Path]:
    """Remove the staging directories of dead exports in `out`; returns what was removed."""
    removed = []
    for d in out.glob(PREFIX + "*"):
        if d.is_dir() and _stale(d):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def make_staging(out: Path) -> Path:
    """A fresh staging directory in `out` (created if needed), owned by this process."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        sweep_stale(out)
        staging = Path(tempfile.mkdtemp(prefix=PREFIX, dir=out))
        (staging / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    except OSError as e:
        raise ConfigError(f"output directory {out} is not writable: {e.strerror or e}") from None
    return staging
