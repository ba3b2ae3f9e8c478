"""``check``: do the catalog and the index files agree (ids, dimension, unit norms, generation), and are the
re-ranker's tokens whole? Optionally repair."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from index.errors import IndexCorrupt
from index.persist import index_paths, leftover_temp_files, load_index
from index.store import Store
from index.validate import bad_rows

STALE_TEMP_SECONDS = 600  # a temp file younger than this may belong to a write in progress


@dataclass(frozen=True)
class Problem:
    """One disagreement; ``error`` ones make the check fail unless repaired, ``warning`` ones never do."""

    model: str
    modality: str
    kind: str
    detail: str
    severity: str = "error"
    repaired: bool = False


@dataclass(frozen=True)
class CheckReport:
    """Everything ``check_store`` found, per vector set and overall."""

    store: str
    generation: int
    vector_sets: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No unrepaired error."""
        return not any(p.severity == "error" and not p.repaired for p in self.problems)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {**asdict(self), "ok": self.ok}


def _catalog_vector_problems(store: Store, model: str, modality: str, dim: int) -> tuple[list[Problem], list[int]]:
    """Vectors in the catalog that break decision 1; returns problems and the offending representation ids."""
    db = store.catalog.db
    bad_len = [r[0] for r in db.execute(
        "SELECT representation_id FROM vectors WHERE model = ? AND modality = ? AND (length(vector) != ? OR dim != ?)",
        (model, modality, dim * 4, dim))]
    bad: list[int] = list(bad_len)
    problems = [Problem(model, modality, "catalog-dimension", f"{len(bad_len)} vector(s) not of dimension {dim}: "
                        f"representations {bad_len[:5]}")] if bad_len else []
    cur = db.execute("SELECT representation_id, vector FROM vectors WHERE model = ? AND modality = ? AND length(vector) = ?",
                     (model, modality, dim * 4))
    nonfinite, offnorm = [], []
    while rows := cur.fetchmany(65536):
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        x = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
        bad_finite, bad_norm = bad_rows(x)
        nonfinite += ids[bad_finite].tolist()
        offnorm += ids[bad_norm].tolist()
    if nonfinite:
        problems.append(Problem(model, modality, "catalog-nonfinite", f"{len(nonfinite)} vector(s) with NaN/inf: {nonfinite[:5]}"))
    if offnorm:
        problems.append(Problem(model, modality, "catalog-norm", f"{len(offnorm)} vector(s) not unit norm: {offnorm[:5]}"))
    return problems, bad + nonfinite + offnorm


def _index_problems(store: Store, model: str, modality: str, dim: int, generation: int) -> list[Problem]:
    """Disagreements between the index file and the catalog."""
    faiss_path, _ = index_paths(store.root, model, modality)
    if not faiss_path.exists() and not faiss_path.with_suffix(".json").exists():
        return [Problem(model, modality, "index-missing", f"{faiss_path.name} not built yet", "warning")]
    try:
        index, meta = load_index(store.root, model, modality)
    except IndexCorrupt as exc:
        return [Problem(model, modality, "index-corrupt", str(exc))]
    if index.dim != dim:
        return [Problem(model, modality, "index-dimension", f"index dimension {index.dim}, catalog {dim}")]
    if meta.catalog_id != store.catalog.catalog_id:
        return [Problem(model, modality, "index-foreign", f"index built from catalog {meta.catalog_id}, not this one")]
    if meta.generation > generation:
        return [Problem(model, modality, "index-ahead", f"index at generation {meta.generation}, catalog at {generation}")]
    if store.catalog.changes_since(model, modality, meta.generation).removed.size:
        return [Problem(model, modality, "index-stale", f"index at generation {meta.generation}, catalog at "
                        f"{generation}; caught up on open", "warning")]
    stored = index.ids()
    expected = store.catalog.vector_ids(model, modality)
    uniq, counts = np.unique(stored, return_counts=True)
    problems = []
    if (counts > 1).any():
        problems.append(Problem(model, modality, "index-duplicates", f"{int((counts > 1).sum())} id(s) stored twice: "
                                f"{uniq[counts > 1][:5].tolist()}"))
    missing, extra = np.setdiff1d(expected, uniq), np.setdiff1d(uniq, expected)
    if missing.size:
        problems.append(Problem(model, modality, "index-missing-ids", f"{missing.size} catalog vector(s) not in the "
                                f"index: {missing[:5].tolist()}"))
    if extra.size:
        problems.append(Problem(model, modality, "index-extra-ids", f"{extra.size} id(s) in the index but not in the "
                                f"catalog: {extra[:5].tolist()}"))
    return problems


