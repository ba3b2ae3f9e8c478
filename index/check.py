"""``check``: do the catalog and the index files agree (ids, dimension, unit norms, generation), and are the
re-ranker's tokens whole? Optionally repair."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from index.check_bulk import DAMAGE_KINDS, bulk_counts, bulk_findings, staged_findings
from index.connect import REPAIR_CATALOG
from index.errors import CatalogCorrupt, CatalogLostWrites, IndexCorrupt
from index.keyword import keyword_problems, rebuild_keywords
from index.persist import backend_of, index_paths, leftover_temp_files, load_index, sidecars
from index.repair import CATALOG_NAME, catalog_integrity, repair_catalog, repair_indexes_folder, repair_settings
from index.settings import read_settings
from index.store import Store
from index.validate import bad_rows
from index.verify import compare_vectors

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

    @property
    def damaged(self) -> bool:
        """An unrepaired problem lost vectors that were the only copy (a bulk store's Parquet files): exit 5."""
        return any(p.kind in DAMAGE_KINDS and not p.repaired for p in self.problems)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {**asdict(self), "ok": self.ok, "damaged": self.damaged}


def _problem(finding) -> Problem:
    return Problem(finding.model, finding.modality, finding.kind, finding.detail, finding.severity, finding.repaired)


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


def _index_problems(store: Store, model: str, modality: str, dim: int, generation: int,
                    seen: dict) -> list[Problem]:
    """Disagreements between the index file and the catalog, down to every stored vector (counts go into ``seen``)."""
    data_path, sidecar = index_paths(store.root, model, modality, store.config.backend)
    if not data_path.exists() and not sidecar.exists():
        return [Problem(model, modality, "index-missing", f"{data_path.name} not built yet", "warning")]
    try:
        index, meta = load_index(store.root, model, modality)
    except IndexCorrupt as exc:
        return [Problem(model, modality, "index-corrupt", str(exc))]
    if index.dim != dim:
        return [Problem(model, modality, "index-dimension", f"index dimension {index.dim}, catalog {dim}")]
    if meta.catalog_id != store.catalog.catalog_id:
        return [Problem(model, modality, "index-foreign", f"index built from catalog {meta.catalog_id}, not this one")]
    if meta.generation > generation:
        return [Problem(model, modality, "index-ahead", f"index at generation {meta.generation}, catalog at {generation}: "
                        "the catalog lost writes (restored from a backup, or catalog.db-wal deleted after a crash); "
                        "search rebuilds the index from the catalog, --repair does it now")]
    if store.catalog.lineage(meta.generation) != meta.lineage:
        return [Problem(model, modality, "index-history", f"index built at generation {meta.generation} of another "
                        "history of this catalog (catalog restored from a backup, then written again); search "
                        "rebuilds it from the catalog, --repair does it now")]
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
    comparison = compare_vectors(index, store.catalog.iter_vectors(model, modality))
    seen.update(compared=comparison.compared, exact=comparison.exact)
    if comparison.mismatched.size:
        problems.append(Problem(model, modality, "index-vectors", f"{comparison.mismatched.size} stored vector(s) "
                                f"differ from the catalog's: ids {comparison.mismatched[:5].tolist()}"))
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


def _open_checked(root: Path) -> Store:
    """Open the store for checking; a catalog SQLite finds damaged is ``CatalogCorrupt`` (exit 5)."""
    read_settings(root)  # SettingsCorrupt when unreadable
    store = Store(root, create=False)
    verdict = catalog_integrity(store.catalog.db.conn)
    if verdict != "ok":
        store.close()
        raise CatalogCorrupt(f"{root / CATALOG_NAME} is damaged (SQLite: {verdict}); {REPAIR_CATALOG}")
    return store


def _drop_index_files(metas: list[dict]) -> None:
    for meta in metas:
        sidecar = Path(meta["path"])
        sidecar.with_suffix(f".{backend_of(meta)}").unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)


