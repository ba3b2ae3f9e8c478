"""Tests of engine.train."""
