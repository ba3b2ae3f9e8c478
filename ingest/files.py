"""Files as ingest meets them: uris for any path name, opening only regular files (never blocking), capped reads."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from urllib.parse import unquote_to_bytes

from ingest.errors import DecodeError

FILE_URI_PREFIX = "file://"
_CHUNK = 1 << 20


def is_storable(text: str) -> bool:
    """Whether ``text`` encodes to UTF-8 (a path with undecodable bytes holds surrogate escapes, which do not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def path_uri(path: str) -> str:
    """The catalog uri of a local path: the path itself, or, for a name that is not valid UTF-8, its ``file://``
    URI with those bytes percent-escaped (lossless, readable, and never equal to a plain path's uri)."""
    return path if is_storable(path) else file_uri(path)


def file_uri(path: str) -> str:
    """``file://`` URI of an absolute path, every byte outside the URI-safe set percent-escaped."""
    return Path(path).as_uri()


def uri_path(uri: str) -> str:
    """The local path a uri made by ``path_uri`` names (the inverse of ``path_uri``)."""
    if uri.startswith(FILE_URI_PREFIX):
        return os.fsdecode(unquote_to_bytes(uri[len(FILE_URI_PREFIX):]))
    return uri


def shown(path: str) -> str:
    """A path as text that can always be printed and stored: undecodable bytes as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace") if not is_storable(path) else path


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading without blocking (a FIFO swapped in opens at once) and check, on the open
    descriptor, that it is a regular file; returns (fd, its stat). Raises ``DecodeError`` otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DecodeError(shown(path), f"cannot read file: {exc.strerror or exc}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise DecodeError(shown(path), f"not a regular file: {file_kind(st.st_mode)}")
    return fd, st


def read_capped(fd: int, limit: int, path: str) -> bytes:
    """All of a file's bytes from its start, refusing (``DecodeError``) a file that holds more than ``limit``."""
    os.lseek(fd, 0, os.SEEK_SET)
    parts, total = [], 0
    while True:
        chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        total += len(chunk)
        if total > limit:
            raise DecodeError(shown(path), f"file grew past the limit of {limit} bytes while being read")


def hash_capped(fd: int, limit: int, path: str) -> str:
    """SHA-256 of a file's bytes read in chunks (never all in memory), refusing more than ``limit`` bytes."""
    os.lseek(fd, 0, os.SEEK_SET)
    digest, total = hashlib.sha256(), 0
    while chunk := os.read(fd, _CHUNK):
        total += len(chunk)
        if total > limit:
            raise DecodeError(shown(path), f"file grew past the limit of {limit} bytes while being read")
        digest.update(chunk)
    return digest.hexdigest()


def human_bytes(n: float) -> str:
    """A byte count for people: 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
