"""``python -m bench.text_onnx``: one text query through the MiniLM tower with torch against ONNX Runtime, 1 thread.

Issue #18's server goal is bound by the text tower's CPU time per query. This exports the preset's own text
transformer to ONNX (offline, from the weights already loaded), checks that ONNX Runtime gives the same pooled vector
(cosine against torch), and times both in one run, alternating, so the machine load is shared. It needs the optional
packages ``onnx`` and ``onnxruntime`` (not dependencies of xmodal); without them it says so and exits 2.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench._errors import InvalidBenchArgs
from bench.report import machine_info, write_json

QUERIES = ("a dog barking", "rain on a roof at night", "the number seven", "a red circle above a blue square",
           "zzzzqqq", "the sound of sea waves crashing on a rocky beach in the early morning")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _runtime() -> Any:
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import onnxruntime
    except ImportError as exc:
        raise InvalidBenchArgs(f"bench.text_onnx needs the optional packages onnx and onnxruntime ({exc})") from exc
    return onnxruntime


def _export(model: Any, batch: dict[str, Any], path: Path) -> None:
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "hidden")}
    torch.onnx.export(LastHidden(model).eval(), tuple(batch[n] for n in INPUTS), str(path), input_names=list(INPUTS),
                      output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False)


def _pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    return (hidden * m).sum(1) / m.sum(1)


def _times(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    """Export, compare and time; print the figures and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini")
    parser.add_argument("--n", type=int, default=300, help="timed queries per engine and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    ort = _runtime()
    import torch

    from engine.models import load_encoder

    torch.set_num_threads(1)
    encoder = load_encoder(args.preset)
    encoder.require(["text"])
    model = encoder.towers["text"].model
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "text.onnx"
        _export(model, encoder.preprocess("text", QUERIES[:1]), path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    worst = 1.0
    for query in QUERIES:
        batch = encoder.preprocess("text", [query])
        with torch.inference_mode():
            ref = model(**{n: batch[n] for n in INPUTS}).last_hidden_state.numpy()
        got = session.run(None, {n: batch[n].numpy() for n in INPUTS})[0]
        a, b = _pooled(ref, batch["attention_mask"].numpy()), _pooled(got, batch["attention_mask"].numpy())
        worst = min(worst, float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b)))
    batch = encoder.preprocess("text", [QUERIES[1]])
    feeds = {n: batch[n].numpy() for n in INPUTS}

    def with_torch() -> None:
        with torch.inference_mode():
            model(**{n: batch[n] for n in INPUTS})

    runs: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
    for fn in (with_torch, lambda: session.run(None, feeds)):
        _times(fn, 20)  # warm-up
    for _ in range(args.rounds):
        runs["torch"] += _times(with_torch, args.n)
        runs["onnxruntime"] += _times(lambda: session.run(None, feeds), args.n)
    figures = {name: {"p50_ms": round(float(np.percentile(t, 50)), 2), "p99_ms": round(float(np.percentile(t, 99)), 2)}
               for name, t in runs.items()}
    speedup = figures["torch"]["p50_ms"] / figures["onnxruntime"]["p50_ms"]
    print(f"pooled-vector cosine, torch vs ONNX Runtime, worst of {len(QUERIES)} queries: {worst:.7f}")
    for name, f in figures.items():
        print(f"{name:12s} one query, 1 thread: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms")
    print(f"ONNX Runtime / torch speed-up at p50: {speedup:.2f}x")
    write_json(args.json_out, {"machine": machine_info(), "preset": args.preset, "worst_cosine": worst,
                               "figures": figures, "p50_speedup": round(speedup, 2),
                               "onnxruntime": ort.__version__, "torch": torch.__version__})
    return 0


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