def _open_repairing(root: Path) -> tuple[Store | None, list[Problem]]:
    """Fix what keeps the store from opening (each fix reported), then open it; None when no catalog is left."""
    fixed = [Problem("", "", kind, said, repaired=True) for kind, said in
             (("indexes-not-folder", repair_indexes_folder(root)), ("settings-corrupt", repair_settings(root))) if said]
    for _ in range(3):
        try:
            return _open_checked(root), fixed
        except CatalogCorrupt as exc:
            what = str(exc).split("; `xmodal check")[0]
            fixed.append(Problem("", "", "catalog-corrupt", f"{what}: {repair_catalog(root)}", repaired=True))
            if not (root / CATALOG_NAME).exists():
                return None, fixed
        except CatalogLostWrites as exc:
            orphans = sidecars(root)
            _drop_index_files(orphans)
            fixed.append(Problem("", "", "catalog-lost-writes", str(exc).split("; `xmodal check")[0] +
                                 f": removed {len(orphans)} stale index file(s); run `xmodal ingest` again", repaired=True))
    return _open_checked(root), fixed


def check_store(root: str | Path, *, repair: bool = False) -> CheckReport:
    """Compare every vector set's index with the catalog, vector by vector; with ``repair``, fix what disagrees.

    A store that cannot be opened (damaged catalog, ``indexes`` not a folder, unreadable settings, lost writes) raises
    its ``StoreDamaged`` error without ``repair``; with it, the damage is repaired first and reported.
    """
    root = Path(root)
    if repair:
        store, fixed = _open_repairing(root)
    else:
        store, fixed = _open_checked(root), []
    if store is None:
        return CheckReport(str(root), 0, problems=fixed)
    try:
        report = CheckReport(str(root), store.catalog.generation, problems=fixed)
        report.problems.extend(_problem(f) for f in bulk_findings(store.catalog, repair=repair,
                                                                   stale_seconds=STALE_TEMP_SECONDS))
        report.problems.extend(_problem(f) for f in staged_findings(store.catalog, root))
        in_parquet = bulk_counts(store.catalog)
        for vs in store.catalog.vector_sets():
            seen: dict = {}
            problems, bad_ids = _catalog_vector_problems(store, vs.model, vs.modality, vs.dim)
            problems += [p for p in _index_problems(store, vs.model, vs.modality, vs.dim, report.generation, seen)
                         if not (p.kind == "index-missing" and in_parquet.get((vs.model, vs.modality)))]  # shards serve it
            if repair and problems:
                problems = _repair(store, vs.model, vs.modality, problems, bad_ids)
            report.problems.extend(problems)
            report.problems.extend(_token_problems(store, vs.model, vs.modality, repair))
            bulk = in_parquet.get((vs.model, vs.modality), 0)
            report.vector_sets.append({"model": vs.model, "modality": vs.modality, "dim": vs.dim,
                                       "vectors": vs.count + bulk, **({"in_parquet": bulk} if bulk else {}), **seen})
        keyword = keyword_problems(store.catalog)  # FTS5's own integrity check of the keyword tables
        if repair and keyword:
            with store.catalog.atomic():
                rebuild_keywords(store.catalog)
        report.problems.extend(Problem("", "", "keyword-index", f"{d}; --repair rebuilds it from the catalog",
                                       repaired=repair) for d in keyword)
        orphans = store.orphan_indexes()
        if repair:
            _drop_index_files(orphans)
        report.problems.extend(Problem(str(m.get("model")), str(m.get("modality")), "index-orphan",
                                       f"{Path(m['path']).name}: no such vector set in the catalog (removed by --repair)",
                                       "warning", repaired=repair) for m in orphans)
        for tmp in leftover_temp_files(store.root):
            old = time.time() - tmp.stat().st_mtime > STALE_TEMP_SECONDS
            if repair and old:
                tmp.unlink(missing_ok=True)
            report.problems.append(Problem("", "", "temp-file", f"leftover {tmp.name} (ignored on open)", "warning",
                                           repaired=repair and old))
        return report
    finally:
        store.close()
