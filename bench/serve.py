"""``python -m bench.serve --json OUT``: concurrent loopback clients against ``xmodal serve`` over the demo store.

Builds the demo store (``engine.demo``'s corpus) with the small preset (``xmodal-mini`` when it is installed,
else ``tiny-random``, and says so), starts the server in its own process, warms it up, then runs
``--clients`` keep-alive HTTP/1.1 clients (one asyncio task each, a minimal client so the load generator
costs little CPU) that post text queries back to back for ``--seconds``. Prints and writes: requests,
errors, throughput, latency percentiles, and the server's RSS before and after the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.report import machine_info

FALLBACK = "tiny-random"
WANTED = "xmodal-mini"
QUERIES = ["a dog barking", "rain falling", "a rooster crowing", "a baby crying", "a clock ticking", "waves on a beach",
           "a chainsaw", "a helicopter overhead", "a crackling fire", "someone sneezing", "the number seven",
           "the number three", "a person saying eight", "a red square above a blue circle", "a small green triangle",
           "birds singing at dawn", "a handwritten digit", "loud engine noise", "quiet room tone", "a spoken word"]


@dataclass
class LoadResult:
    """What the clients saw: counts, latencies (ms) and errors by kind."""

    requests: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    warmup_requests: int = 0
    warmup_errors: int = 0
    first_request_ms: list[float] = field(default_factory=list)  # per connection, connect included


def choose_preset(requested: str | None) -> tuple[str, str]:
    """The preset to serve and a note on why (``xmodal-mini`` when it resolves, else the tiny fallback)."""
    from engine.models import get_preset

    if requested:
        return requested, "asked for"
    try:
        get_preset(WANTED)
        return WANTED, "the shipped small preset"
    except Exception as exc:  # noqa: BLE001  (PresetNotFound, InvalidPreset, weights: say so, fall back)
        return FALLBACK, f"{WANTED} is not available here ({type(exc).__name__}: {exc}); fell back to {FALLBACK}"


def build_store(store: Path, preset: str, random_weights: bool) -> dict:
    """The demo corpus ingested into ``store`` (incremental: a rerun re-embeds nothing)."""
    from engine.demo import build_corpus
    from engine.engine import Engine
    from ingest.pipeline import IngestOptions

    start = time.perf_counter()
    paths = build_corpus(store / "generated")
    with Engine.open(store, preset, random_weights=random_weights) as engine:
        summary = engine.ingest(paths, IngestOptions(workers=0))
        items = len(engine.store.catalog.items(status="ok"))
    return {"items": items, "added": summary.added, "failed": summary.failed,
            "seconds": round(time.perf_counter() - start, 1)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (uvicorn's worker processes), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def rss_mib(pid: int) -> dict[str, float]:
    """Resident and peak resident memory of a process and its descendants, summed, MiB (from /proc)."""
    fields = {"VmRSS": 0.0, "VmHWM": 0.0}
    for one in process_tree(pid):
        try:
            lines = Path(f"/proc/{one}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition(":")
            if key in fields:
                fields[key] += int(value.split()[0]) / 1024
    return {"rss_mib": round(fields["VmRSS"], 1), "peak_rss_mib": round(fields["VmHWM"], 1)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process and its descendants have used so far (from /proc)."""
    total = 0
    for one in process_tree(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _get_json(port: int, path: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


def start_server(store: Path, preset: str, random_weights: bool, port: int, workers: int = 1) -> subprocess.Popen:
    """``serve_forever`` in a child process; returns once ``/health`` answers (from every worker, eventually)."""
    cmd = [sys.executable, "-m", "bench.serve", "--as-server", "--store", str(store), "--preset", preset,
           "--port", str(port), "--workers", str(workers)] + (["--random-weights"] if random_weights else [])
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            for _ in range(4 * workers):  # connections land on any worker: ask until all have answered
                _get_json(port, "/health")
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start in 300 s")


def serve_forever(store: str, preset: str, random_weights: bool, port: int, workers: int) -> None:
    """The server process: the API app over ``store`` on 127.0.0.1:port (``workers`` processes)."""
    import uvicorn

    from engine.server import SPEC_ENV, EngineSpec, ServerConfig, create_app, spec_env

    spec = EngineSpec(store, preset, random_weights=random_weights)
    if workers > 1:
        os.environ[SPEC_ENV] = spec_env(spec, ServerConfig())
        uvicorn.run("engine.server:app_from_env", factory=True, workers=workers, host="127.0.0.1", port=port,
                    log_level="warning", access_log=False)
    else:
        uvicorn.run(create_app(spec), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _request(body: bytes) -> bytes:
    return (b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


async def _client(port: int, bodies: list[bytes], seed: int, measure_from: float, stop_at: float,
                  out: LoadResult) -> None:
    rng = np.random.default_rng(seed)
    reader = writer = None
    while time.perf_counter() < stop_at:
        first = writer is None
        request = _request(bodies[int(rng.integers(len(bodies)))])
        start = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            kind = None if status == 200 else f"http {status}"
        except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration) as exc:
            kind, writer = type(exc).__name__, None
        took = 1000 * (time.perf_counter() - start)
        if first:
            out.first_request_ms.append(took)
        if start < measure_from:
            out.warmup_requests += 1
            out.warmup_errors += bool(kind)
            continue
        out.requests += 1
        out.latencies_ms.append(took)
        if kind:
            out.errors += 1
            out.error_kinds[kind] = out.error_kinds.get(kind, 0) + 1
    if writer is not None:
        writer.close()


def run_load(port: int, clients: int, seconds: float, distinct: bool, warmup: float = 5.0, seed: int = 0,
             on_measure: Callable[[], None] | None = None) -> LoadResult:
    """``clients`` keep-alive clients posting text queries: ``warmup`` s unmeasured (connections opened), then ``seconds``."""
    bodies = [json.dumps({"text": q, "k": 10}).encode() for q in QUERIES]
    if distinct:  # every request a text never seen: no query-vector cache hits
        bodies = [json.dumps({"text": f"{QUERIES[i % len(QUERIES)]} {i}", "k": 10}).encode() for i in range(200_000)]
    out = LoadResult()

    async def main() -> None:
        measure_from = time.perf_counter() + warmup
        stop_at = measure_from + seconds
        if on_measure is not None:
            asyncio.get_running_loop().call_at(asyncio.get_running_loop().time() + warmup, on_measure)
        await asyncio.gather(*(_client(port, bodies, seed + i, measure_from, stop_at, out) for i in range(clients)))

    asyncio.run(main())
    return out


def summarize(load: LoadResult, seconds: float) -> dict:
    """Throughput and latency percentiles (ms) of a load run."""
    lat = np.array(load.latencies_ms) if load.latencies_ms else np.zeros(1)
    first = np.array(load.first_request_ms) if load.first_request_ms else np.zeros(1)
    return {"requests": load.requests, "errors": load.errors, "error_kinds": load.error_kinds,
            "warmup_requests": load.warmup_requests, "warmup_errors": load.warmup_errors,
            "first_request_per_connection_ms": {"p50": round(float(np.median(first)), 1),
                                                "max": round(float(first.max()), 1)},
            "req_per_s": round(load.requests / seconds, 1),
            **{f"p{p}_ms": round(float(np.percentile(lat, p)), 2) for p in (50, 90, 99)},
            "max_ms": round(float(lat.max()), 2), "mean_ms": round(float(lat.mean()), 2)}


def main(argv: list[str] | None = None) -> int:
    """Build the store, start the server, warm up, load it, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--store", default="bench/results/tmp/serve-store", help="demo store folder (reused)")
    parser.add_argument("--preset", help=f"preset (default {WANTED} when available, else {FALLBACK})")
    parser.add_argument("--random-weights", action="store_true", help="random weights of the preset's architecture")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="unmeasured warm-up seconds on the same connections, just before the measured ones")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (xmodal serve --workers)")
    parser.add_argument("--distinct", action="store_true", help="every query text new (defeats the vector cache)")
    parser.add_argument("--as-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("XMODAL_OFFLINE", "1")
    if args.as_server:
        serve_forever(args.store, args.preset, args.random_weights, args.port, args.workers)
        return 0
    preset, why = choose_preset(args.preset)
    print(f"preset: {preset} ({why}){' with random weights' if args.random_weights else ''}")
    store = Path(args.store) / (preset.replace("/", "_") + ("-random" if args.random_weights else ""))
    corpus = build_store(store, preset, args.random_weights)
    print(f"store: {store}: {corpus['items']} items ({corpus['added']} added, {corpus['failed']} failed, "
          f"{corpus['seconds']} s)")
    port = _free_port()
    server = start_server(store, preset, args.random_weights, port, args.workers)
    try:
        stats_before = _get_json(port, "/stats")
        rss_before = rss_mib(server.pid)
        marks: dict[str, float] = {}

        def measuring() -> None:
            marks["server"], marks["client"] = cpu_seconds(server.pid), time.process_time()

        load = run_load(port, args.clients, args.seconds, args.distinct, args.warmup, on_measure=measuring)
        server_cpu = cpu_seconds(server.pid) - marks["server"]
        client_cpu = time.process_time() - marks["client"]
        rss_after = rss_mib(server.pid)
        stats_after = _get_json(port, "/stats")
    finally:
        server.terminate()
        server.wait(30)
    figures = summarize(load, args.seconds)
    report = {"benchmark": "serve", "preset": preset, "preset_note": why, "random_weights": args.random_weights,
              "clients": args.clients, "server_workers": args.workers, "seconds": args.seconds, "warmup_seconds": args.warmup,
              "distinct_queries": args.distinct, "store_items": stats_before["items"],
              "indexes": stats_before["indexes"], **figures,
              "rss_before_mib": rss_before["rss_mib"], "rss_after_mib": rss_after["rss_mib"],
              "peak_rss_mib": rss_after["peak_rss_mib"], "server_counters": stats_after["server"],
              "server_cpu_ms_per_request": round(1000 * server_cpu / max(load.requests, 1), 3),
              "client_cpu_ms_per_request": round(1000 * client_cpu / max(load.requests, 1), 3),
              "machine": {**machine_info(), "load_avg_after": os.getloadavg()}}
    print(f"{args.clients} clients x {args.seconds:.0f} s, {args.workers} server process(es) ({'distinct' if args.distinct else 'repeating'} text queries, "
          f"all targets, k=10): {figures['requests']} requests, {figures['errors']} errors, "
          f"{figures['req_per_s']} req/s (after {args.warmup:.0f} s warm-up on the same connections: "
          f"{figures['warmup_requests']} requests, {figures['warmup_errors']} errors)")
    print(f"latency ms: p50 {figures['p50_ms']}  p90 {figures['p90_ms']}  p99 {figures['p99_ms']}  "
          f"max {figures['max_ms']}")
    print(f"server RSS: before {rss_before['rss_mib']} MiB, after {rss_after['rss_mib']} MiB "
          f"(peak {rss_after['peak_rss_mib']} MiB)")
    print(f"CPU per request: server {report['server_cpu_ms_per_request']} ms, clients "
          f"{report['client_cpu_ms_per_request']} ms; machine load average after {report['machine']['load_avg_after']}")
    print(f"server counters: {stats_after['server']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
