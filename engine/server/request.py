"""``POST /search`` requests: the schema, its limits (every list and dict bounded, repeats removed), JSON and multipart.

Whatever a request says, the work it asks of the engine thread is bounded: at most one ANN search per
modality, ``k``, ``depth`` and ``rerank_depth`` capped, texts and filters short. A JSON body is read up to
``MAX_JSON_BYTES`` and a multipart form is parsed with caps on its fields and their sizes, so an oversized
body is refused while it streams in, not after.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from fastapi import Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, WithJsonSchema

from core.modalities import MODALITIES
from engine.query import DEFAULT_FUSION, Filters, QueryPart, SearchRequest
from engine.query.fusion import fusion_names
from engine.query.keyword import DEFAULT_MODE, MODES
from engine.server.errors import ApiError
from engine.server.media import sniff_upload


def _registered(name: str) -> str:
    if name not in MODALITIES:  # read at validation time: a modality registered later is accepted
        raise ValueError(f"should be one of {', '.join(MODALITIES)}")  # never echoing the input
    return name


def _fusion(name: str) -> str:
    if name not in fusion_names():  # read at validation time: a method registered later is accepted
        raise ValueError(f"should be one of {', '.join(fusion_names())}")  # never echoing the input
    return name


FusionName = Annotated[str, AfterValidator(_fusion),
                       WithJsonSchema({"type": "string", "description": "a registered fusion method"})]
Modality = Annotated[str, AfterValidator(_registered),
                     WithJsonSchema({"type": "string", "description": "a registered modality (core.modalities)"})]
T = TypeVar("T")

MAX_LIST = 16  # raw entries of a list field, before repeats are removed (only 3 distinct values exist)
MAX_METADATA_KEYS = 32
MAX_JSON_BYTES = 256 << 10  # a JSON search is well under 64 KB at the longest text and fullest filters
MAX_FORM_FIELDS = 16
MAX_FORM_PART_BYTES = 64 << 10  # each non-file multipart field


def _distinct(values: list[T]) -> list[T]:
    return list(dict.fromkeys(values))


Modalities = Annotated[list[Modality], Field(max_length=MAX_LIST), AfterValidator(_distinct)]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]
MetaValue = Annotated[str, StringConstraints(max_length=1000)] | int | float | bool | None


class FiltersIn(BaseModel):
    """Which items may be returned (all optional)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    modalities: Modalities = Field([], description=f"item modalities (at most {MAX_LIST} entries; repeats ignored)")
    uri_glob: str | None = Field(None, max_length=1000)
    mtime_after: float | None = None
    mtime_before: float | None = None
    metadata: dict[MetaKey, MetaValue] = Field({}, max_length=MAX_METADATA_KEYS,
                                               description=f"equalities on metadata (at most {MAX_METADATA_KEYS})")


class SearchIn(BaseModel):
    """A search: text (JSON) or an uploaded file plus optional text (multipart), targets, k, filters."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    text: str | None = Field(None, max_length=2000, description="text query (required in a JSON request)")
    text_weight: float = Field(1.0, ge=-100.0, le=100.0,
                               description="weight of the text when mixed with an uploaded file")
    targets: Modalities = Field([], description="kinds of result item (default: all); an item matches through any "
                                f"of its representations (a photo through its captions); at most {MAX_LIST} entries, "
                                "repeats ignored")
    indexes: Modalities = Field([], description="raw choice of the vector indexes searched (default: all), for "
                                "benchmarks of one direction")
    show_all: bool = Field(False, description="also return results under the preset's calibrated floor (each "
                           "result says whether it is weak)")
    k: int = Field(10, ge=1, le=200)
    depth: int = Field(100, ge=1, le=10_000, description="ANN candidates per target modality")
    fusion: FusionName = DEFAULT_FUSION
    filters: FiltersIn = FiltersIn()
    rerank: bool | None = Field(None, description="attention re-ranker: null follows the preset's per-direction "
                                "default, true forces it (409 when the preset or the store's tokens cannot), "
                                "false skips it")
    rerank_depth: int | None = Field(None, ge=1, le=1000, description="fused candidates re-ranked (default 50)")
    mode: Literal[MODES] = Field(DEFAULT_MODE, description="hybrid: vector hits fused with keyword hits (words in "  # type: ignore[valid-type]
                                 "captions, notes, transcripts, OCR text, file names, metadata); vector or keyword alone")

    def job(self, upload: tuple[str, bytes] | None) -> SearchRequest:
        """The engine's search request for this request body (and the uploaded query file, if any)."""
        parts = [QueryPart(upload[0], upload[1])] if upload else []
        if self.text is not None and self.text.strip():
            parts.append(QueryPart("text", self.text, self.text_weight if parts else 1.0))
        if not parts:
            raise ApiError(400, "give a non-empty text query or upload an image or audio file")
        f = self.filters
        filters = Filters(tuple(f.modalities), f.uri_glob, f.mtime_after, f.mtime_before, dict(f.metadata))
        return SearchRequest(tuple(parts), tuple(self.targets), self.k, filters, self.depth, self.fusion, self.rerank,
                             self.rerank_depth, tuple(self.indexes), self.show_all, self.mode)


