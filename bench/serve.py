"""``python -m bench.serve --json OUT``: concurrent loopback clients against ``xmodal serve`` over the demo store.

Builds the demo store (``engine.api.demo``'s corpus) with the small preset (``xmodal-mini`` when it is installed,
else ``tiny-random``, and says so), starts the server in its own process, warms it up, then runs
``--clients`` keep-alive HTTP/1.1 clients (one asyncio task each, a minimal client so the load generator
costs little CPU) that post text queries back to back for ``--seconds``. ``--distinct`` makes every request
a text never sent before (generated word combinations: the server's vector cache never hits). ``--baseline
TREE`` also serves the same corpus from another checkout of xmodal (e.g. a ``git worktree`` of an older
commit) and alternates the load between the two servers in ``--rounds`` rounds, so that both see the same
(shared, busy) machine; ``--baseline-env NAME=VALUE`` sets a variable for that server only (``--baseline .
--baseline-env XMODAL_ONNX=0``: this code with text queries on torch against ONNX Runtime). Prints and writes:
requests, errors, throughput, latency percentiles, CPU per request, the servers' RSS before and after the load,
and the machine's load average.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench._errors import InvalidBenchArgs
from bench._procs import cpu_seconds, rss_mib
from bench.report import machine_info

ROOT = Path(__file__).resolve().parents[1]
FALLBACK = "tiny-random"
WANTED = "xmodal-mini"
QUERIES = ["a dog barking", "rain falling", "a rooster crowing", "a baby crying", "a clock ticking", "waves on a beach",
           "a chainsaw", "a helicopter overhead", "a crackling fire", "someone sneezing", "the number seven",
           "the number three", "a person saying eight", "a red square above a blue circle", "a small green triangle",
           "birds singing at dawn", "a handwritten digit", "loud engine noise", "quiet room tone", "a spoken word"]
# Distinct queries: "<size> <colour> <thing> <action> <place>", 8 x 16 x 32 x 24 x 20 = 1,966,080 of them.
_SLOTS = (
    "a small|a big|a tiny|an old|a young|a noisy|a quiet|a distant".split("|"),
    "red green blue yellow black white brown grey orange purple pink golden silver dark pale striped".split(),
    ("dog cat bird rooster baby clock wave chainsaw helicopter fire engine train car bell drum guitar piano violin "
     "horse cow sheep frog owl crow bee door phone kettle truck boat siren whistle").split(),
    ("barking crying singing ticking crackling ringing humming buzzing roaring splashing whistling knocking "
     "rattling chirping howling purring beeping tapping dripping rustling squeaking booming clicking hissing").split(),
    ("at dawn|at night|in the rain|on a beach|in a forest|in a kitchen|on a street|in a field|near a river|"
     "in a hall|on a farm|in a garage|at a station|in a park|on a roof|in a cave|at sea|in the snow|in a city|"
     "in a room").split("|"),
)


def distinct_queries(start: int = 0) -> Iterator[str]:
    """Query texts, each one different from every other (a bijective walk of the word combinations)."""
    sizes = [len(s) for s in _SLOTS]
    total = int(np.prod(sizes))
    step = 1_000_003  # a prime that does not divide ``total``: i -> i * step mod total visits every combination once
    for i in range(start, start + total):
        n = (i * step) % total
        words = []
        for slot, size in zip(_SLOTS, sizes):
            n, r = divmod(n, size)
            words.append(slot[r])
        yield " ".join(words)


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
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0


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
    from engine.api import Engine, build_corpus
    from ingest import IngestOptions

    start = time.perf_counter()
    paths = build_corpus(store / "generated")
    with Engine.open(store, preset, random_weights=random_weights) as engine:
        summary = engine.ingest(paths, IngestOptions(workers=0))
        items = len(engine.store.catalog.items(status="ok"))
    return {"items": items, "added": summary.added, "failed": summary.failed,
            "seconds": round(time.perf_counter() - start, 1)}


def _tree_env(tree: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "XMODAL_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **(extra or {})}


def build_store_in(tree: Path, store: Path, preset: str, random_weights: bool) -> dict:
    """``build_store`` run by another checkout's code (its own catalog schema and ingest), in a child process."""
    code = ("import json, sys; from pathlib import Path; from bench.serve import build_store; "
            "print(json.dumps(build_store(Path(sys.argv[1]), sys.argv[2], sys.argv[3] == '1')))")
    out = subprocess.run([sys.executable, "-c", code, str(store.resolve()), preset, "1" if random_weights else "0"],
                         cwd=tree, env=_tree_env(tree), capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"building the store with {tree} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(port: int, path: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


def start_server(store: Path, preset: str, random_weights: bool, port: int, workers: int = 1,
                 tree: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``serve_forever`` of ``tree``'s code in a child process (``env``: extra variables); returns once ``/health``
    answers (from every worker)."""
    cmd = [sys.executable, "-m", "bench.serve", "--as-server", "--store", str(store.resolve()), "--preset", preset,
           "--port", str(port), "--workers", str(workers)] + (["--random-weights"] if random_weights else [])
    proc = subprocess.Popen(cmd, cwd=tree, env=_tree_env(tree, env))
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
        uvicorn.run("engine.server.app:app_from_env", factory=True, workers=workers, host="127.0.0.1", port=port,
                    log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    else:
        uvicorn.run(create_app(spec), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=5)


def _request(body: bytes) -> bytes:
    return (b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


async def _client(port: int, next_body: Callable[[], bytes], measure_from: float, stop_at: float,
                  out: LoadResult) -> None:
    reader = writer = None
    while time.perf_counter() < stop_at:
        first = writer is None
        request = _request(next_body())
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


def body_source(distinct: bool, seed: int = 0) -> Callable[[], bytes]:
    """Request bodies: the 20 repeating ``QUERIES`` at random, or distinct texts (``distinct_queries``)."""
    if distinct:
        texts = distinct_queries(seed)
        return lambda: json.dumps({"text": next(texts), "k": 10}).encode()
    bodies = [json.dumps({"text": q, "k": 10}).encode() for q in QUERIES]
    rng = np.random.default_rng(seed)
    return lambda: bodies[int(rng.integers(len(bodies)))]


def run_load(port: int, clients: int, seconds: float, next_body: Callable[[], bytes], warmup: float = 5.0,
             out: LoadResult | None = None, server_pid: int | None = None) -> LoadResult:
    """``clients`` keep-alive clients posting text queries: ``warmup`` s unmeasured (connections opened), then
    ``seconds`` measured; adds to ``out`` (and to its CPU seconds, the server's from ``server_pid``)."""
    out = out or LoadResult()
    marks: dict[str, float] = {}

    def measuring() -> None:
        marks["client"] = time.process_time()
        marks["server"] = cpu_seconds(server_pid) if server_pid else 0.0

    async def main() -> None:
        loop = asyncio.get_running_loop()
        measure_from = time.perf_counter() + warmup
        stop_at = measure_from + seconds
        loop.call_at(loop.time() + warmup, measuring)
        await asyncio.gather(*(_client(port, next_body, measure_from, stop_at, out) for _ in range(clients)))

    asyncio.run(main())
    out.seconds += seconds
    out.client_cpu_s += time.process_time() - marks["client"]
    out.server_cpu_s += (cpu_seconds(server_pid) if server_pid else 0.0) - marks["server"]
    return out


def summarize(load: LoadResult) -> dict:
    """Throughput, latency percentiles (ms) and CPU per request of a load run."""
    lat = np.array(load.latencies_ms) if load.latencies_ms else np.zeros(1)
    first = np.array(load.first_request_ms) if load.first_request_ms else np.zeros(1)
    per = max(load.requests, 1)
    return {"requests": load.requests, "errors": load.errors, "error_kinds": load.error_kinds,
            "warmup_requests": load.warmup_requests, "warmup_errors": load.warmup_errors,
            "first_request_per_connection_ms": {"p50": round(float(np.median(first)), 1),
                                                "max": round(float(first.max()), 1)},
            "measured_seconds": load.seconds, "req_per_s": round(load.requests / max(load.seconds, 1e-9), 1),
            **{f"p{p}_ms": round(float(np.percentile(lat, p)), 2) for p in (50, 90, 95, 99)},
            "max_ms": round(float(lat.max()), 2), "mean_ms": round(float(lat.mean()), 2),
            "server_cpu_ms_per_request": round(1000 * load.server_cpu_s / per, 3),
            "client_cpu_ms_per_request": round(1000 * load.client_cpu_s / per, 3)}


@dataclass
class Served:
    """One server under test: its name, code tree, process, port and what was measured."""

    name: str
    tree: Path
    proc: subprocess.Popen
    port: int
    load: LoadResult = field(default_factory=LoadResult)
    report: dict = field(default_factory=dict)


def _print(s: Served, clients: int, distinct: bool) -> None:
    r = s.report
    print(f"[{s.name}] {clients} clients x {r['measured_seconds']:.0f} s ({'distinct' if distinct else 'repeating'} "
          f"text queries, all targets, k=10): {r['requests']} requests, {r['errors']} errors, {r['req_per_s']} req/s")
    print(f"[{s.name}] latency ms: p50 {r['p50_ms']}  p95 {r['p95_ms']}  p99 {r['p99_ms']}  max {r['max_ms']}")
    print(f"[{s.name}] server RSS: before {r['rss_before_mib']} MiB, after {r['rss_after_mib']} MiB (peak "
          f"{r['peak_rss_mib']} MiB); CPU per request: server {r['server_cpu_ms_per_request']} ms, clients "
          f"{r['client_cpu_ms_per_request']} ms")
    print(f"[{s.name}] server counters: {r['server_counters']}")


def main(argv: list[str] | None = None) -> int:
    """Build the store(s), start the server(s), warm up, load them in turn, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--store", default="bench/results/tmp/serve-store", help="demo store folder (reused)")
    parser.add_argument("--preset", help=f"preset (default {WANTED} when available, else {FALLBACK})")
    parser.add_argument("--random-weights", action="store_true", help="random weights of the preset's architecture")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured duration (per server)")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="unmeasured warm-up seconds on the same connections, before each round's measured ones")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (xmodal serve --workers)")
    parser.add_argument("--distinct", action="store_true", help="every query text new (defeats the vector cache)")
    parser.add_argument("--baseline", type=Path, metavar="TREE",
                        help="also serve from this checkout of xmodal (e.g. a git worktree of an older commit), "
                        "alternating with this one")
    parser.add_argument("--rounds", type=int, default=2, help="with --baseline: rounds of alternation (default 2)")
    parser.add_argument("--baseline-env", action="append", default=[], metavar="NAME=VALUE",
                        help="with --baseline: an environment variable for the baseline server only (repeatable), "
                        "e.g. --baseline . --baseline-env XMODAL_ONNX=0 measures one switch on the same code")
    parser.add_argument("--as-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("XMODAL_OFFLINE", "1")
    if args.as_server:
        serve_forever(args.store, args.preset, args.random_weights, args.port, args.workers)
        return 0
    baseline_env = dict(item.split("=", 1) for item in args.baseline_env if "=" in item)
    if len(baseline_env) != len(args.baseline_env) or (baseline_env and not args.baseline):
        raise InvalidBenchArgs("--baseline-env takes NAME=VALUE, and only with --baseline")
    preset, why = choose_preset(args.preset)
    print(f"preset: {preset} ({why}){' with random weights' if args.random_weights else ''}")
    name = preset.replace("/", "_") + ("-random" if args.random_weights else "")
    trees = [("after", ROOT, Path(args.store) / name, {})]
    if args.baseline:
        tree = args.baseline.resolve()  # a store per baseline commit: a newer checkout migrates a store past an older one
        trees.insert(0, ("before", tree, Path(args.store) / f"{name}-baseline-{_commit(tree).split()[0]}", baseline_env))
    load_before = os.getloadavg()
    served: list[Served] = []
    try:
        for label, tree, store, env in trees:
            corpus = build_store(store, preset, args.random_weights) if tree == ROOT else \
                build_store_in(tree, store, preset, args.random_weights)
            print(f"[{label}] store {store} ({tree}): {corpus['items']} items ({corpus['added']} added, "
                  f"{corpus['failed']} failed, {corpus['seconds']} s)")
            port = _free_port()
            served.append(Served(label, tree, start_server(store, preset, args.random_weights, port, args.workers,
                                                           tree, env), port))
        for s in served:
            s.report = {"stats": _get_json(s.port, "/stats"), "rss_before": rss_mib(s.proc.pid)}
        rounds = args.rounds if args.baseline else 1
        sources = {s.name: body_source(args.distinct, seed=i * 500_000) for i, s in enumerate(served)}
        for r in range(rounds):
            for s in (served if r % 2 == 0 else served[::-1]):  # ABBA order: neither always goes first
                run_load(s.port, args.clients, args.seconds / rounds, sources[s.name], args.warmup, s.load, s.proc.pid)
                print(f"[{s.name}] round {r + 1}/{rounds}: {s.load.requests} requests so far")
        for s in served:
            s.report["rss_after"] = rss_mib(s.proc.pid)
            s.report["counters"] = _get_json(s.port, "/stats")["server"]
    finally:
        for s in served:
            s.proc.terminate()
            s.proc.wait(30)
    report: dict = {"benchmark": "serve", "preset": preset, "preset_note": why, "random_weights": args.random_weights,
                    "clients": args.clients, "server_workers": args.workers, "seconds": args.seconds,
                    "warmup_seconds": args.warmup, "distinct_queries": args.distinct, "rounds": rounds,
                    "baseline_env": baseline_env}
    for s in served:
        before, after, stats = s.report["rss_before"], s.report["rss_after"], s.report["stats"]
        s.report = {"tree": str(s.tree), "commit": _commit(s.tree), "store_items": stats["items"],
                    "indexes": stats["indexes"], **summarize(s.load), "rss_before_mib": before["rss_mib"],
                    "rss_after_mib": after["rss_mib"], "peak_rss_mib": after["peak_rss_mib"],
                    "server_counters": s.report["counters"]}
        _print(s, args.clients, args.distinct)
    if args.baseline:
        report["servers"] = {s.name: s.report for s in served}
        before, after = report["servers"]["before"], report["servers"]["after"]
        report["speedup_req_per_s"] = round(after["req_per_s"] / max(before["req_per_s"], 1e-9), 2)
        print(f"after / before: {report['speedup_req_per_s']}x requests/s")
    else:
        report.update(served[0].report)
    report["machine"] = {**machine_info(), "load_avg_before": load_before, "load_avg_after": os.getloadavg()}
    print(f"machine load average: before {load_before}, after {report['machine']['load_avg_after']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _commit(tree: Path) -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=tree, capture_output=True,
                           text=True).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
