"""Bytes in and out of the server: upload size cap, content sniffed from bytes, catalog files and thumbnails."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.server_errors import ApiError, error_body
from index.records import Item
from ingest.decode import sniff_media as sniff  # one signature table, shared with ingest

SNIFF_BYTES = 16


def sniff_upload(data: bytes) -> str:
    """The query modality of uploaded bytes; ``ApiError`` 415 for anything but a known image or audio format."""
    found = sniff(data[:SNIFF_BYTES])
    if found is None:
        raise ApiError(415, "unsupported upload: the bytes are not a JPEG, PNG, GIF, WebP, TIFF or BMP image, nor "
                            "a WAV, FLAC, Ogg or MP3 audio file")
    return found[0]


def media_path(item: Item) -> tuple[Path, str]:
    """The file of an image or audio catalog item and its sniffed MIME type; ``ApiError`` 404 when there is none."""
    if item.status != "ok" or item.modality not in ("image", "audio") or "#" in item.uri:
        raise ApiError(404, f"item {item.id} has no media file")
    path = Path(item.uri)
    try:
        with open(path, "rb") as fh:
            found = sniff(fh.read(SNIFF_BYTES))
    except OSError:
        raise ApiError(404, f"the file of item {item.id} is gone") from None
    if not path.is_file() or found is None or found[0] != item.modality:
        raise ApiError(404, f"the file of item {item.id} is not a readable {item.modality}")
    return path, found[1]


class Thumbnails:
    """JPEG thumbnails of catalog images, made on demand and kept in memory (LRU, keyed by id and content)."""

    def __init__(self, size: int = 256, max_items: int = 1024) -> None:
        self.size, self.max_items = size, max_items
        self._cache: OrderedDict[tuple[int, str | None, float | None], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, item: Item, path: Path) -> bytes:
        """The thumbnail of an image item (made from ``path`` on first use)."""
        key = (item.id, item.sha256, item.mtime)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = self._make(path)
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


class BodyLimit:
    """ASGI middleware: request bodies over ``max_bytes`` get a 413, by declared length or as they stream in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_body(413, f"request body over the {self.max_bytes // (1 << 20)} MB upload limit")
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass
