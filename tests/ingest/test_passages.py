"""Long texts as passages (char offsets, caps, notes), small results and items, and text decoding (BOMs, legacy)."""

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.api.facade import Engine
from engine.query import SNIPPET_CHARS, snippet
from engine.server.app import ServerConfig, create_app
from ingest.decode import DecodeSettings, decode_text, modality_of
from ingest.errors import DecodeError, IngestError
from ingest.passages import PassageSettings, split_passages
from ingest.pipeline import IngestOptions
from ingest.work import FileTask, process

ROOT = Path(__file__).resolve().parents[2]


def _numbered(n: int, start: int = 0) -> str:
    """Distinct words, a line break every 9 words, so every passage has its own text."""
    return "".join(f"w{i}" + ("\n" if i % 9 == 8 else " ") for i in range(start, start + n))


# -- passages ------------------------------------------------------------------------------------------


def test_passages_cover_the_text_with_overlap_at_their_offsets():
    text = _numbered(1000)
    found = split_passages(text, PassageSettings(words=100, overlap=20))
    assert not found.truncated and found.stopped_at is None
    words = [p.text.split() for p in found.items]
    assert all(len(w) <= 100 for w in words)
    for p, w in zip(found.items, words):
        assert text[p.offset:].startswith(w[0])  # the offset is where the passage starts in the text
    for a, b in zip(words, words[1:]):
        assert a[-20:] == b[:20]  # 20 words shared with the next passage
    covered = {x for w in words for x in w}
    assert covered == set(text.split())


def test_passage_cap_stops_early_and_says_where():
    text = _numbered(5000)
    found = split_passages(text, PassageSettings(words=50, overlap=10, max_passages=4))
    assert len(found.items) == 4 and found.truncated
    last = found.items[-1].text.split()[-1]
    assert text[found.stopped_at:].split()[0] == f"w{int(last[1:]) + 1}"  # the first word no passage holds


def test_passages_stay_bounded_without_spaces_or_with_huge_whitespace():
    settings = PassageSettings(words=120, overlap=24, max_chars=1000)
    for text in ("x" * 200_000, "雨" * 50_000, "a" + " " * 1_000_000 + "b " * 10):
        found = split_passages(text, settings)
        assert found.items and all(len(p.text) <= settings.max_chars for p in found.items)
        assert found.items[0].text.split()[0] == text.split()[0][:40]


def test_passage_settings_refuse_nonsense():
    for bad in ({"words": 0}, {"overlap": 120}, {"overlap": -1}, {"max_passages": 0}, {"max_chars": 3}):
        with pytest.raises(IngestError):
            PassageSettings(**bad)


def test_snippet_is_short_one_line_and_cut_at_a_word():
    long = "word " * 10_000
    s = snippet(long)
    assert len(s) <= SNIPPET_CHARS and s.endswith("…") and "  " not in s
    assert snippet("two\n\nlines") == "two lines" and snippet(None) is None


# -- decoding ------------------------------------------------------------------------------------------

SAMPLE = "Café au lait, naïve résumé — 雨の音 😀\nsecond line"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_text_with_a_bom_decodes(encoding):
    data = SAMPLE.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    assert decode_text(data, "x.txt") == SAMPLE


def test_utf16_without_bom_is_recognised():
    assert decode_text(SAMPLE.encode("utf-16-le"), "x.txt") == SAMPLE
    assert decode_text(SAMPLE.encode("utf-16-be"), "x.txt") == SAMPLE


def test_legacy_latin1_is_read_and_a_few_bad_bytes_are_replaced():
    assert decode_text("café résumé naïve".encode("latin-1"), "x.txt") == "café résumé naïve"
    assert decode_text("smart “quotes”".encode("cp1252"), "x.txt") == "smart “quotes”"
    raw = SAMPLE.encode()
    damaged = raw[:8] + b"\xff" + raw[8:]
    assert decode_text(damaged, "x.txt") == raw[:8].decode() + "\ufffd" + raw[8:].decode()


