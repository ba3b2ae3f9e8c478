"""Requests from pages the user did not mean to reach the server: foreign ``Host`` headers and cross-site posts.

DNS rebinding points an attacker's name at 127.0.0.1, making the attacker's page same-origin with this
server; its requests then carry ``Host: attacker.example[:port]``. So only names that cannot be rebound are
answered: IP literals that are this server's own address or loopback, ``localhost``, and the names the
operator allowed (``--allow-host``, ``--host``). The port is not checked: a browser's ``Host`` names the
URL it fetched, so the port gives no protection, and SSH or proxy port forwards legitimately change it.

A multipart form is a CORS "simple" request that any site can send without a preflight, so a POST whose
``Origin`` is neither this server's own nor a configured CORS origin is refused before it reaches a route.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from engine.server.errors import error_body

LOOPBACK_NAMES = frozenset({"localhost"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def split_host(value: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header value (lowercased, no brackets or trailing dot); None if malformed."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/\\@?# \t"):
        return None
    try:
        parts = urlsplit(f"//{value}")
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not name:
        return None
    return name.rstrip("."), port


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class HostGuard:
    """ASGI middleware: 421 for a ``Host`` that is not this server's, 403 for a POST from a foreign ``Origin``."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = ()) -> None:
        self.app = app
        allowed_hosts, cors_origins = tuple(allowed_hosts), tuple(cors_origins)
        self.any_host = "*" in allowed_hosts
        self.names: set[str] = set(LOOPBACK_NAMES)
        self.name_ports: set[tuple[str, int]] = set()
        for entry in allowed_hosts:
            found = split_host(entry) if entry != "*" else None
            if found and found[1] is None:
                self.names.add(found[0])
            elif found:
                self.name_ports.add((found[0], found[1]))  # type: ignore[arg-type]
        self.any_origin = "*" in cors_origins
        self.origins = {o.rstrip("/").lower() for o in cors_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        found = split_host(host)
        if not self.any_host and (found is None or not self._host_allowed(found, scope)):
            await self._refuse(scope, receive, send, 421, "this server does not answer for that Host header; "
                               "start it with --allow-host NAME to allow a name")
            return
        origin = headers.get(b"origin")
        if (scope["type"] == "http" and scope.get("method", "GET") not in SAFE_METHODS and origin is not None
                and not self._origin_allowed(origin.decode("latin-1"), host, scope)):
            await self._refuse(scope, receive, send, 403, "cross-origin request refused: the Origin is neither this "
                               "server nor a --cors-origin")
            return
        await self.app(scope, receive, send)

    def _host_allowed(self, found: tuple[str, int | None], scope: Scope) -> bool:
        name, port = found
        if name in self.names or (port is not None and (name, port) in self.name_ports):
            return True
        ip = _ip(name.strip("[]"))
        if ip is None:
            return False
        if ip.is_loopback:
            return True
        local = (scope.get("server") or (None, None))[0]
        return local is not None and _ip(str(local)) == ip  # the address this connection arrived at

    def _origin_allowed(self, origin: str, host: str, scope: Scope) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if self.any_origin or origin in self.origins:
            return True
        try:
            parts = urlsplit(origin)
            origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False  # "null" (sandboxed frames, file: pages) and anything malformed
        own = split_host(host)
        scheme = str(scope.get("scheme", "http"))
        if own is None or parts.hostname is None:
            return False
        own_port = own[1] or DEFAULT_PORTS.get(scheme)
        return (parts.scheme, parts.hostname.rstrip("."), origin_port) == (scheme, own[0], own_port)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = error_body(status, message)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
