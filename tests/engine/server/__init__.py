"""Tests of engine.server.app."""
