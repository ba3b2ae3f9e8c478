"""The HTTP API (FastAPI) and the static search page; ``create_app`` builds it over a store or an engine factory."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Path as PathParam, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from engine.api.facade import Engine
from core.errors import XmodalError
from engine.query import Result
from engine.server.errors import (
    ApiError,
    error_body,
    install_error_handlers,
    status_for,
)
from engine.server.guard import HostGuard
from engine.server.media import BodyLimit, Thumbnails, media_path
from engine.server.request import SEARCH_DOC, parse_form, parse_json
from engine.server.stats import item_json, result_json, stats
from engine.server.worker import EngineWorker

log = logging.getLogger(__name__)
ItemId = Annotated[int, PathParam(ge=1, le=(1 << 63) - 1, description="catalog id")]  # SQLite's INTEGER range
Seconds = Annotated[float | None, Query(ge=0, le=1e6, description="a video's moment, for its frame thumbnail")]
STATIC = Path(__file__).resolve().parent / "static"
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class ServerConfig:
    """Server settings: upload cap, CORS origins (none: closed), extra Host names, body time limit, thumbs, threads."""

    max_upload_mb: float = 20.0
    cors_origins: tuple[str, ...] = ()
    thumb_size: int = 256
    threads: int | None = 1  # torch/FAISS intra-op threads of the engine thread; None leaves them alone
    encoders: int = 2  # threads that encode text queries in batches (0: the engine thread does)
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides loopback and this server's own address
    body_timeout_s: float = 30.0  # a request body must have arrived whole this long after the request began


@dataclass(frozen=True)
class EngineSpec:
    """How each server process opens its engine: store folder, preset (None: the store's), device, random weights."""

    store: str | None = None
    preset: str | None = None
    device: str = "cpu"
    random_weights: bool = False

    def open(self) -> Engine:
        """Open the engine this spec names, with the towers its queries will need already loaded."""
        engine = Engine.open(self.store, self.preset, self.device, self.random_weights, create=False)
        wanted = [m for m in ("text", *engine.store_modalities()) if m in engine.encoder.supported]
        try:  # towers load lazily; a server loads them now so its first queries are not the slow ones
            engine.encoder.require(wanted)
        except XmodalError as exc:  # e.g. weights of one modality missing: its queries will say so, the rest work
            log.warning("not all query towers could be loaded at start: %s", exc)
        return engine


SPEC_ENV = "XMODAL_SERVE_SPEC"


def app_from_env() -> FastAPI:
    """App factory for multi-process uvicorn (``--workers``): spec and config from ``$XMODAL_SERVE_SPEC`` (JSON)."""
    raw = json.loads(os.environ[SPEC_ENV])
    config = ServerConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw["config"].items()})
    return create_app(EngineSpec(**raw["engine"]), config)


def spec_env(spec: EngineSpec, config: ServerConfig) -> str:
    """The ``$XMODAL_SERVE_SPEC`` value that makes ``app_from_env`` build this app."""
    return json.dumps({"engine": asdict(spec), "config": asdict(config)})


def create_app(source: EngineSpec | str | Path | Callable[[], Engine] | None = None,
               config: ServerConfig = ServerConfig(), preset: str | None = None) -> FastAPI:
    """The API app over an ``EngineSpec``, a store folder (with ``preset`` or the store's own) or an engine factory."""
    if isinstance(source, EngineSpec):
        factory = source.open
    elif callable(source):
        factory = source
    else:
        factory = EngineSpec(None if source is None else str(source), preset).open
    worker = EngineWorker(factory, threads=config.threads, encoders=config.encoders)
    thumbs = Thumbnails(config.thumb_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(worker.start)
        worker.stop_on_signals()  # SIGTERM/Ctrl-C: queued searches get a 503 at once
        try:
            yield
        finally:
            await asyncio.to_thread(worker.stop)

    app = FastAPI(title="xmodal", version="0.1.0", lifespan=lifespan,
                  description="Any-to-any search over your own images, sounds and texts.")
    app.state.worker = worker
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=int(config.max_upload_mb * (1 << 20)), timeout_s=config.body_timeout_s)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"])
    app.add_middleware(HostGuard, allowed_hosts=config.allowed_hosts, cors_origins=config.cors_origins)  # outermost

    @app.post("/search", summary="Search with text (JSON) or an image/audio upload (multipart)",
              openapi_extra=SEARCH_DOC)
    async def search(request: Request) -> Response:
        """Top k items for the query, fused across target modalities."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            params, upload = await parse_json(request), None
        elif kind == "multipart/form-data":
            params, upload = await parse_form(request)
        else:
            raise ApiError(415, "send application/json (text query) or multipart/form-data (file upload)")
        job = params.job(upload)
        start = time.perf_counter()
        results: list[Result] = await worker.search(job)
        body = {"results": [result_json(r) for r in results], "took_ms": round(1000 * (time.perf_counter() - start), 2),
                "query": {"modalities": [p.modality for p in job.parts], "targets": list(job.targets), "k": job.k}}
        return Response(json.dumps(body, default=str), media_type="application/json")  # plain JSON: no re-encoding

    @app.get("/items/{item_id}", summary="One catalog item and its representations")
    async def item(item_id: ItemId) -> dict:
        """The item's record, representations and media links."""
        found, reps = await worker.run(lambda e: (e.store.catalog.item(item_id),
                                                  e.store.catalog.representations_of(item_id)))
        return item_json(found, reps)

    @app.get("/media/{item_id}", summary="The indexed file of an item, by catalog id only",
             response_class=Response, responses={200: {"content": {"image/*": {}, "audio/*": {}, "video/*": {}}}})
    async def media(item_id: ItemId, thumb: bool = False, t: Seconds = None) -> Response:
        """The item's file (range requests answered 206, so a player seeks), or a JPEG thumbnail with ``?thumb=1``:
        of an image, or of the frame a video shows at ``t`` seconds (``?thumb=1&t=83.5``)."""
        found = await worker.run(lambda e: e.store.catalog.item(item_id))
        path, mime = await asyncio.to_thread(media_path, found)
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=60"}
        if thumb:
            if found.modality not in ("image", "video"):
                raise ApiError(404, f"item {item_id} is not an image or a video")
            data = await asyncio.to_thread(thumbs.get, found, path, t)
            return Response(data, media_type="image/jpeg", headers=headers)
        return FileResponse(path, media_type=mime, headers=headers, content_disposition_type="inline")

    @app.get("/health", summary="Whether the engine is open and the catalog readable")
    async def health() -> Response:
        """``ok`` with the preset and catalog generation, or 503 with the reason."""
        if worker.open_error is not None:
            return error_body(status_for(worker.open_error), f"engine unavailable: {worker.open_error}")
        generation = await worker.run(lambda e: e.store.catalog.generation)
        preset = worker.engine.model if worker.engine else None
        return Response(json.dumps({"status": "ok", "preset": preset, "generation": generation}),
                        media_type="application/json")

    @app.get("/stats", summary="Item counts per modality and status, preset, index types")
    async def get_stats() -> dict:
        """Counts per modality, the preset, and each vector set's index type and size."""
        out = await worker.run(stats)
        return {**out, "server": dict(worker.counters)}

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
                                           "Referrer-Policy": "no-referrer"})

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
