"""Files written whole or not at all: the atomic writer of every file hierbench writes (result
files, report.html, the benchmark's report).

It lives here, not in ``runs``, because ``analysis`` never imports ``runs`` while ``runs`` may use
``analysis``.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def temp_prefix(path: Path) -> str:
    """The hidden temporary name of a file being written to ``path``: its writer's host and
    process id, so a later run can tell a dead writer's leftover."""
    return f".{path.name}.{socket.gethostname()}@{os.getpid()}."


def write_atomic(path: Path, data: str | bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``data`` (text as UTF-8, bytes, or a function that writes to a binary file) to
    ``path`` via a temporary file renamed into place.

    The temporary file is hidden (its name starts with "."), lies in the same folder (so the
    rename is atomic, on a cluster's shared file system too) and is flushed to disk before the
    rename: ``path`` holds either nothing or a whole file, whenever the writer is killed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            if callable(data):
                data(out)
            else:
                out.write(data.encode("utf-8") if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a result file is not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the file system allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
