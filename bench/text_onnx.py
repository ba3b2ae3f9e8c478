"""``python -m bench.text_onnx``: text queries through the preset's text tower with torch against ONNX Runtime.

Issue #18's server goal is bound by the text tower's CPU time per query. The server encodes text queries with
``Encoder.encode(..., query=True)``, which runs an ``hf_text`` tower through ONNX Runtime (``engine.models.onnx_text``:
the tower exported once, cached in the weights folder, checked against torch); everything else keeps torch. This
measures that switch as the server makes it: the unit vectors of both paths (cosine, each query alone and all of
them as one padded batch), the first query's cost (export or cached graph, session, probe), and the time of a
batch of 1, 8 and 32 distinct texts on ``--threads`` threads, torch and ONNX Runtime alternating so that both see
the same (shared, busy) machine. Without ONNX Runtime for this preset it says why and exits 2.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np

from bench._errors import InvalidBenchArgs
from bench.report import machine_info, write_json

QUERIES = ("a dog barking", "rain on a roof at night", "the number seven", "a red circle above a blue square",
           "zzzzqqq", "the sound of sea waves crashing on a rocky beach in the early morning")
BATCHES = (1, 8, 32)


def _times(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _texts(n: int, start: int) -> list[str]:
    from bench.serve import distinct_queries

    walk = distinct_queries(start)
    return [next(walk) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    """Compare vectors, time both engines per batch size; print the figures and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini")
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--n", type=int, default=100, help="timed calls per engine, batch size and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    if args.threads < 1 or args.n < 1 or args.rounds < 1:
        raise InvalidBenchArgs("--threads, --n and --rounds must be at least 1")
    import torch

    from engine.models import load_encoder

    torch.set_num_threads(args.threads)
    encoder = load_encoder(args.preset, modalities=["text"])
    start = time.perf_counter()
    encoder.encode("text", ["warm-up"], query=True)
    first_ms = (time.perf_counter() - start) * 1000
    why = getattr(getattr(encoder.towers["text"], "onnx", None), "reason", "this tower kind has no ONNX path")
    if why is not None:
        raise InvalidBenchArgs(f"text queries of {args.preset} stay on torch: {why}")
    worst = 1.0
    for texts in [[q] for q in QUERIES] + [list(QUERIES)]:
        a, b = encoder.encode("text", texts), encoder.encode("text", texts, query=True)
        worst = min(worst, float((a * b).sum(1).min()))
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for size in BATCHES:
        runs: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
        calls = {"torch": False, "onnxruntime": True}
        for name, query in calls.items():  # warm-up
            _times(lambda q=query: encoder.encode("text", _texts(size, 7), query=q), 5)
        for r in range(args.rounds):
            for name, query in (calls.items() if r % 2 == 0 else reversed(calls.items())):
                batches = [_texts(size, 1000 * (i + 1)) for i in range(args.n)]  # distinct texts, as users send
                it = iter(batches)
                runs[name] += _times(lambda q=query: encoder.encode("text", next(it), query=q), args.n)
        figures[str(size)] = {name: {"p50_ms": round(float(np.percentile(t, 50)), 2),
                                     "p99_ms": round(float(np.percentile(t, 99)), 2),
                                     "per_text_p50_ms": round(float(np.percentile(t, 50)) / size, 2)}
                              for name, t in runs.items()}
    print(f"unit-vector cosine, torch vs ONNX Runtime, worst of {len(QUERIES)} queries alone and as one batch: "
          f"{worst:.7f}")
    print(f"first query through ONNX Runtime (export or cached graph, session, probe): {first_ms:.0f} ms")
    for size, f in figures.items():
        speedup = f["torch"]["p50_ms"] / f["onnxruntime"]["p50_ms"]
        f["p50_speedup"] = round(speedup, 2)  # type: ignore[assignment]
        print(f"batch of {size:>2}, {args.threads} thread(s): torch p50 {f['torch']['p50_ms']} ms "
              f"(p99 {f['torch']['p99_ms']}), ONNX Runtime p50 {f['onnxruntime']['p50_ms']} ms "
              f"(p99 {f['onnxruntime']['p99_ms']}): {speedup:.2f}x")
    import onnxruntime

    write_json(args.json_out, {"machine": machine_info(), "preset": args.preset, "threads": args.threads,
                               "worst_cosine": worst, "first_query_ms": round(first_ms), "figures": figures,
                               "onnxruntime": onnxruntime.__version__, "torch": torch.__version__})
    return 0


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
