"""``xmodal serve``: the HTTP API and the search page on uvicorn, bound to loopback unless told otherwise."""

from __future__ import annotations

import argparse
import logging

from engine.engine import Engine

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand."""
    parser = sub.add_parser(
        "serve", help="serve the search API and a web page over the store",
        description="Serve the store over HTTP: POST /search (JSON text query, or a multipart image or audio upload), "
        "GET /items/{id}, GET /media/{id} (catalog files by id only; ?thumb=1 for image thumbnails), GET /health, "
        "GET /stats, the search page at / and the OpenAPI docs at /docs. Binds 127.0.0.1 unless --host says "
        "otherwise; uploads are capped and sniffed from their bytes; CORS is closed unless --cors-origin is given. "
        "Files another 'xmodal ingest' adds or deletes are picked up without a restart.",
    )
    parser.add_argument("--store", help="store folder (default $XMODAL_STORE or ./xmodal-store)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--preset", help="model preset (default: the store's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body in MB (default 20)")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow cross-origin requests from this origin, e.g. http://localhost:3000 (repeatable)")
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                        help="uvicorn log level (default warning)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Open the engine (so a bad preset or missing weights fail here, with an exit code), then serve."""
    import uvicorn

    from engine.server import ServerConfig, create_app

    engine = Engine.open(args.store, args.preset, args.device)
    engine.close()  # checked; the server reopens it on its own thread (SQLite connections are per thread)
    config = ServerConfig(max_upload_mb=args.max_upload_mb, cors_origins=tuple(args.cors_origin))
    app = create_app(lambda: Engine.open(args.store, args.preset, args.device), config)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: reachable from other machines", args.host)
    print(f"xmodal: serving {engine.store.root} (preset {engine.model}) on http://{args.host}:{args.port}/")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
