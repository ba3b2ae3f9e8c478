"""uvicorn's HTTP protocol with a deadline on request headers: a slowloris client cannot hold a connection open.

uvicorn times out idle keep-alive connections only after a response, and any byte that arrives cancels
that timer; nothing limits how long a request's headers may take. Here a connection waiting for headers
(new, or between requests) gets ``HEADER_TIMEOUT_S`` to deliver them whole, in at most ``MAX_HEADER_BYTES``,
else it is answered 408 or 431 and closed. Bodies are timed by ``BodyLimit`` at the ASGI level.
Pass ``uvicorn.run(..., http=PROTOCOL)``: an import string, so ``--workers`` processes load it too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # uvicorn picks h11 then too
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

HEADER_TIMEOUT_S = 10.0
MAX_HEADER_BYTES = 64 << 10
PROTOCOL = "engine.server.http:GuardedProtocol"


class HeaderDeadline:
    """Mixin over a uvicorn HTTP protocol: times and sizes the headers of each request on the connection."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    max_header_bytes: int = MAX_HEADER_BYTES
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the connection with the header deadline armed."""
        self._deadline: asyncio.TimerHandle | None = None
        self._seen_cycle = None
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Count header bytes; disarm once a request's headers are in."""
        if self._deadline is not None:
            self._pending += len(data)
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not self._seen_cycle:  # the parser started a request: its headers are complete
            self._seen_cycle = self.cycle
            self._disarm()
        elif self._deadline is not None and self._pending > self.max_header_bytes:
            self._close(431, b"Request Header Fields Too Large")

    def on_response_complete(self) -> None:
        """After each response the next request's headers get a fresh deadline (unless already parsed)."""
        super().on_response_complete()  # type: ignore[misc]
        if self.cycle is not self._seen_cycle:
            self._seen_cycle = self.cycle
        elif not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        self._disarm()
        self._pending = 0
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is in flight (pipelined): its response re-arms the deadline
        self._close(408, b"Request Timeout")

    def _close(self, status: int, reason: bytes) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n" % (status, reason))
            self.transport.close()


class GuardedH11(HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with the header deadline."""


if HttpToolsProtocol is not None:
    class GuardedHttpTools(HeaderDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol (its default when installed) with the header deadline."""

    GuardedProtocol: type = GuardedHttpTools
else:
    GuardedProtocol = GuardedH11
