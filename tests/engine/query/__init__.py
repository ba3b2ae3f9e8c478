"""Tests of engine.query."""
