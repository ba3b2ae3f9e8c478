"""Bytes in and out of the server: upload size cap, content sniffed from bytes, catalog files and thumbnails."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.modalities import modality as registered
from engine.server.errors import ApiError, error_body
from index.records import Item
from ingest.decode import sniff_media as sniff  # one signature table, shared with ingest
from ingest.errors import DecodeError
from ingest.files import open_regular, uri_path
from ingest.video import frame_at

SNIFF_BYTES = 16


def sniff_upload(data: bytes) -> str:
    """The query modality of uploaded bytes; ``ApiError`` 415 for anything but a known image or audio format."""
    found = sniff(data[:SNIFF_BYTES])
    if found is not None and found[0] == "video":
        raise ApiError(415, "a video cannot be a query yet: search with a frame (an image) or its sound (audio)")
    if found is None:
        raise ApiError(415, "unsupported upload: the bytes are not a JPEG, PNG, GIF, WebP, TIFF or BMP image, nor "
                            "a WAV, FLAC, Ogg or MP3 audio file")
    return found[0]


def media_path(item: Item) -> tuple[Path, str]:
    """The file of an image, audio or video catalog item and its sniffed MIME type; ``ApiError`` 404 when there is
    none."""
    if item.status != "ok" or not registered(item.modality).binary or "#" in item.uri:
        raise ApiError(404, f"item {item.id} has no media file")
    path = Path(uri_path(item.uri))  # a name that is not UTF-8 is stored as a file:// uri
    try:
        fd, _ = open_regular(str(path))  # a FIFO or device put in the file's place is refused, never waited on
    except DecodeError:
        raise ApiError(404, f"the file of item {item.id} is gone or not a regular file") from None
    try:
        found = sniff(os.read(fd, SNIFF_BYTES))
    except OSError:
        raise ApiError(404, f"the file of item {item.id} could not be read") from None
    finally:
        os.close(fd)
    if found is None or found[0] != item.modality:
        raise ApiError(404, f"the file of item {item.id} is not a readable {item.modality}")
    return path, found[1]


class Thumbnails:
    """JPEG thumbnails of catalog images and of video frames at a second, made on demand and kept in memory (LRU,
    keyed by id, content and second)."""

    def __init__(self, size: int = 256, max_items: int = 1024) -> None:
        self.size, self.max_items = size, max_items
        self._cache: OrderedDict[tuple[int, str | None, float | None, float | None], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, item: Item, path: Path, seconds: float | None = None) -> bytes:
        """The thumbnail of an image item, or of a video item's frame at ``seconds`` (made from ``path`` on first
        use)."""
        at = None if item.modality != "video" else round(seconds or 0.0, 2)
        key = (item.id, item.sha256, item.mtime, at)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = self._make(path) if at is None else self._frame(path, at)
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self.max_items:
                self._cache.popitem(last=False)
        return data

    def _make(self, path: Path) -> bytes:
        try:
            with Image.open(path) as image:
                image.draft("RGB", (self.size, self.size))  # JPEG: decode at reduced scale
                small = ImageOps.exif_transpose(image).convert("RGB")
                small.thumbnail((self.size, self.size))
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
            raise ApiError(404, f"{path.name} could not be read as an image") from None
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=80)
        return buf.getvalue()

    def _frame(self, path: Path, seconds: float) -> bytes:
        """A JPEG of the frame a video shows at ``seconds`` (decoding bounded: ingest.video.frame_at)."""
        try:
            frame = frame_at(str(path), str(path), seconds, max_side=self.size)
        except DecodeError as exc:
            raise ApiError(404, f"{path.name}: {exc.reason}") from None
        buf = io.BytesIO()
        frame.save(buf, "JPEG", quality=80)
        return buf.getvalue()


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets a 413 (by declared length, or as it streams in), and
    one still arriving ``timeout_s`` after the request began gets a 408; either way the connection is closed."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 30.0) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send, _TooLarge())
            return
        deadline = time.monotonic() + self.timeout_s
        seen = 0
        body_done = started = False

        async def counted() -> Message:
            nonlocal seen, body_done
            if body_done:  # after the body only a disconnect can come: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise _TooSlow() from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except (_TooLarge, _TooSlow) as exc:
            if not started:
                await self._reject(scope, receive, send, exc)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        if isinstance(exc, _TooSlow):
            response = error_body(408, f"the request body did not arrive within {self.timeout_s:g} s")
        else:
            response = error_body(413, f"request body over the {self.max_bytes / (1 << 20):g} MB upload limit")
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass
