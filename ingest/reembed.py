"""Re-embed a store's vector sets in place after the weights that made them changed (``xmodal ingest --reembed``).

Text representations are encoded again from their stored text; image and audio ones (of images, audio files, video
frames and soundtracks) from their files, read again and matched to the stored representations by kind, modality and
offset. New vectors are staged beside the old ones (``Catalog.stage_vectors``, committed per batch, invisible to
search) and each set is swapped in one transaction at the end, stamped with its new fingerprint: a run killed
halfway leaves the old set whole, and the next run resumes from what was staged. An item whose file is gone, changed
or decodes to other representations cannot be re-embedded: it is marked failed in that same transaction (its
vectors leave with it) and a later ingest of its folder adds it again.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from index import Store
from ingest.decode import DecodeSettings
from ingest.encoding import Encoding
from ingest.files import uri_path
from ingest.work import FileTask, RepPayload, process, run_handler

log = logging.getLogger(__name__)


@dataclass
class ReembedSummary:
    """What a re-embed did: vectors encoded now and found staged by an earlier run per modality, items that could not
    be re-read ((uri, reason)), vectors swapped in."""

    encoded: dict[str, int] = field(default_factory=dict)
    resumed: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    swapped: int = 0
    seconds: float = 0.0


def _key(kind: str, modality: str, offset: float | None) -> tuple:
    return kind, modality, None if offset is None else round(float(offset), 3)


class _Stager:
    """Per-modality buffers of (representation id, payload) embedded and staged ``size`` at a time."""

    def __init__(self, store: Store, model: str, weights: Mapping[str, str], encoding: Encoding, size: int,
                 summary: ReembedSummary) -> None:
        self.catalog, self.model, self.weights, self.encoding = store.catalog, model, weights, encoding
        self.size, self.summary = max(1, size), summary
        self.buffers: dict[str, list[tuple[int, RepPayload]]] = defaultdict(list)

    def add(self, rep_id: int, payload: RepPayload) -> None:
        buffer = self.buffers[payload.modality]
        buffer.append((rep_id, payload))
        if len(buffer) >= self.size:
            self.flush(payload.modality)

    def flush(self, modality: str | None = None) -> None:
        for m in [modality] if modality else list(self.buffers):
            entries, self.buffers[m] = self.buffers[m], []
            if entries:
                vectors, tokens = self.encoding.embed_reps(m, [p for _, p in entries])
                self._stage(m, [i for i, _ in entries], vectors, tokens)

    def _stage(self, modality: str, ids: list[int], vectors: np.ndarray, tokens: list) -> None:
        self.catalog.stage_vectors(self.model, modality, self.weights[modality], ids, vectors,
                                   tokens if self.encoding.tokens else None)
        self.summary.encoded[modality] = self.summary.encoded.get(modality, 0) + len(ids)


def _reread(store: Store, item_id: int, wanted: list, pre: dict, decode: DecodeSettings) -> tuple[list, str | None]:
    """(representation id, payload) for each wanted stored representation of an item, read from its file, or why not."""
    item = store.catalog.item(item_id)
    task = FileTask(uri_path(item.uri), item.uri, item.size or 0, item.mtime or 0.0)
    decoded = run_handler(process, task, pre, decode)
    if decoded.error:
        return [], decoded.error
    if item.sha256 and decoded.sha256 != item.sha256:
        return [], "the file changed since it was ingested"
    found = {_key(p.kind, p.modality, p.offset): p for p in decoded.reps}
    out = []
    for hit in wanted:
        payload = found.get(_key(hit.kind, hit.modality, hit.offset_seconds))
        if payload is None:
            return [], (f"its {hit.modality} at {hit.offset_seconds} s did not decode again (other decode settings "
                        "than when it was ingested?)")
        out.append((hit.representation_id, payload))
    return out, None


def reembed(store: Store, model: str, weights: Mapping[str, str], encoding: Encoding,
            decode: DecodeSettings = DecodeSettings(), batch_size: int = 32) -> ReembedSummary:
    """Re-embed ``model``'s vector sets of the modalities in ``weights`` (modality -> fingerprint of the weights
    ``encoding`` embeds with) and swap each in whole; resumable (see the module docstring)."""
    start, summary, catalog = time.perf_counter(), ReembedSummary(), store.catalog
    stager = _Stager(store, model, weights, encoding, batch_size, summary)
    media: dict[int, list] = defaultdict(list)
    for modality, fp in weights.items():
        catalog.clear_staged(model, modality, keep=fp)  # staged by a re-embed for weights since replaced
        summary.resumed[modality] = len(catalog.staged_ids(model, modality, fp))
        todo = catalog.unstaged(model, modality, fp)
        if modality == "text":
            for at in range(0, len(todo), stager.size):
                rows = list(catalog.representation_texts(todo[at : at + stager.size]))
                vectors, tokens = encoding.embed_texts([t for _, t in rows], stager.size)
                stager._stage("text", [i for i, _ in rows], vectors, tokens)
        else:
            for hit in catalog.hydrate(todo).values():
                media[hit.item_id].append(hit)
    pre = {m: encoding.embedder.preprocessor(m) for m in weights if m != "text"}
    failed: dict[int, str] = {}
    for item_id in sorted(media):
        pairs, reason = _reread(store, item_id, media[item_id], pre, decode)
        if reason:
            failed[item_id] = reason
            summary.failures.append((media[item_id][0].uri, f"not re-embedded with the new weights: {reason}"))
        for rep_id, payload in pairs:
            stager.add(rep_id, payload)
    stager.flush()
    with catalog.atomic():  # the switch: failures out, every changed set replaced whole, at once
        for item_id, reason in failed.items():
            catalog.mark_failed(item_id, f"not re-embedded with the new weights: {reason}")
        for modality, fp in weights.items():
            summary.swapped += catalog.swap_staged(model, modality, fp)
    summary.seconds = time.perf_counter() - start
    log.info("re-embedded %s: %d vectors swapped in, %d items failed", model, summary.swapped, len(failed))
    return summary
