"""The ``Engine``: one store (catalog + indexes) and one encoder, opened together with an explicit device."""

from __future__ import annotations

import dataclasses
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

from core.errors import WeightsChanged
from core.modalities import MODALITIES, modality, modality_of_path
from engine.api.defaults import DEFAULT_PRESET, default_store  # re-exported: engine.api.facade.default_store
from engine.models import Encoder, load_encoder
from engine.models.devices import resolve_device
from engine.models.enrichers import EnrichOptions, check_enrichers, make_enrichers
from engine.models.fingerprint import modality_fingerprint
from engine.query import DEFAULT_FUSION, Calibrations, Filters, Result, Searcher, as_parts, load_for_preset
from engine.query import DEFAULT_MODE
from engine.query.hydration import CachedStore
from engine.query.limits import check_search_bounds
from engine.query.policy import SearchPlan, SearchRequest, Searched, decide, execute
from engine.query.speech import SpeechQueries, speech_queries
from engine.rerank import Reranker
from index import Store, StoreEmpty, open_store
from index.bulk import bulk_sets
from index.catalog_weights import BULK_REEMBED
from index.settings import read_settings, write_settings
from ingest.pipeline import IngestOptions, Pipeline
from ingest.reembed import ReembedSummary
from ingest.sources import ScanOptions, scan_sources

log = logging.getLogger(__name__)


def scan_modalities(found) -> list[str]:
    """The modalities an ingest of this scan will encode, from file extensions (an unknown one may be anything)."""
    wanted: set[str] = {"text"} if found.records or any(listing.captions for listing in found.listings) else set()
    for task in found.files:
        named = modality_of_path(task.path)
        kinds = [named] if named else MODALITIES  # content is sniffed later: an unknown suffix may be anything
        wanted |= {t for kind in kinds for t in modality(kind).towers()}  # a video: its frames' and sound's towers
        if task.captions:
            wanted.add("text")
    return [m for m in dict.fromkeys(("text", *MODALITIES)) if m in wanted]


