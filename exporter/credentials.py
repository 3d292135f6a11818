"""Hold secret values and re-read secret files when they change, so rotation needs no restart."""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class SecretSource:
    """Give a secret's current value: fixed text, or a file's content re-read on change.

    A file that turns empty or unreadable keeps the last good value, so a rotation caught
    half-written does not break a refresh.
    """

    def __init__(self, value: str, path: Path | None = None) -> None:
        self._value = value
        self.path = path
        self._stamp = _stamp(path) if path is not None else None
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path) -> SecretSource:
        """Read a secret file now; raise OSError when it cannot be read."""
        return cls(read_regular_file(path).strip(), path)

    def __repr__(self) -> str:
        return f"SecretSource(path={self.path!s})" if self.path else "SecretSource(<text>)"

    @property
    def value(self) -> str:
        """Return the secret, re-reading its file first when the file changed."""
        if self.path is None:
            return self._value
        with self._lock:
            stamp = _stamp(self.path)
            if stamp != self._stamp:
                self._reload(stamp)
            return self._value

    def _reload(self, stamp: tuple[int, int] | None) -> None:
        assert self.path is not None
        try:
            text = read_regular_file(self.path).strip()
        except (OSError, UnicodeDecodeError) as err:
            log.warning(
                "cannot re-read secret file", extra={"file": str(self.path), "error": str(err)}
            )
            self._stamp = stamp  # warn once per change of the file, not on every request
            return
        if not text:
            log.warning(
                "secret file is empty; keeping the previous secret", extra={"file": str(self.path)}
            )
            self._stamp = stamp
            return
        self._value, self._stamp = text, stamp
        log.info("secret file changed; using the new secret", extra={"file": str(self.path)})


def read_regular_file(path: Path) -> str:
    """Read a UTF-8 text file, refusing FIFOs, devices and directories, which could block."""
    with open(path, "rb", opener=_open_nonblocking) as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return file.read().decode("utf-8")


def _open_nonblocking(path: str, flags: int) -> int:
    # O_NONBLOCK lets opening a FIFO with no writer return at once instead of hanging.
    return os.open(path, flags | os.O_NONBLOCK)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size
