"""The ``Engine``: one store (catalog + indexes) and one encoder, opened together with an explicit device."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, Iterable

from engine.api.defaults import DEFAULT_PRESET, default_store  # re-exported: engine.api.facade.default_store
from engine.models.devices import resolve_device
from core.errors import RerankerUnavailable
from core.modalities import MODALITIES, modality_of_path
from engine.query.limits import check_search_bounds
from engine.query.threads import query_threads
from engine.models import Encoder, load_encoder
from index import Store, StoreEmpty, open_store
from index.settings import read_settings, write_settings

log = logging.getLogger(__name__)


def scan_modalities(found) -> list[str]:
    """The modalities an ingest of this scan will encode, from file extensions (an unknown one may be anything)."""
    wanted: set[str] = {"text"} if found.records or any(listing.captions for listing in found.listings) else set()
    for task in found.files:
        named = modality_of_path(task.path)
        wanted |= {named} if named else set(MODALITIES)  # content is sniffed later: an unknown suffix may be anything
        if task.captions:
            wanted.add("text")
    return [m for m in dict.fromkeys(("text", *MODALITIES)) if m in wanted]


class Engine:
    """Ingest into and (later) search a store with one preset's encoder."""

    def __init__(self, store: Store, encoder: Encoder, reranker: str | Path | None = None) -> None:
        from engine.rerank import Reranker

        self.store = store
        self.encoder = encoder
        path = reranker or encoder.preset.reranker
        self.reranker = Reranker.load(path) if path else None
        self._searcher = None

    @classmethod
    def open(cls, store: str | Path | None = None, preset: str | Path | None = None, device: str = "cpu",
             random_weights: bool = False, reranker: str | Path | None = None, *, create: bool = True,
             read_only: bool | None = None) -> "Engine":
        """Open a store (a missing one is made only with ``create``: ingest passes True, search/serve/check False);
        the preset defaults to the one the store was last used with; ``reranker`` overrides the preset's attention
        re-ranker directory. A read-only store is searched without writing anything."""
        root = Path(store) if store else default_store()
        dev = resolve_device(device)
        opened = open_store(root, device=str(dev), create=create, read_only=read_only)  # missing/damaged: fail first
        try:
            settings = read_settings(root)
            chosen = str(preset or settings.get("preset") or DEFAULT_PRESET)
            encoder = load_encoder(chosen, device=str(dev), random_weights=random_weights, lazy=True)  # towers on first use
            if settings.get("preset") != chosen and not opened.read_only:
                write_settings(root, {**settings, "preset": chosen})
            engine = cls(opened, encoder, reranker)
            engine.verify_weights()  # vectors made by other weights are refused, never mixed
        except BaseException:
            opened.close()
            raise
        log.info("engine: store %s, preset %s, device %s", root, encoder.preset.name, dev)
        return engine

    def verify_weights(self, modalities: Iterable[str] = (), record: bool = False) -> None:
        """Raise ``WeightsChanged`` when the store's vectors of a modality were made by other weights than the preset
        names now (a retrained head, a re-pointed source); fingerprints are recorded in ``xmodal.json`` for the
        modalities the store holds (an older store's are adopted on open) and, with ``record``, for ``modalities``."""
        from core.errors import WeightsChanged
        from engine.models.fingerprint import modality_fingerprint

        root, preset = self.store.root, self.encoder.preset
        settings = read_settings(root)
        stored = settings.get("weights") if isinstance(settings.get("weights"), dict) else {}
        recorded = dict(stored.get(self.model) or {})
        held = [s.modality for s in self.store.catalog.vector_sets() if s.model == self.model and s.count > 0]
        current = {m: modality_fingerprint(preset, m) for m in dict.fromkeys([*modalities, *held]) if m in preset.towers}
        changed = [m for m in held if recorded.get(m, current[m]) != current[m]]
        if changed:
            raise WeightsChanged(
                f"the {', '.join(changed)} vectors in {root} were made by other weights than preset {self.model} names "
                f"now (retrained or re-pointed); they are not mixed with new ones: search them with the weights that "
                f"made them, or ingest into a new store (--store NEW_DIR)")
        fresh = {m: fp for m, fp in current.items() if recorded.get(m) != fp and (m in held or record)}
        if fresh and not self.store.read_only:
            weights = {**stored, self.model: {**recorded, **fresh}}
            write_settings(root, {**read_settings(root), "weights": weights})

    @property
    def model(self) -> str:
        """The name vectors are stored under: the preset's name."""
        return self.encoder.preset.name

    def ingest(self, paths: Iterable[str | Path], options=None, scan=None,
               on_progress: Callable | None = None):
        """Ingest files, folders, manifests or COCO JSON; returns an ``IngestSummary`` (failures counted, not raised)."""
        from ingest.pipeline import IngestOptions, Pipeline
        from ingest.sink import CatalogSink
        from ingest.sources import ScanOptions, scan_sources

        found = scan_sources(paths, scan or ScanOptions())
        needed = [m for m in scan_modalities(found) if m in self.encoder.supported]
        self.encoder.require(needed)  # every missing tower and head in one error, before any file is read
        options = options or IngestOptions()
        if self.reranker is not None and self.reranker.config.enabled and not options.tokens:
            # candidates need token features to be re-ranked; a re-ranker off everywhere stores none unless asked
            options = dataclasses.replace(options, tokens=True)
        self.verify_weights(needed, record=True)
        pipeline = Pipeline(self.encoder, CatalogSink(self.store, self.model, options.tokens), options, on_progress)
        summary = pipeline.run(found)
        self.store.sync()
        return summary

    def search(self, query, targets=None, k: int = 10, filters=None, depth: int = 100, fusion: str | None = None,
               rerank: bool | None = None, rerank_depth: int | None = None, *, indexes=None, show_all: bool = True):
        """Top ``k`` items for a query (text, image, audio, or weighted ``QueryPart``s) of the ``targets`` kinds.

        ``targets``: the modalities of result items (default: all); every index is searched, so a photo can
        match through its captions. ``indexes``: the raw vector sets to search (default: all), for benchmarks
        of one direction. ``show_all=False`` drops results under the preset's calibrated floor (``weak``).

        ``rerank``: None follows the preset's default (on for directions where held-out data showed a gain);
        True re-ranks the top ``rerank_depth`` fused candidates with the attention re-ranker
        (``RerankerUnavailable`` when the preset has none); False keeps the first-stage order.
        """
        from engine.query import DEFAULT_FUSION, Filters, as_parts, encode_query, plan_search

        check_search_bounds(k, depth, rerank_depth)
        parts = as_parts(query)
        available = self.store_modalities()
        if not available:
            root = self.store.root
            raise StoreEmpty(f"the store at {root} holds nothing for preset {self.model} yet; run "
                             f"`xmodal ingest FILES --store {root}` first")
        planned = plan_search(available, targets, indexes, filters or Filters())
        if planned is None:
            return []
        searched, filters = planned
        if self.wants_rerank(parts, list(filters.modalities) or searched, rerank):  # direction: query -> result kinds
            try:
                found = self.reranked_search(parts, searched, k, filters, depth, fusion, rerank_depth)
                return found if show_all else [r for r in found if not r.weak]
            except RerankerUnavailable as exc:
                if rerank:
                    raise
                log.warning("re-ranking skipped, first-stage order: %s", exc)
        with query_threads():
            vector = encode_query(self.encoder, parts)
        return self.searcher.search(vector, parts[0].modality, searched, k, filters, depth,
                                    fusion or DEFAULT_FUSION, show_all)

    def wants_rerank(self, parts, targets: list[str], rerank: bool | None) -> bool:
        """Whether a search re-ranks: as asked (``RerankerUnavailable`` for True without a re-ranker), else the
        preset's per-direction default where the store holds tokens (a store ingested without them stays first-stage)."""
        from engine.query import heaviest_part
        from engine.rerank import wanted

        use = wanted(self.reranker, heaviest_part(parts).modality, targets, rerank, self.model)
        return use and (rerank is True or self.store.catalog.has_tokens(self.model))

    def reranked_search(self, parts, targets: list[str], k: int = 10, filters=None, depth: int = 100,
                        fusion: str | None = None, rerank_depth: int | None = None, searcher=None):
        """First stage to ``rerank_depth`` (default ``RERANK_DEPTH``), then the attention re-ranker's top ``k``;
        ``searcher`` lets a caller with its own (pinned) first-stage searcher use it."""
        from engine.query import DEFAULT_FUSION, Filters, encode_query_with_tokens
        from engine.rerank import RERANK_DEPTH, TokenBatch
        from engine.query.rerank import rerank as rerank_results

        if self.reranker is None:
            raise RerankerUnavailable(f"preset {self.model!r} has no attention re-ranker")
        searcher = searcher or self.searcher
        with query_threads():
            vector, modality, tokens = encode_query_with_tokens(self.encoder, parts)
        pool = max(k, rerank_depth or RERANK_DEPTH)
        results = searcher.search(vector, modality, targets, pool, filters or Filters(), max(depth, pool),
                                  fusion or DEFAULT_FUSION)
        query_side = TokenBatch.from_arrays([tokens], vector, modality, self.reranker.config.max_tokens)
        with query_threads():
            return rerank_results(self.reranker, self.store.catalog, self.model, results, query_side,
                                  searcher.calibration, k)

    @property
    def searcher(self):
        """The store's first-stage searcher for this preset (made on first use)."""
        if self._searcher is None:
            from engine.query import Searcher

            self._searcher = Searcher(self.store, self.model, self.calibrations)
        return self._searcher

    @property
    def calibrations(self):
        """The preset's fitted score calibrations (``engine.query.Calibrations``), or None when it has none."""
        if not hasattr(self, "_calibrations"):
            from engine.query import load_for_preset

            self._calibrations = load_for_preset(self.encoder.preset)
        return self._calibrations

    def store_modalities(self) -> list[str]:
        """Modalities the store holds vectors of for this preset."""
        return self.searcher.modalities()

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
