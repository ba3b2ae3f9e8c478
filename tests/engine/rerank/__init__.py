"""Tests of engine.rerank."""
