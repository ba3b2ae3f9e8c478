"""JSON shapes of the API: results, items, and store statistics (run on the engine thread)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.modalities import modality as registered
from engine.api.facade import Engine
from engine.query import PASSAGE, Result, snippet
from index.records import Item, Representation


ITEM_REPRESENTATIONS = 50  # a long text has up to a thousand passages: /items/{id} lists the first ones


def _links(item_id: int, modality: str, uri: str, at: float | None = None) -> dict[str, str | None]:
    has_file = registered(modality).binary and "#" not in uri  # a text record has no file to serve
    moment = f"&t={at:.2f}" if modality == "video" and at is not None else ""  # a video's thumb: the matched frame
    return {"media_url": f"/media/{item_id}" if has_file else None,
            "thumb_url": f"/media/{item_id}?thumb=1{moment}" if has_file and modality in ("image", "video") else None}


def _name(uri: str) -> str:
    path, _, record = uri.partition("#")
    return f"{Path(path).name}#{record}" if record else Path(path).name


def result_json(result: Result) -> dict[str, Any]:
    """One search result as JSON, with links to its media and thumbnail."""
    return {"item_id": result.item_id, "uri": result.uri, "name": _name(result.uri), "modality": result.modality,
            "score": result.score, "first_stage": result.first_stage, "rerank_score": result.rerank_score,
            "probability": result.probability, "weak": result.weak, "rerank_note": result.rerank_note,
            "match": asdict(result.match),
            "metadata": dict(result.metadata),
            **_links(result.item_id, result.modality, result.uri, result.match.offset_seconds)}


def _representation_json(rep: Representation) -> dict[str, Any]:
    """A representation with a snippet of its text; a passage's offset is in characters (``char_offset``)."""
    out = {**asdict(rep), "text": snippet(rep.text), "char_offset": None}
    if rep.kind == PASSAGE and rep.offset_seconds is not None:
        out["char_offset"], out["offset_seconds"] = int(rep.offset_seconds), None
    return out


def item_json(item: Item, representations: list[Representation]) -> dict[str, Any]:
    """One catalog item with its first ``ITEM_REPRESENTATIONS`` representations (texts as snippets), as JSON."""
    shown = [_representation_json(r) for r in representations[:ITEM_REPRESENTATIONS]]
    return {**asdict(item), "name": _name(item.uri), "representations": shown,
            "representations_total": len(representations), **_links(item.id, item.modality, item.uri)}


def stats(engine: Engine) -> dict[str, Any]:
    """Items per modality and status, the preset, and each of its vector sets' index type and size."""
    catalog = engine.store.catalog
    counts: dict[str, dict[str, int]] = {}
    for modality, status, n in catalog.item_counts():
        counts.setdefault(modality, {})[status] = int(n)
    indexes = {}
    for vs in catalog.vector_sets():
        if vs.model != engine.model or vs.count == 0:
            continue
        index = engine.store.index(vs.model, vs.modality)
        indexes[vs.modality] = {"type": index.factory, "vectors": index.ntotal, "dim": vs.dim}
    return {"preset": engine.model, "dim": engine.encoder.dim, "generation": catalog.generation,
            "items": {m: c.get("ok", 0) for m, c in counts.items()}, "items_by_status": counts, "indexes": indexes}
