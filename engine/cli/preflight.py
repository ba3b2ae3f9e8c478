"""Checks the CLI makes before loading a model, so a typo is reported at once instead of after a 5 s load."""

from __future__ import annotations

import errno
import os
import socket
import stat

from core.errors import InvalidInput, PortUnavailable


def readable_file(path: str, option: str) -> str:
    """``path`` if it names a readable regular file, else ``InvalidInput`` saying which option is wrong."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise InvalidInput(f"{option} {path}: {exc.strerror.lower() if exc.strerror else exc}") from None
    if not stat.S_ISREG(mode):
        raise InvalidInput(f"{option} {path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise InvalidInput(f"{option} {path}: permission denied")
    return path


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` once and let go, so a busy or forbidden address fails before the model loads."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortUnavailable(f"cannot serve on {host}:{port}: unknown host ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no obstacle
        try:
            sock.bind(address)
        except OSError as exc:
            raise PortUnavailable(_why(host, port, exc)) from None


def _why(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use (another server?); pick another with --port"
    if exc.errno == errno.EACCES:
        return f"not allowed to bind {host}:{port} (ports below 1024 need privileges); pick another with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine; pass one of its addresses with --host"
    return f"cannot serve on {host}:{port}: {exc.strerror or exc}"
