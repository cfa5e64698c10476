"""Where the per-worker Unix sockets live, and making that place safe.

Each worker listens on ``<socket dir>/genro-asgi-debug-<pid>.sock``. The directory is the first
line of defence: it must be a real directory owned by this user with mode 0700 (no other user
can even reach the socket); the socket itself is 0600. The default directory is
``$XDG_RUNTIME_DIR/genro-asgi-debug`` when that exists, else
``<tmp>/genro-asgi-debug-<uid>``. The server and the CLI compute the same default.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path

SOCKET_NAME = re.compile(r"^genro-asgi-debug-(\d+)\.sock$")
MAX_UNIX_PATH = 104  # the smallest sun_path among the platforms we run on (macOS), minus NUL


class UnsafeSocketDir(Exception):
    """The socket directory is not private to this user."""


def default_socket_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "genro-asgi-debug"
    return Path(tempfile.gettempdir()) / f"genro-asgi-debug-{os.geteuid()}"


def socket_path(directory: Path, pid: int) -> Path:
    return directory / f"genro-asgi-debug-{pid}.sock"


def secure_dir(directory: Path) -> Path:
    """Create ``directory`` 0700, or check an existing one is ours; tighten its mode."""
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700, parents=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeSocketDir(f"{directory} is not a directory (a symlink or a file)")
    if info.st_uid != os.geteuid():
        raise UnsafeSocketDir(f"{directory} belongs to uid {info.st_uid}, not to this user "
                              f"(uid {os.geteuid()}): refusing to put the debug socket there")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(directory, 0o700)
    return directory


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_sockets(directory: Path) -> list[tuple[int, Path]]:
    """``(pid, path)`` of every debug socket in ``directory``, by pid."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in names:
        match = SOCKET_NAME.match(name)
        if match:
            found.append((int(match.group(1)), directory / name))
    return sorted(found)


def remove_stale(directory: Path) -> None:
    """Remove the sockets of workers that are gone (killed without a shutdown)."""
    for pid, path in list_sockets(directory):
        if pid == os.getpid() or not pid_alive(pid):
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    path.unlink()


def check_length(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_UNIX_PATH:
        raise UnsafeSocketDir(f"socket path {path} is longer than {MAX_UNIX_PATH} bytes; "
                              "set a shorter socket_dir")
