"""Ingest pipeline: sources, decoding, batched encoding into the catalog and indexes."""

__all__: list[str] = []