class Engine:
    """Ingest into and (later) search a store with one preset's encoder."""

    def __init__(self, store: Store, encoder: Encoder, reranker: str | Path | None = None) -> None:
        self.store = store
        self.encoder = encoder
        path = reranker or encoder.preset.reranker
        self.reranker = Reranker.load(path) if path else None
        self._searcher: Searcher | None = None
        self.speech: SpeechQueries | None = None  # made on the first audio query of a transcribed store
        self.changed: list[str] = []  # modalities whose stored vectors other weights made (searching refuses them)
        self.fingerprints: dict[str, str] = {}  # modality -> fingerprint of this preset's weights, as checked so far

    @classmethod
    def open(cls, store: str | Path | None = None, preset: str | Path | None = None, device: str = "cpu",
             random_weights: bool = False, reranker: str | Path | None = None, *, create: bool = True,
             read_only: bool | None = None, reembed: bool = False) -> "Engine":
        """Open a store (a missing one is made only with ``create``: ingest passes True, search/serve/check False);
        the preset defaults to the one the store was last used with; ``reranker`` overrides the preset's attention
        re-ranker directory. A read-only store is searched without writing anything. Vectors made by other weights
        than the preset's raise ``WeightsChanged``, unless ``reembed`` (then ``ingest(..., reembed=True)`` re-embeds
        them; searching refuses until it has)."""
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
            engine.verify_weights(allow_changed=reembed)  # vectors made by other weights are refused, never mixed
        except BaseException:
            opened.close()
            raise
        log.info("engine: store %s, preset %s, device %s", root, encoder.preset.name, dev)
        return engine

    def verify_weights(self, modalities: Iterable[str] = (), record: bool = False,
                       allow_changed: bool = False) -> list[str]:
        """Raise ``WeightsChanged`` when the store's vectors of a modality were made by other weights than the preset
        names now (a retrained head, a re-pointed source); with ``allow_changed``, return those modalities instead
        (searching refuses until ``reembed``). What made a set is read from the catalog (``vector_sets.weights``,
        stamped by every write); ``xmodal.json`` ``weights`` is its mirror, read only for a set stored before the
        catalog kept it (then stamped, once). ``record`` mirrors ``modalities``' current fingerprints too."""
        root, preset, catalog = self.store.root, self.encoder.preset, self.store.catalog
        settings = read_settings(root)
        stored = settings.get("weights") if isinstance(settings.get("weights"), dict) else {}
        mirror = dict(stored.get(self.model) or {})
        sets = {s.modality: s for s in catalog.vector_sets() if s.model == self.model}
        bulk = {m for _, m, n in bulk_sets(catalog, self.model) if n}  # a bulk set's vectors are in Parquet files
        held = [m for m, s in sets.items() if (s.count > 0 or m in bulk) and m in preset.towers]
        current = {m: modality_fingerprint(preset, m) for m in dict.fromkeys([*modalities, *held]) if m in preset.towers}
        made_by = {m: sets[m].weights or mirror.get(m) or current[m] for m in held}  # unknown: adopted as current
        changed = [m for m in held if made_by[m] != current[m]]
        self.changed = changed
        self.fingerprints = {**self.fingerprints, **{m: current[m] for m in held if m not in changed}}
        if changed and not allow_changed:
            raise WeightsChanged(self._changed_message(changed))
        if self.store.read_only:
            return changed
        for m in held:
            if sets[m].weights is None:  # a set stored before the catalog kept fingerprints: stamped once
                catalog.set_vector_weights(self.model, m, made_by[m])
        fresh = {m: fp for m, fp in current.items() if m not in changed and mirror.get(m) != fp and (m in held or record)}
        fresh.update({m: made_by[m] for m in changed if mirror.get(m) != made_by[m]})
        if fresh:
            weights = {**stored, self.model: {**mirror, **fresh}}
            write_settings(root, {**read_settings(root), "weights": weights})
        return changed

    def _changed_message(self, changed: list[str]) -> str:
        root = self.store.root
        if {m for _, m, n in bulk_sets(self.store.catalog, self.model) if n} & set(changed):
            return (f"the {', '.join(changed)} vectors in {root} were made by other weights than preset {self.model} "
                    f"names now (retrained or re-pointed); they are not mixed with new ones. {BULK_REEMBED}; or "
                    f"search them with the weights that made them")
        return (f"the {', '.join(changed)} vectors in {root} were made by other weights than preset {self.model} "
                f"names now (retrained or re-pointed); they are not mixed with new ones: re-embed them in place with "
                f"`xmodal ingest PATHS --reembed --store {root}` (Engine.ingest(..., reembed=True)), search them with "
                f"the weights that made them, or ingest into a new store (--store NEW_DIR)")

    def reembed(self, options=None) -> "ReembedSummary":
        """Re-embed in place the vector sets whose weights changed (``ingest.reembed``: files read again, texts encoded
        from the stored text, each set swapped in whole; resumable), then record the new fingerprints."""
        from ingest.encoding import Encoding
        from ingest.reembed import reembed

        options = options or IngestOptions()
        changed = self.verify_weights(allow_changed=True)
        if not changed:
            return ReembedSummary()
        bulk = [m for _, m, n in bulk_sets(self.store.catalog, self.model) if n and m in changed]
        if bulk:
            raise WeightsChanged(f"the {', '.join(bulk)} vectors in {self.store.root} are a bulk set: {BULK_REEMBED}")
        self.encoder.require(changed)
        tokens = options.tokens or self.store.catalog.has_tokens(self.model)
        weights = {m: modality_fingerprint(self.encoder.preset, m) for m in changed}
        summary = reembed(self.store, self.model, weights, Encoding(self.encoder, options.precision, tokens),
                          options.decode, options.batch_size)
        self.verify_weights(changed, record=True)
        self.store.sync()
        return summary

    @property
    def model(self) -> str:
        """The name vectors are stored under: the preset's name."""
        return self.encoder.preset.name

    def enrichment(self, enrich: Iterable[str] | None = None, remember: bool = True) -> tuple[str, ...]:
        """The enrichers to run: ``enrich`` when given (and then remembered in the store's ``xmodal.json``), else the
        ones the store was last ingested with (none for a new store)."""
        settings = read_settings(self.store.root)
        if enrich is None:
            saved = settings.get("enrich")
            return check_enrichers(saved if isinstance(saved, list) else [])
        chosen = check_enrichers(enrich)
        if remember and settings.get("enrich") != list(chosen) and not self.store.read_only:
            write_settings(self.store.root, {**read_settings(self.store.root), "enrich": list(chosen)})
        return chosen

    def enrich_models(self, models: Mapping[str, str] | None = None, remember: bool = True) -> dict[str, str]:
        """The model id or path per enricher name the store uses (``xmodal.json`` ``enrich_models``), with ``models``
        merged in and remembered when given (a later ingest and speech queries then use the same model)."""
        settings = read_settings(self.store.root)
        saved = settings.get("enrich_models")
        chosen = {str(k): str(v) for k, v in (saved.items() if isinstance(saved, dict) else ())}
        if not remember:
            return {**chosen, **{str(k): str(v) for k, v in (models or {}).items()}}
        if models and {**chosen, **models} != chosen and not self.store.read_only:
            chosen = {**chosen, **{str(k): str(v) for k, v in models.items()}}
            write_settings(self.store.root, {**settings, "enrich_models": chosen})
        return chosen

    def speech_gate(self, gate: bool | None = None, remember: bool = True) -> bool:
        """Whether transcripts pass the speech gate (``xmodal.json`` ``speech_gate``; on unless the store was ingested
        with it off): ``gate`` when given (and then remembered: later ingests and speech queries follow it)."""
        settings = read_settings(self.store.root)
        if gate is None:
            return settings.get("speech_gate") is not False
        if remember and settings.get("speech_gate", True) != gate and not self.store.read_only:
            write_settings(self.store.root, {**settings, "speech_gate": bool(gate)})
            self.speech = None  # speech queries are transcribed as the store's items now are
        return bool(gate)

    def _pipeline(self, options, on_progress: Callable | None, enrich: Iterable[str] | None,
                  enrich_options: EnrichOptions | None, modalities: Iterable[str]) -> Pipeline:
        options = options or IngestOptions()
        if self.reranker is not None and self.reranker.config.enabled and not options.tokens:
            # candidates need token features to be re-ranked; a re-ranker off everywhere stores none unless asked
            options = dataclasses.replace(options, tokens=True)
        names = self.enrichment(enrich, remember=False)
        needed = list(dict.fromkeys([*modalities, *(["text"] if names else [])]))
        self.encoder.require(needed)  # every missing tower and head in one error, before any file is read
        self.verify_weights(needed, record=True)
        options_ = enrich_options or EnrichOptions(device=str(self.encoder.device), speech_gate=self.speech_gate())
        models = self.enrich_models(options_.models, remember=False)
        enrichers = make_enrichers(names, dataclasses.replace(options_, models=models))
        self.enrichment(enrich)  # remembered once every enricher (and its model) loaded: a bad choice is not kept
        self.enrich_models(options_.models)
        self.speech_gate(options_.speech_gate)
        from ingest.bulk import make_sink

        sink = make_sink(self.store, self.model, options)
        # every vector written (to the catalog or a bulk store's Parquet files) is stamped with the weights that made it
        sink.weights = {m: modality_fingerprint(self.encoder.preset, m) for m in self.encoder.supported}
        return Pipeline(self.encoder, sink, options, on_progress, enrichers)

    def ingest(self, paths: Iterable[str | Path], options=None, scan=None,
               on_progress: Callable | None = None, enrich: Iterable[str] | None = None,
               enrich_options: EnrichOptions | None = None, reembed: bool = False):
        """Ingest files, folders, manifests or COCO JSON, then run the store's enrichers (``enrich``: which, e.g.
        ``("transcribe", "ocr")``; None keeps the store's choice); returns an ``IngestSummary`` (failures counted).
        ``reembed``: first re-embed in place the stored vectors that other weights made (``Engine.reembed``); the
        summary's ``reembedded`` counts them and items that could not be read again are among its failures."""
        done = self.reembed(options) if reembed else None
        found = scan_sources(paths, scan or ScanOptions())
        needed = [m for m in scan_modalities(found) if m in self.encoder.supported]
        pipeline = self._pipeline(options, on_progress, enrich, enrich_options, needed)
        summary = pipeline.run(found)
        self.store.sync()
        if done is not None:  # items the re-embed could not read again and this ingest did not add back
            summary.reembedded = done.swapped
            listed = {uri for uri, _ in summary.failures}
            still = [(uri, why) for uri, why in done.failures if uri not in listed
                     and getattr(self.store.catalog.item_by_uri(uri), "status", None) == "failed"]
            summary.failures[:0] = still
            summary.failed += len(still)
        return summary

    def enrich(self, enrich: Iterable[str] | None = None, options=None,
               enrich_options: EnrichOptions | None = None):
        """Run only the enrichers over the items already stored (``xmodal ingest --enrich-only``)."""
        summary = self._pipeline(options, None, enrich, enrich_options, ()).enrich_only()
        self.store.sync()
        return summary

    def search(self, query, targets=None, k: int = 10, filters=None, depth: int = 100, fusion: str | None = None,
               rerank: bool | None = None, rerank_depth: int | None = None, *, indexes=None,
               show_all: bool = True, mode: str | None = None) -> list[Result]:
        """Top ``k`` items for a query (text, image, audio, or weighted ``QueryPart``s) of the ``targets`` kinds.

        ``targets``: the modalities of result items (default: all); every index is searched, so a photo can
        match through its captions. ``indexes``: the raw vector sets to search (default: all), for benchmarks
        of one direction. ``show_all=False`` drops results under the preset's calibrated floor (``weak``).
        ``mode``: "hybrid" (default: vector and keyword hits fused), "vector" or "keyword".

        ``rerank``: None follows the preset's default (on for directions where held-out data showed a gain);
        True re-ranks the top ``rerank_depth`` fused candidates with the attention re-ranker
        (``RerankerUnavailable`` when the preset has none); False keeps the first-stage order.
        """
        check_search_bounds(k, depth, rerank_depth)
        request = SearchRequest(tuple(as_parts(query)), tuple(targets or ()), k, filters or Filters(), depth,
                                fusion or DEFAULT_FUSION, rerank, rerank_depth, tuple(indexes or ()), show_all,
                                mode or DEFAULT_MODE)
        return self.run_search(request).results

    def plan(self, request: SearchRequest) -> SearchPlan:
        """What ``request`` will run and why (``engine.query.policy``); ``StoreEmpty`` when the store holds nothing
        for this preset yet."""
        available = self.store_modalities()
        if not available:
            root = self.store.root
            raise StoreEmpty(f"the store at {root} holds nothing for preset {self.model} yet; run "
                             f"`xmodal ingest FILES --store {root}` first")
        return self._decide(request, available)

    def run_search(self, request: SearchRequest) -> Searched:
        """Run a search as the library does: bounds checked, ``StoreEmpty`` on an empty store, the query encoded on
        one torch thread; a default re-rank that cannot run (candidates without tokens) logs why and falls back."""
        check_search_bounds(request.k, request.depth, request.rerank_depth)
        request = self.transcribed(request)
        searched = execute(self.plan(request), request, self.encoder, self.searcher, self.reranker)
        if searched.skipped:
            log.warning("re-ranking skipped, first-stage order: %s", searched.skipped)
        return searched

    def search_encoded(self, request: SearchRequest, vector: np.ndarray | None = None) -> Searched:
        """Run one search of a server's batch (inside ``pinned``): ``vector`` is the query's first-stage vector when
        already encoded (None: encoded here, on the calling thread's torch threads); an empty store gives no results."""
        request = self.transcribed(request) if vector is None else request
        plan = self._decide(request, self.store_modalities())
        return execute(plan, request, self.encoder, self.searcher, self.reranker, vector, threads=None)

    def transcribed(self, request: SearchRequest) -> SearchRequest:
        """``request`` with its audio parts' transcripts added as text parts when the store is transcribed
        (``engine.query.speech``; the speech model loads on the first audio query)."""
        if not any(p.modality == "audio" for p in request.parts) or "transcribe" not in self.enrichment():
            return request
        if self.speech is None:
            self.speech = speech_queries(str(self.encoder.device), model=self.enrich_models().get("transcribe"),
                                         gate=self.speech_gate())
        return self.speech.expand(request)

    def _decide(self, request: SearchRequest, available: list[str]) -> SearchPlan:
        stamped = self.store.catalog.weights_of(self.model)  # another process may have re-embedded since open
        stale = [m for m, fp in self.fingerprints.items() if stamped.get(m) not in (None, fp)]
        if self.changed or stale:
            raise WeightsChanged(self._changed_message(self.changed or stale))
        return decide(request, available, self.reranker, self.model, lambda: self.store.catalog.has_tokens(self.model))

    @contextmanager
    def pinned(self, generation: int) -> Iterator[None]:
        """Searches inside read the catalog as of ``generation`` (the caller holds one snapshot): the store's
        modalities, background calibrations and hydrated hits are reused while the catalog stays at that state."""
        searcher = self.searcher
        searcher.pinned_generation = generation
        try:
            searcher.store.catalog.pin(generation)
            yield
        finally:
            searcher.pinned_generation = None
            searcher.store.catalog.unpin()

    def hydration_counts(self) -> tuple[int, int]:
        """Hits answered from those kept for a pinned catalog state, and hits read from the catalog, so far."""
        catalog = self.searcher.store.catalog
        return catalog.hits, catalog.misses

    @property
    def searcher(self) -> Searcher:
        """The store's first-stage searcher for this preset (made on first use); it hydrates hits through a cache that
        only a ``pinned`` catalog state uses."""
        if self._searcher is None:
            self._searcher = Searcher(CachedStore(self.store), self.model, self.calibrations)  # type: ignore[arg-type]
        return self._searcher

    @property
    def calibrations(self) -> Calibrations | None:
        """The preset's fitted score calibrations (``engine.query.Calibrations``), or None when it has none."""
        if not hasattr(self, "_calibrations"):
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