def _token_problems(store: Store, model: str, modality: str, repair: bool) -> list[Problem]:
    """Re-ranker tokens of this vector set: blobs of the wrong size, mixed widths, partial coverage."""
    db = store.catalog.db
    joined = ("FROM tokens t JOIN vectors v ON v.representation_id = t.representation_id AND v.model = t.model "
              "WHERE t.model = ? AND v.modality = ?")
    bad = [r[0] for r in db.execute(f"SELECT t.representation_id {joined} AND (t.n < 1 OR length(t.data) != t.n * t.dim * 2)",
                                    (model, modality))]
    widths = dict(db.execute(f"SELECT t.dim, COUNT(*) {joined} GROUP BY t.dim ORDER BY COUNT(*) DESC", (model, modality)))
    problems = []
    if bad:
        problems.append(Problem(model, modality, "tokens-corrupt", f"{len(bad)} token blob(s) not n x dim float16: "
                                f"representations {bad[:5]}"))
    if len(widths) > 1:
        minority = list(widths)[1:]
        marks = ",".join("?" * len(minority))
        bad += [r[0] for r in db.execute(f"SELECT t.representation_id {joined} AND t.dim IN ({marks})",
                                        (model, modality, *minority))]
        problems.append(Problem(model, modality, "tokens-dimension", f"token widths {widths} (width: count); the "
                                "re-ranker expects one"))
    if repair and bad:
        with store.catalog.atomic():
            db.conn.executemany("DELETE FROM tokens WHERE model = ? AND representation_id = ?",
                                [(model, int(i)) for i in bad])
        problems = [Problem(**{**asdict(p), "detail": p.detail + "; removed, `xmodal ingest --tokens` re-encodes them",
                               "repaired": True}) for p in problems]
    with_tokens = db.execute(f"SELECT COUNT(*) {joined}", (model, modality)).fetchone()[0]
    total = db.execute("SELECT COUNT(*) FROM vectors WHERE model = ? AND modality = ?", (model, modality)).fetchone()[0]
    if 0 < with_tokens < total:
        problems.append(Problem(model, modality, "tokens-partial", f"{total - with_tokens} of {total} representation(s) "
                                "have no re-ranker tokens; re-ranking refuses until `xmodal ingest --tokens`", "warning"))
    return problems


def _repair(store: Store, model: str, modality: str, problems: list[Problem], bad_ids: list[int]) -> list[Problem]:
    """Fix what can be fixed: drop invalid catalog vectors (item marked failed), then rebuild or catch up the index."""
    if bad_ids:
        with store.catalog.atomic():
            for hit in store.catalog.hydrate(bad_ids).values():
                store.catalog.mark_failed(hit.item_id, f"invalid {model} vector removed by check --repair; re-ingest")
    store.forget(model, modality)
    if any(p.kind.startswith("index-") and p.kind not in ("index-stale", "index-missing") for p in problems):
        store.rebuild(model, modality, reason="check --repair")
    else:
        store.sync_one(model, modality)
    return [Problem(**{**asdict(p), "repaired": True}) for p in problems]


def check_store(root: str | Path, *, repair: bool = False) -> CheckReport:
    """Compare every vector set's index with the catalog; with ``repair``, rebuild or catch up what disagrees."""
    store = Store(root, create=False)
    try:
        report = CheckReport(str(root), store.catalog.generation)
        for vs in store.catalog.vector_sets():
            problems, bad_ids = _catalog_vector_problems(store, vs.model, vs.modality, vs.dim)
            problems += _index_problems(store, vs.model, vs.modality, vs.dim, report.generation)
            if repair and problems:
                problems = _repair(store, vs.model, vs.modality, problems, bad_ids)
            report.problems.extend(problems)
            report.problems.extend(_token_problems(store, vs.model, vs.modality, repair))
            report.vector_sets.append({"model": vs.model, "modality": vs.modality, "dim": vs.dim, "vectors": vs.count})
        for tmp in leftover_temp_files(store.root):
            old = time.time() - tmp.stat().st_mtime > STALE_TEMP_SECONDS
            if repair and old:
                tmp.unlink(missing_ok=True)
            report.problems.append(Problem("", "", "temp-file", f"leftover {tmp.name} (ignored on open)", "warning",
                                           repaired=repair and old))
        return report
    finally:
        store.close()
