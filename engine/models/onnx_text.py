"""Query-time text features through ONNX Runtime: a transformers text tower exported once, cached by its weights.

Encoding one text query is most of a search's CPU time. MiniLM's forward pass through ONNX Runtime on one thread
takes about 40 % of torch's (``python -m bench.text_onnx``) and gives the same pooled vectors. The tower's own
torch forward (``tower(batch)``: transformer and pooling) is exported with torch's TorchScript exporter (which
needs the ``onnx`` package) to ``<weights folder>/onnx/``, named by a hash of the weights actually loaded (so
fine-tuned or random weights never reuse another model's graph), written atomically (two processes may export at
once). Each session is checked against torch on a padded probe batch before use; any failure (no ``onnx``, no
``onnxruntime``, an export error, a mismatch) leaves the tower on torch with the reason logged once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch

from core.errors import XmodalError
from engine.models.weights import weights_dir

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what is exported changes: older cached graphs are then ignored
OPSET = 17
MIN_COSINE = 0.9999  # the session's probe vectors against torch's, each
PROBE = ("a", "a longer probe sentence, so that the traced batch is padded and the mask is part of the graph")
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")


class OnnxTextUnavailable(XmodalError):
    """ONNX Runtime cannot encode this tower's queries (the tower then stays on torch)."""


def weights_hash(module: torch.nn.Module) -> str:
    """A sha256 of the module's parameters and buffers as loaded (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())  # a view: no copy of the weights
    return digest.hexdigest()


def cache_path(key: str) -> Path:
    """Where the exported graph of weights ``key`` lives: ``<weights folder>/onnx/text-<key>-f<FORMAT>.onnx``."""
    return weights_dir() / "onnx" / f"text-{key[:32]}-f{FORMAT}-o{OPSET}.onnx"


class _Traced(torch.nn.Module):
    """The tower's features as a function of positional tensors (what the exporter traces)."""

    def __init__(self, tower: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.tower, self.names = tower, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.tower(dict(zip(self.names, tensors)))


def _names(batch: dict[str, torch.Tensor]) -> tuple[str, ...]:
    return tuple(n for n in INPUT_ORDER if n in batch) + tuple(sorted(set(batch) - set(INPUT_ORDER)))


def export(tower: torch.nn.Module, batch: dict[str, torch.Tensor], path: Path) -> None:
    """Export ``tower(batch)`` (features, dynamic batch and length) to ``path``, atomically."""
    import warnings

    try:
        import onnx  # noqa: F401  (torch's TorchScript exporter needs it)
    except ImportError as exc:
        raise OnnxTextUnavailable(f"exporting needs the onnx package ({exc})") from exc
    names = _names(batch)
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"features": {0: "batch"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on shapes taken as constants (checked by the probe)
            torch.onnx.export(_Traced(tower, names).eval(), tuple(batch[n] for n in names), str(tmp),
                              input_names=list(names), output_names=["features"], dynamic_axes=axes,
                              opset_version=OPSET, dynamo=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _session(path: Path, threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise OnnxTextUnavailable(f"onnxruntime is not installed ({exc})") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # spinning threads hurt a busy machine
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxText:
    """One checked ONNX Runtime session of a tower: ``features(batch)`` equals ``tower(batch)`` within MIN_COSINE."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = tuple(i.name for i in session.get_inputs())

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled features (n, out_dim) of a preprocessed CPU batch."""
        missing = [n for n in self.inputs if n not in batch]
        if missing:
            raise OnnxTextUnavailable(f"the batch lacks {missing}")
        feeds = {n: batch[n].numpy() for n in self.inputs}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def _worst_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(torch.nn.functional.cosine_similarity(a, b, dim=-1).min())


def build(tower: torch.nn.Module, threads: int) -> OnnxText:
    """A checked session for ``tower`` on ``threads`` intra-op threads: the cached graph, else a fresh export (to
    ``cache_path``; to a temporary folder when that is not writable). Raises ``OnnxTextUnavailable``."""
    probe = tower.preprocess(list(PROBE))
    with torch.inference_mode():
        want = tower(probe)
    path = cache_path(weights_hash(tower))
    fresh = False
    with tempfile.TemporaryDirectory(prefix="xmodal-onnx-") as scratch:
        while True:  # a cached graph that fails the probe is exported again, once
            if fresh or not path.is_file():
                try:
                    export(tower, probe, path)
                except OSError as exc:  # a read-only weights folder: export for this process only
                    log.info("cannot cache the ONNX text graph at %s (%s); exporting to a temporary file", path, exc)
                    path = Path(scratch) / path.name
                    export(tower, probe, path)
                fresh = True
            try:
                runner = OnnxText(_session(path, threads))
                worst, error = _worst_cosine(runner.features(probe), want), ""
            except OnnxTextUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001  (a damaged or foreign file: export again, then give up)
                worst, error = -1.0, f": {type(exc).__name__}: {exc}"
            if worst >= MIN_COSINE:
                log.info("text queries through ONNX Runtime (%s, %d thread(s), probe cosine %.7f%s)", path.name,
                         threads, worst, ", exported now" if fresh else "")
                return runner
            if fresh:
                raise OnnxTextUnavailable(f"the ONNX graph disagrees with torch (worst probe cosine {worst:.6f})"
                                          + error)
            fresh = True


class OnnxQueries:
    """A tower's ONNX Runtime sessions by thread count, built on first use; a failure is remembered (torch then)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runners: dict[int, OnnxText | None] = {}
        self.reason: str | None = None  # why queries run on torch, once a build failed

    def runner(self, tower: torch.nn.Module, threads: int) -> OnnxText | None:
        """The session for ``threads`` (built now if needed), or None when ONNX Runtime cannot be used."""
        if threads in self._runners:
            return self._runners[threads]
        with self._lock:  # server encoder threads may ask at once: one export
            if threads not in self._runners:
                if self.reason is not None:
                    self._runners[threads] = None
                else:
                    try:
                        self._runners[threads] = build(tower, threads)
                    except Exception as exc:  # noqa: BLE001  (any failure: torch encodes, the reason is logged)
                        self.reason = f"{type(exc).__name__}: {exc}"
                        log.warning("text queries stay on torch: %s", self.reason)
                        self._runners[threads] = None
            return self._runners[threads]

    def __deepcopy__(self, memo: dict) -> OnnxQueries:
        return OnnxQueries()  # a copied tower may be changed: it builds (and checks) its own session

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


def disabled() -> bool:
    """Whether ``XMODAL_ONNX=0`` (or off/false/no) turns ONNX Runtime query encoding off."""
    return os.environ.get("XMODAL_ONNX", "").strip().lower() in ("0", "off", "false", "no")


__all__ = ["OnnxQueries", "OnnxText", "OnnxTextUnavailable", "build", "cache_path", "disabled", "export",
           "weights_hash"]
