"""``xmodal serve``: the HTTP API and the search page on uvicorn, bound to loopback unless told otherwise."""

from __future__ import annotations

import argparse
import logging

from engine.cli.args import MAX_THREADS, MAX_WORKERS, float_range, int_range
from engine.server import HEADER_TIMEOUT_S  # a lazy face: only engine.server.http loads, no torch

log = logging.getLogger(__name__)
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this many seconds
GRACEFUL_S = 3  # on SIGTERM/Ctrl-C, requests in flight get this long; then queued searches are refused (503)


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
    parser.add_argument("--port", type=int_range(0, 65535), default=8000, help="TCP port (default 8000)")
    parser.add_argument("--preset", help="model preset (default: the store's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--max-upload-mb", type=float_range(0.001, 4096.0), default=20.0, help="largest request body in MB (default 20)")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow cross-origin requests from this origin, e.g. http://localhost:3000 (repeatable)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                        help="also answer requests whose Host header names HOST (a name, or NAME:PORT; repeatable; "
                        "'*' answers any). Loopback, this server's own address and --host are always answered; "
                        "other names are refused with 421, which stops DNS-rebinding pages")
    parser.add_argument("--body-timeout", type=float_range(0.1, 3600.0), default=30.0, metavar="SECONDS",
                        help="a request body must arrive whole within this many seconds of the request (default 30; "
                        "408 after); request headers get %g s" % HEADER_TIMEOUT_S)
    parser.add_argument("--threads", type=int_range(1, MAX_THREADS), default=1,
                        help="torch/FAISS threads for query encoding and search (default 1: best for one query at a time)")
    parser.add_argument("--encoders", type=int_range(0, MAX_THREADS), default=2,
                        help="threads that encode text queries in batches beside the search thread (default 2; "
                        "0: the search thread encodes)")
    parser.add_argument("--workers", type=int_range(1, MAX_WORKERS), default=1,
                        help="server processes, each with its own engine (default 1; each holds the model in memory)")
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                        help="uvicorn log level (default warning)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Open the engine (so a bad preset or missing weights fail here, with an exit code), then serve."""
    from engine.cli.preflight import check_port

    check_port(args.host, args.port)  # a busy port is reported now, before torch and the model load
    import os

    import uvicorn

    from engine.server import PROTOCOL, SPEC_ENV, EngineSpec, ServerConfig, create_app, spec_env

    spec = EngineSpec(args.store, args.preset, args.device)
    with spec.open() as engine:  # checked here; each server process reopens it on its own engine thread
        root, preset = engine.store.root, engine.model
    named = () if args.host in ("", "0.0.0.0", "::") else (args.host,)  # a wildcard bind has no one name
    config = ServerConfig(max_upload_mb=args.max_upload_mb, cors_origins=tuple(args.cors_origin), threads=args.threads,
                          encoders=args.encoders,
                          allowed_hosts=(*named, *args.allow_host), body_timeout_s=args.body_timeout)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: reachable from other machines", args.host)
    print(f"xmodal: serving {root} (preset {preset}) on http://{args.host}:{args.port}/ "
          f"with {args.workers} worker process{'es' if args.workers > 1 else ''}", flush=True)
    if args.workers > 1:
        os.environ[SPEC_ENV] = spec_env(EngineSpec(str(root), preset, args.device), config)
        uvicorn.run("engine.server.app:app_from_env", factory=True, workers=args.workers, host=args.host, port=args.port,
                    log_level=args.log_level, http=PROTOCOL, timeout_keep_alive=KEEP_ALIVE_S,
                    timeout_graceful_shutdown=GRACEFUL_S)
    else:
        uvicorn.run(create_app(spec, config), host=args.host, port=args.port, log_level=args.log_level, http=PROTOCOL,
                    timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=GRACEFUL_S)
    return 0
