"""The query layer: encode a query, search each target index, fuse by item, filter, hydrate; the one search policy."""

from engine.query.calibrate import Calibrations, PairFit, load_for_preset
from engine.query.fusion import DEFAULT_FUSION, FUSIONS, Calibration, estimate_calibration
from engine.query.inputs import QueryPart, as_parts, encode_query, encode_query_with_tokens, heaviest_part
from engine.query.search import PASSAGE, SNIPPET_CHARS, Filters, Match, Result, Searcher, snippet
from engine.query.targets import plan_search
from engine.query.policy import RERANK_DEPTH, SearchPlan, SearchRequest, Searched, decide, execute
from engine.query.calibrate import HUB_K, calibration_path, fit_pair, hubs_path, pair_key, top_mean
from engine.query.rerank import bounded, corrections, ordering, starts
from engine.query.threads import query_threads
from engine.query.keyword import DEFAULT_MODE, MODES, KeywordScale

__all__ = [
    "Calibrations", "PairFit", "load_for_preset", "plan_search",
    "DEFAULT_FUSION", "FUSIONS", "PASSAGE", "SNIPPET_CHARS", "Calibration", "Filters", "Match", "QueryPart", "Result",
    "Searcher", "as_parts", "encode_query", "encode_query_with_tokens", "estimate_calibration", "heaviest_part",
    "snippet",
]
__all__ += ["bounded", "calibration_path", "corrections", "fit_pair", "pair_key", "query_threads"]
__all__ += ["ordering", "starts"]
__all__ += ["HUB_K", "hubs_path", "top_mean"]
__all__ += ["RERANK_DEPTH", "SearchPlan", "SearchRequest", "Searched", "decide", "execute"]
__all__ += ["DEFAULT_MODE", "MODES", "KeywordScale"]
from engine.query.speech import TRANSCRIPT_WEIGHT, SpeechQueries, speech_queries  # noqa: E402
__all__ += ["TRANSCRIPT_WEIGHT", "SpeechQueries", "speech_queries"]
from engine.query.shard_servers import (  # noqa: E402
    connect_shard_servers, ray_mapper, ray_session, start_shard_servers, stop_shard_servers, wait_ready,
)
from engine.query.sharded import Coordinator, FanOut, ShardedSearch, ShardedSearched, ShardedStore, catalog_rescore  # noqa: E402

__all__ += ["Coordinator", "FanOut", "ShardedSearch", "ShardedSearched", "ShardedStore", "catalog_rescore",
            "connect_shard_servers", "ray_mapper", "ray_session", "start_shard_servers", "stop_shard_servers", "wait_ready"]
