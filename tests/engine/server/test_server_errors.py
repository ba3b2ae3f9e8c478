"""Library errors become the same HTTP statuses through the one ``XmodalError`` handler (the index's included)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.errors import (
    DeviceUnavailable,
    InvalidInput,
    InvalidModelSource,
    InvalidPreset,
    PresetNotFound,
    RerankerUnavailable,
    UnsupportedModality,
    WeightsUnavailable,
    XmodalError,
)
from index.errors import (
    CatalogNotFound,
    IndexStoreError,
    InvalidIndexConfig,
    InvalidStatus,
    InvalidVectors,
    ItemNotFound,
    StoreEmpty,
    UnknownVectorSet,
)
from engine.server.errors import install_error_handlers, status_for

# The statuses the server gave before the IndexStoreError handler was dropped (it now derives from XmodalError).
EXPECTED = [
    (InvalidInput("bad"), 400), (UnsupportedModality("video"), 400), (InvalidModelSource("x"), 400),
    (InvalidStatus("x"), 400), (InvalidVectors("x"), 400), (InvalidIndexConfig("x"), 400),
    (ItemNotFound("x"), 404), (UnknownVectorSet("x"), 404), (CatalogNotFound("x"), 404),
    (RerankerUnavailable("x"), 409),
    (WeightsUnavailable("preset p", [], "pull it"), 503), (DeviceUnavailable("x"), 503), (PresetNotFound("x"), 503),
    (InvalidPreset("x"), 503),
    (StoreEmpty("x"), 500), (IndexStoreError("x"), 500), (XmodalError("x"), 500),
]


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{i}")
    async def raise_it(i: int) -> None:
        raise EXPECTED[i][0]

    return app


def test_every_index_error_is_a_library_error():
    assert issubclass(IndexStoreError, XmodalError)


@pytest.mark.parametrize("exc, status", EXPECTED, ids=[type(e).__name__ for e, _ in EXPECTED])
def test_status_for(exc, status):
    assert status_for(exc) == status


def test_statuses_over_http_are_json_errors():
    with TestClient(_app(), raise_server_exceptions=False) as client:
        for i, (exc, status) in enumerate(EXPECTED):
            response = client.get(f"/raise/{i}")
            body = response.json()["error"]
            assert (response.status_code, body["status"]) == (status, status), type(exc).__name__
            if status == 500:  # never the library's message or a traceback: a reference to the server log
                assert body["message"] == "internal error (details are in the server log)" and body["ref"]
            else:
                assert body["message"] == str(exc)