@pytest.mark.parametrize("data, reason", [
    (bytes(range(256)) * 4, "binary content"),
    (b"ab\x01\x02\x03\x04cd" * 10, "binary content"),
    ("Привет, это текст в кодировке Windows-1251.".encode("cp1251"), "not UTF-8"),
    ("日本語のテキストです。".encode("shift_jis") * 5, "not UTF-8"),
    (b"  \n\t", "empty"),
])
def test_what_is_not_text_fails_with_its_reason(data, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_text(data, "x.txt")


def test_utf16_file_is_text_not_mp3(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(SAMPLE.encode("utf-16"))  # FF FE ...: an MPEG frame sync to a sniffer
    assert modality_of(path, path.read_bytes()[:16]) == "text"
    st = path.stat()
    out = process(FileTask(str(path), str(path), st.st_size, st.st_mtime), {}, DecodeSettings())
    assert out.error is None and out.modality == "text"
    assert [(r.kind, r.text) for r in out.reps] == [("text", SAMPLE)]


# -- ingest, search and responses ----------------------------------------------------------------------

LONG_WORDS = 3000
OLD_CHARS = 400_000  # an item stored whole, as stores before passages hold long texts


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("passages")
    (root / "old").mkdir()
    (root / "docs").mkdir()
    (root / "old" / "old.txt").write_text(("the old whole text " * (OLD_CHARS // 19 + 1))[:OLD_CHARS])
    long_text = _numbered(LONG_WORDS)
    (root / "docs" / "long.txt").write_text(long_text)
    (root / "docs" / "short.txt").write_text("a short note about a red bicycle")
    whole = DecodeSettings(passages=PassageSettings(words=10**6, overlap=0, max_chars=10**7))
    with Engine.open(root / "store", "tiny-random") as engine:
        old = engine.ingest([root / "old"], IngestOptions(workers=0, decode=whole))
        new = engine.ingest([root / "docs"], IngestOptions(workers=0))
        assert old.failed == 0 and new.failed == 0 and not new.notes
        yield engine, root, long_text


def _item(engine, path):
    return engine.store.catalog.item_by_uri(str(path))


def test_long_text_is_stored_as_passages_at_char_offsets(store):
    engine, root, long_text = store
    reps = engine.store.catalog.representations_of(_item(engine, root / "docs" / "long.txt").id)
    assert len(reps) > 1 and {r.kind for r in reps} == {"passage"}
    assert all(len(r.text) <= PassageSettings.max_chars for r in reps)
    for r in reps:
        assert long_text[int(r.offset_seconds):].split()[:3] == r.text.split()[:3]
    short = engine.store.catalog.representations_of(_item(engine, root / "docs" / "short.txt").id)
    assert [(r.kind, r.text) for r in short] == [("text", "a short note about a red bicycle")]
    old = engine.store.catalog.representations_of(_item(engine, root / "old" / "old.txt").id)
    assert [r.kind for r in old] == ["text"] and len(old[0].text) == OLD_CHARS


def test_a_passage_is_found_with_its_offset_and_a_snippet(store):
    engine, root, long_text = store
    reps = engine.store.catalog.representations_of(_item(engine, root / "docs" / "long.txt").id)
    target = reps[len(reps) // 2]
    results = engine.search(target.text, ["text"], k=3)
    top = results[0]
    assert top.uri == str(root / "docs" / "long.txt") and top.first_stage == pytest.approx(1.0, abs=1e-4)
    assert top.match.kind == "passage" and top.match.representation_id == target.id
    assert top.match.char_offset == int(target.offset_seconds) and top.match.offset_seconds is None
    assert len(top.match.text) <= SNIPPET_CHARS and target.text.startswith(top.match.text.rstrip("…"))


def test_results_stay_small_even_for_whole_text_items(store):
    engine, root, _ = store
    old_id = _item(engine, root / "old" / "old.txt").id
    results = engine.search("the old whole text", ["text"], k=10)
    assert old_id in {r.item_id for r in results}
    body = json.dumps([asdict(r) for r in results], default=str)  # what `xmodal search --json` prints
    assert len(body.encode()) < 1500 * len(results)


def test_cli_search_json_is_small(store, capsys):
    from engine.cli import main

    engine, root, _ = store
    code = main(["search", "the old whole text", "--store", str(root / "store"), "--targets", "text", "--json"])
    out = capsys.readouterr().out
    assert code == 0 and str(root / "old" / "old.txt") in out
    assert len(out.encode()) < 20_000


def test_server_search_and_items_stay_small(store):
    _, root, _ = store
    app = create_app(root / "store", ServerConfig(allowed_hosts=("testserver",)))
    with TestClient(app) as client:
        found = client.post("/search", json={"text": "the old whole text", "targets": ["text"], "k": 10})
        assert found.status_code == 200 and len(found.content) < 20_000
        by_name = {r["name"]: r for r in found.json()["results"]}
        assert len(by_name["old.txt"]["match"]["text"]) <= SNIPPET_CHARS
        old = client.get(f"/items/{by_name['old.txt']['item_id']}")
        assert old.status_code == 200 and len(old.content) < 5_000
        long_hit = next(r for r in client.post("/search", json={"text": "w1500 w1501", "targets": ["text"], "k": 10})
                        .json()["results"] if r["name"] == "long.txt")
        long_item = client.get(f"/items/{long_hit['item_id']}").json()
        reps = long_item["representations"]
        assert reps and long_item["representations_total"] >= len(reps)
        assert all(r["char_offset"] is not None and r["offset_seconds"] is None for r in reps)
        assert len(json.dumps(long_item).encode()) < 60_000


def test_the_passage_cap_is_a_note_in_the_summary(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "book.txt").write_text(_numbered(2000))
    capped = DecodeSettings(passages=PassageSettings(words=50, overlap=10, max_passages=3))
    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        summary = engine.ingest([tmp_path / "docs"], IngestOptions(workers=0, decode=capped))
        item = engine.store.catalog.item_by_uri(str(tmp_path / "docs" / "book.txt"))
        assert summary.failed == 0 and item.status == "ok"
        assert len(engine.store.catalog.representations_of(item.id)) == 3
    assert [u for u, _ in summary.notes] == [str(tmp_path / "docs" / "book.txt")]
    assert "indexed up to character" in summary.notes[0][1]


def test_long_manifest_records_become_passages_too(tmp_path):
    records = tmp_path / "notes.jsonl"
    records.write_text("\n".join(json.dumps(r) for r in [
        {"id": "long", "text": _numbered(300)}, {"id": "short", "text": "a short note"},
        {"id": "capped", "text": _numbered(3000)}]) + "\n")
    settings = DecodeSettings(passages=PassageSettings(words=100, overlap=20, max_passages=5))
    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        summary = engine.ingest([records], IngestOptions(workers=0, batch_size=4, decode=settings))
        catalog = engine.store.catalog
        reps = {uri: catalog.representations_of(catalog.item_by_uri(f"{records}#{uri}").id)
                for uri in ("long", "short", "capped")}
        assert summary.failed == 0 and summary.added == 3
        assert [(r.kind, r.text) for r in reps["short"]] == [("text", "a short note")]
        assert {r.kind for r in reps["long"]} == {"passage"} and len(reps["long"]) == 4  # 300 words, 80 new each
        assert len(reps["capped"]) == 5 and [u for u, _ in summary.notes] == [f"{records}#capped"]
        top = engine.search(reps["long"][2].text, ["text"], k=1)[0]
        assert top.uri == f"{records}#long" and top.match.char_offset == int(reps["long"][2].offset_seconds)


def test_settings_pass_through_replace():
    settings = replace(DecodeSettings(), passages=PassageSettings(max_passages=7))
    assert settings.passages.max_passages == 7


# -- a 50 MB text: bounded time and memory, in a child with hard limits --------------------------------

_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (__LIMIT__, __LIMIT__))
    def peak_mb():
        # VmHWM is this process image's own peak; ru_maxrss survives exec and would report a big parent's RSS
        status = open("/proc/self/status").read()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    import engine
    from engine.api.facade import Engine
    from ingest.decode import DecodeSettings
    from ingest.passages import PassageSettings
    from ingest.pipeline import IngestOptions
    start = time.perf_counter()
    capped = DecodeSettings(passages=PassageSettings(max_passages=MAX_PASSAGES))  # the encoder's time is not the point
    with Engine.open(sys.argv[1] + "/store", "tiny-random") as eng:
        summary = eng.ingest([sys.argv[1] + "/docs"], IngestOptions(workers=0, decode=capped))
        reps = sum(len(eng.store.catalog.representations_of(i.id)) for i in eng.store.catalog.items(status="ok"))
        hits = eng.search("w100 w101 w102", ["text"], k=3)
    print(json.dumps({"failed": summary.failed, "notes": summary.notes, "reps": reps, "seconds": time.perf_counter() - start,
                      "peak_rss_mb": peak_mb(),
                      "result_bytes": len(json.dumps([str(h) for h in hits]))}))
""")


@pytest.mark.slow
def test_a_50_mb_text_is_ingested_in_bounded_time_and_memory(tmp_path):
    (tmp_path / "docs").mkdir()
    block = _numbered(100_000).encode()
    with open(tmp_path / "docs" / "big.txt", "wb") as fh:
        for _ in range((50 << 20) // len(block) + 1):
            fh.write(block)
    limit = 6 << 30  # address space, not RSS: torch maps far more than it touches
    script = _CHILD.replace("__LIMIT__", str(limit)).replace("MAX_PASSAGES", "50")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["failed"] == 0 and report["reps"] == 50
    assert len(report["notes"]) == 1 and "indexed up to character" in report["notes"][0][1]
    # the process with torch and the model loaded peaks at 1.1-1.7 GB here; the whole-file read of e38e491 took 9.3 GB
    assert report["peak_rss_mb"] < 2500 and report["result_bytes"] < 5000
