"""Catalog SQL for enrichments: representations a model made from a file's content (transcripts, OCR lines).

Each (item, enricher) has one ``enrichments`` row naming the enricher's version and the content hash it read; the
item's representations from that enricher carry ``source = 'enrich:NAME'``, so a file's own representations and
manifests' captions never touch them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from index.schema import now

if TYPE_CHECKING:
    import sqlite_utils


def enrich_source(name: str) -> str:
    """The ``source`` value of the representations enricher ``name`` made."""
    return f"enrich:{name}"


@dataclass(frozen=True)
class EnrichTodo:
    """An ok item an enricher has not read at its current version and content."""

    item_id: int
    uri: str
    modality: str
    sha256: str


@dataclass(frozen=True)
class EnrichRow:
    """One enricher's record for one item: its version, the content it read, how many segments, or why it failed."""

    item_id: int
    name: str
    version: str
    sha256: str | None
    segments: int
    error: str | None


class CatalogEnrichments:
    """The enrichment half of ``Catalog``: what is left to enrich, replacing an item's enrichment, and reading it."""

    db: sqlite_utils.Database

    def enrich_todo(self, name: str, version: str, modalities: Sequence[str]) -> list[EnrichTodo]:
        """Ok items of ``modalities`` without an enrichment by ``name`` at ``version`` of their current content."""
        if not modalities:
            return []
        marks = ", ".join("?" for _ in modalities)
        rows = self.db.execute(
            f"""SELECT i.id, i.uri, i.modality, i.sha256 FROM items i
                LEFT JOIN enrichments e ON e.item_id = i.id AND e.name = ?
                WHERE i.status = 'ok' AND i.modality IN ({marks}) AND i.sha256 IS NOT NULL
                  AND (e.item_id IS NULL OR e.version != ? OR e.sha256 IS NOT i.sha256)
                ORDER BY i.id""",
            (name, *modalities, version)).fetchall()
        return [EnrichTodo(int(i), str(u), str(m), str(s)) for i, u, m, s in rows]

    def replace_enrichment(self, item_id: int, name: str, kind: str, version: str, sha256: str,
                           segments: Sequence[tuple[float | None, float | None, str]], error: str | None = None) -> list[int]:
        """Swap ``item_id``'s representations from enricher ``name`` for ``segments`` ((start, end, text), text
        modality) and record the run; returns the new representation ids, in order (vectors are the caller's)."""
        source = enrich_source(name)
        with self.atomic():  # type: ignore[attr-defined]
            gen = self._write_generation()  # type: ignore[attr-defined]
            old = [r[0] for r in self.db.execute(
                "SELECT id FROM representations WHERE item_id = ? AND source = ?", (item_id, source))]
            self.remove_representation_ids(old)  # type: ignore[attr-defined]
            ids = [self.add_representation(item_id, kind, "text", offset_seconds=start,  # type: ignore[attr-defined]
                                           end_seconds=end, text=text, source=source)
                   for start, end, text in segments]
            self.db.execute(
                """INSERT INTO enrichments (item_id, name, version, sha256, segments, error, done_at, generation)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (item_id, name) DO UPDATE SET version = excluded.version, sha256 = excluded.sha256,
                     segments = excluded.segments, error = excluded.error, done_at = excluded.done_at,
                     generation = excluded.generation""",
                (item_id, name, version, sha256, len(ids), error, now(), gen))
            return ids

    def drop_enrichments(self, item_id: int) -> int:
        """Forget every enrichment of an item (its content changed): representations and records; returns how many
        representations went."""
        with self.atomic():  # type: ignore[attr-defined]
            old = [r[0] for r in self.db.execute(
                "SELECT id FROM representations WHERE item_id = ? AND source LIKE 'enrich:%'", (item_id,))]
            gone = self.remove_representation_ids(old)  # type: ignore[attr-defined]
            if self.db.execute("DELETE FROM enrichments WHERE item_id = ?", (item_id,)).rowcount:
                self._write_generation()  # type: ignore[attr-defined]
            return gone

    def enrichments_of(self, item_id: int) -> list[EnrichRow]:
        """The enrichment records of one item, by enricher name."""
        rows = self.db.execute("SELECT item_id, name, version, sha256, segments, error FROM enrichments "
                               "WHERE item_id = ? ORDER BY name", (item_id,)).fetchall()
        return [EnrichRow(int(i), str(n), str(v), s, int(c), e) for i, n, v, s, c, e in rows]

    def enrichment_counts(self) -> dict[str, tuple[int, int, int]]:
        """Per enricher name: (items read, items with at least one segment, items that failed)."""
        rows = self.db.execute("SELECT name, COUNT(*), SUM(segments > 0), SUM(error IS NOT NULL) FROM enrichments "
                               "GROUP BY name ORDER BY name").fetchall()
        return {str(n): (int(a), int(b or 0), int(c or 0)) for n, a, b, c in rows}
