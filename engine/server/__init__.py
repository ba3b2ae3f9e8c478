"""xmodal serve: the HTTP API and the search page.

The names below load on first use (module ``__getattr__``), so ``xmodal serve --help`` reads ``HEADER_TIMEOUT_S``
without importing the engine (torch).
"""

from __future__ import annotations

from core.lazy import lazy_face

_EXPORTS = {
    "create_app": "engine.server.app", "app_from_env": "engine.server.app", "spec_env": "engine.server.app",
    "EngineSpec": "engine.server.app", "ServerConfig": "engine.server.app", "SPEC_ENV": "engine.server.app",
    "HEADER_TIMEOUT_S": "engine.server.http", "PROTOCOL": "engine.server.http",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
