"""The one place where library exceptions become HTTP statuses: JSON bodies with a message, never a traceback."""

from __future__ import annotations

import logging
import sqlite3
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    InvalidIndexConfig,
    InvalidStatus,
    InvalidVectors,
    ItemNotFound,
    UnknownVectorSet,
)

log = logging.getLogger(__name__)

# First match wins: (exception classes, HTTP status). Anything not listed is a 500.
STATUS_MAP: tuple[tuple[tuple[type[BaseException], ...], int], ...] = (
    ((InvalidInput, UnsupportedModality, InvalidModelSource, InvalidStatus, InvalidVectors, InvalidIndexConfig), 400),
    ((ItemNotFound, UnknownVectorSet, CatalogNotFound), 404),
    ((RerankerUnavailable,), 409),
    ((WeightsUnavailable, DeviceUnavailable, PresetNotFound, InvalidPreset), 503),
)


class ApiError(Exception):
    """An error the server itself raises (too large, wrong type, missing media) with its status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def status_for(exc: BaseException) -> int:
    """The HTTP status of a library (or server) exception."""
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
        return 503
    for classes, status in STATUS_MAP:
        if isinstance(exc, classes):
            return status
    return 500


def is_busy(exc: BaseException) -> bool:
    """Whether an SQLite error is a transient lock (worth retrying, or a 503 when retries ran out)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def error_body(status: int, message: str, **extra: object) -> JSONResponse:
    """A JSON error response: ``{"error": {"status", "message", ...}}``."""
    return JSONResponse({"error": {"status": status, "message": message, **extra}}, status_code=status)


def _clean_validation(errors: list[dict]) -> list[dict]:
    """Validation errors without the echoed input or context objects (they may be large or not JSON)."""
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors]


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_for(exc)
    if status >= 500 and status != 503:
        return await _unexpected(request, exc)
    message = exc.message if isinstance(exc, ApiError) else str(exc)
    if status == 503 and isinstance(exc, sqlite3.OperationalError):
        message = "the catalog is busy; try again"
    response = error_body(status, message)
    response.headers.update(exc.headers if isinstance(exc, ApiError) else {})
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    ref = uuid.uuid4().hex[:12]
    log.error("unhandled error %s on %s %s", ref, request.method, request.url.path, exc_info=exc)
    return error_body(500, "internal error (details are in the server log)", ref=ref)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    response = error_body(exc.status_code, str(exc.detail))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_body(422, "invalid request", details=_clean_validation(list(exc.errors())))


def install_error_handlers(app: FastAPI) -> None:
    """Register every exception handler on the app (library errors, server errors, validation, the rest)."""
    app.add_exception_handler(ApiError, _library_error)
    app.add_exception_handler(XmodalError, _library_error)  # every library error, the index's included
    app.add_exception_handler(sqlite3.OperationalError, _library_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