SEARCH_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SearchIn"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary", "description": "image or audio query (sniffed)"},
                "text": {"type": "string"}, "text_weight": {"type": "number"},
                "targets": {"type": "string", "description": "comma-separated: image,text,audio (the field may "
                            "also be repeated)"},
                "indexes": {"type": "string", "description": "comma-separated raw vector indexes (benchmarks)"},
                "show_all": {"type": "boolean"},
                "k": {"type": "integer"}, "depth": {"type": "integer"}, "fusion": {"type": "string"},
                "rerank": {"type": "boolean"}, "rerank_depth": {"type": "integer"}, "mode": {"type": "string"},
                "filters": {"type": "string", "description": "JSON object, as in the JSON body"},
            }}},
        },
    },
}


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"a JSON search body is at most {limit // 1024} KB", headers={"Connection": "close"})


async def parse_json(request: Request) -> SearchIn:
    """A JSON search body, read up to ``MAX_JSON_BYTES`` (413 past it, without reading the rest)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise _too_large(MAX_JSON_BYTES)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise _too_large(MAX_JSON_BYTES)
        chunks.append(chunk)
    try:
        return SearchIn.model_validate_json(b"".join(chunks))
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ApiError(400, "malformed JSON body") from None
        raise invalid(exc) from None


async def parse_form(request: Request) -> tuple[SearchIn, tuple[str, bytes] | None]:
    """A multipart search: at most one file, ``MAX_FORM_FIELDS`` fields of ``MAX_FORM_PART_BYTES`` each."""
    form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART_BYTES)
    fields: dict[str, Any] = {}
    targets: list[str] = []
    upload = None
    for key, value in form.multi_items():
        if hasattr(value, "read"):
            if key != "file":
                raise ApiError(400, f"unexpected file field {key!r} (use 'file')")
            data = await value.read()
            if data:
                upload = (sniff_upload(data), data)
        elif key in ("targets", "indexes"):  # comma-separated, and repeatable (checkboxes in an HTML form)
            listed = fields.setdefault(key, targets if key == "targets" else [])
            listed += [t for t in str(value).replace(" ", "").split(",") if t]
        elif key in fields:
            raise ApiError(400, f"the field {key!r} is given more than once")
        elif key == "filters":
            fields["filters"] = _form_filters(str(value))
        else:
            fields[key] = value
    try:
        return SearchIn.model_validate(fields), upload
    except ValidationError as exc:
        raise invalid(exc) from None


def _form_filters(value: str) -> FiltersIn:
    if not value.strip():
        return FiltersIn()
    try:
        return FiltersIn.model_validate_json(value)  # pydantic's parser: bounded nesting, no RecursionError
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ApiError(400, "the 'filters' field is not valid JSON") from None
        raise invalid(exc, "filters") from None


def invalid(exc: ValidationError, prefix: str | None = None) -> ApiError:
    """A 422 naming each invalid field (never echoing the input)."""
    def where(loc: tuple) -> str:
        return ".".join(map(str, ((prefix,) if prefix else ()) + tuple(loc))) or "body"
    details = "; ".join(f"{where(e['loc'])}: {e['msg']}" for e in exc.errors()[:10])
    return ApiError(422, f"invalid request: {details}")
