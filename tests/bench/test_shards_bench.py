"""bench.shards without Ray, at a toy size: one index and shards of the same type, figures and JSON written."""

from __future__ import annotations

import json

from bench.shards import main


def test_bench_shards_writes_its_figures(tmp_path, capsys):
    out = tmp_path / "shards.json"
    report = main(["--n", "3000", "--dim", "32", "--shards", "2", "--queries", "20", "--no-ray",
                   "--factory", "IVF16,Flat", "--json", str(out)])
    assert json.loads(out.read_text())["n"] == 3000 and "ray" not in report
    one, sharded = report["one_index"], report["sharded"]
    assert one["factory"] == sharded["factory"] == "IVF16,Flat" and sharded["vectors"] == [1500, 1500]
    # trained once on the same sample: the shards probe the one index's lists, so recall is the same
    assert one["params"] == sharded["params"] and one["recall_at_10"] == sharded["in_process_recall_at_10"] >= 0.9
    assert len(report["per_shard"]) == 2 and all(s["p50_ms"] > 0 for s in report["per_shard"])
    assert "2 shards IVF16,Flat" in capsys.readouterr().out
