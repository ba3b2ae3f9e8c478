import json

import pytest

from ingest import (
    CaptionedMedia, ManifestError, is_uri, parse_coco_captions, parse_flickr_captions, read_manifest, resolve_media,
)
from ingest.errors import IngestError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


COCO = {
    "images": [{"id": 2, "file_name": "b.jpg"}, {"id": 1, "file_name": "a.jpg"}, {"id": 3, "file_name": "c.jpg"}],
    "annotations": [
        {"image_id": 1, "id": 10, "caption": "A cat. "},
        {"image_id": 2, "id": 11, "caption": "a dog"},
        {"image_id": 1, "id": 12, "caption": "a cat on a mat"},
    ],
}


def test_coco_keeps_order_and_uncaptioned_images(tmp_path):
    rows = parse_coco_captions(write(tmp_path, "c.json", json.dumps(COCO)))
    assert rows == [
        CaptionedMedia("b.jpg", ("a dog",), "2"),
        CaptionedMedia("a.jpg", ("A cat.", "a cat on a mat"), "1"),
        CaptionedMedia("c.jpg", (), "3"),
    ]


@pytest.mark.parametrize(
    "text, line",
    [
        ('{"images": [\n{"id": 1, "file_name": "a.jpg"},\n oops]}', 3),
        ('{"annotations": []}', None),
        ('{"images": [{"id": 1}]}', None),
        ('{"images": [{"id": 1, "file_name": "a"}], "annotations": [{"image_id": 9, "caption": "x"}]}', None),
        ('{"images": [{"id": 1, "file_name": "a"}], "annotations": [{"image_id": 1}]}', None),
        ('{"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}]}', None),
    ],
)
def test_coco_malformed(tmp_path, text, line):
    path = write(tmp_path, "bad.json", text)
    with pytest.raises(ManifestError) as info:
        parse_coco_captions(path)
    assert info.value.path == str(path) and info.value.line == line
    assert isinstance(info.value, ValueError) and isinstance(info.value, IngestError)


def test_flickr_token_format(tmp_path):
    text = "1000_a.jpg#0\tA child climbs .\n1000_a.jpg#1\tA girl, in pink .\n\n2000_b.jpg#0\tTwo dogs\n"
    rows = parse_flickr_captions(write(tmp_path, "Flickr8k.token.txt", text))
    assert rows == [CaptionedMedia("1000_a.jpg", ("A child climbs .", "A girl, in pink .")), CaptionedMedia("2000_b.jpg", ("Two dogs",))]


def test_flickr_csv_format_with_commas_and_quotes(tmp_path):
    text = 'image,caption\n1000_a.jpg,A child , in pink , climbs .\n1000_a.jpg,"A girl, smiling"\n2000_b.jpg,He said "hi", then left\n'
    rows = parse_flickr_captions(write(tmp_path, "captions.txt", "\ufeff" + text))
    assert rows == [
        CaptionedMedia("1000_a.jpg", ("A child , in pink , climbs .", "A girl, smiling")),
        CaptionedMedia("2000_b.jpg", ('He said "hi", then left',)),
    ]


def test_flickr30k_pipe_format(tmp_path):
    text = "image_name| comment_number| comment\n1.jpg| 0| Two men | in a boat\n1.jpg| 1| A boat\n"
    assert parse_flickr_captions(write(tmp_path, "results.csv", text)) == [CaptionedMedia("1.jpg", ("Two men | in a boat", "A boat"))]


@pytest.mark.parametrize(
    "text, line",
    [
        ("a.jpg#0\tok\nb.jpg#0 no tab here\n", 2),
        ("image,caption\na.jpg,ok\nb.jpg\n", 3),
        ("image,caption\na.jpg,ok\nb.jpg,   \n", 3),
        ("\nsomething else entirely\n", 2),
    ],
)
def test_flickr_malformed(tmp_path, text, line):
    with pytest.raises(ManifestError) as info:
        parse_flickr_captions(write(tmp_path, "captions.txt", text))
    assert info.value.line == line


def test_flickr_empty_file(tmp_path):
    assert parse_flickr_captions(write(tmp_path, "captions.txt", "\n")) == []


def test_csv_manifest_rows(tmp_path):
    text = "path,caption,caption_2,label,id\nimg/a.jpg,a cat,a kitten,cat,7\ns3://bucket/b.wav,,,dog,\n,only text,,,\n"
    rows = read_manifest(write(tmp_path, "m.csv", text))
    assert [(r.line, r.media, r.texts, r.id) for r in rows] == [
        (2, "img/a.jpg", ("a cat", "a kitten"), "7"),
        (3, "s3://bucket/b.wav", (), None),
        (4, None, ("only text",), None),
    ]
    assert rows[0].metadata == {"label": "cat"} and rows[2].metadata == {}


def test_csv_repeated_caption_columns_and_tsv(tmp_path):
    rows = read_manifest(write(tmp_path, "m.csv", "image,caption,caption\na.png,one,two\n"))
    assert rows[0].texts == ("one", "two")
    rows = read_manifest(write(tmp_path, "m.tsv", "media\ttext\tsplit\na.png\tone, two\ttest\n"))
    assert rows[0].texts == ("one, two",) and rows[0].metadata == {"split": "test"}


def test_jsonl_manifest_rows(tmp_path):
    lines = [
        {"uri": "file:///data/a.jpg", "captions": ["x", "y"], "metadata": {"source": "cam"}, "split": "val"},
        {"audio": "b.flac", "text": "rain", "id": 3},
        {"text": "just a note"},
    ]
    path = write(tmp_path, "m.jsonl", "\n".join(json.dumps(x) for x in lines[:2]) + "\n\n" + json.dumps(lines[2]) + "\n")
    rows = read_manifest(path)
    assert [(r.line, r.media, r.texts, r.id) for r in rows] == [
        (1, "file:///data/a.jpg", ("x", "y"), None), (2, "b.flac", ("rain",), "3"), (4, None, ("just a note",), None),
    ]
    assert rows[0].metadata == {"source": "cam", "split": "val"}


@pytest.mark.parametrize(
    "name, text, line",
    [
        ("m.jsonl", '{"path": "a.jpg"}\n{"path": "b.jpg", oops}\n', 2),
        ("m.jsonl", '{"path": "a.jpg"}\n["a list"]\n', 2),
        ("m.jsonl", '{"path": 5, "text": "x"}\n', 1),
        ("m.jsonl", '{"path": "a.jpg", "captions": ["ok", 3]}\n', 1),
        ("m.jsonl", '{"label": "no media, no text"}\n', 1),
        ("m.csv", "path,caption\na.jpg,x\nb.jpg,y,extra\n", 3),
        ("m.csv", "name,description\na.jpg,x\n", 1),
        ("m.csv", "path,caption,label\n,,cat\n", 2),
        ("m.txt", "path\na.jpg\n", None),
    ],
)
def test_manifest_malformed(tmp_path, name, text, line):
    with pytest.raises(ManifestError) as info:
        read_manifest(write(tmp_path, name, text))
    assert info.value.line == line
    assert name in str(info.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"path,caption\na.jpg,caf\xe9\n")
    with pytest.raises(ManifestError, match="UTF-8"):
        read_manifest(path)


def test_uris_and_resolution(tmp_path):
    assert is_uri("https://x/y.jpg") and is_uri("s3://b/k") and not is_uri("C:/x.jpg") and not is_uri("a/b.jpg")
    assert resolve_media("a/b.jpg", tmp_path) == str(tmp_path / "a" / "b.jpg")
    assert resolve_media("/abs/b.jpg", tmp_path) == "/abs/b.jpg"
    assert resolve_media("file:///abs/b.jpg", tmp_path) == "/abs/b.jpg"
    assert resolve_media("https://x/y.jpg", tmp_path) == "https://x/y.jpg"


def test_scan_lists_captions_per_source_and_reads_each_file_once(tmp_path):
    from ingest.files import path_uri
    from ingest.sources import Listing, scan_sources

    (tmp_path / "imgs").mkdir()
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / "imgs" / name).write_bytes(b"\xff\xd8\xff")
    manifest = write(tmp_path, "m.csv", "path,caption,album\nimgs/a.jpg,a cat ,pets\nimgs/b.jpg,,pets\n"
                                        "imgs/a.jpg,a cat,\nimgs/a.jpg,a kitten,home\n")
    coco = write(tmp_path, "c.json", json.dumps({"images": [{"id": 1, "file_name": "imgs/a.jpg"}],
                                                 "annotations": [{"image_id": 1, "caption": "a pet"}]}))
    scan = scan_sources([tmp_path / "imgs", manifest, coco])
    a, b = str(tmp_path / "imgs" / "a.jpg"), str(tmp_path / "imgs" / "b.jpg")
    assert [t.uri for t in scan.files] == [a, b]  # named by the folder, the manifest three times and COCO: once
    assert all(t.captions == () for t in scan.files)  # captions travel as listings, applied onto the stored item
    assert scan.listings == [
        Listing(a, path_uri(str(manifest)), ("a cat", "a kitten"), {"album": "home"}),  # rows merged, later wins
        Listing(b, path_uri(str(manifest)), (), {"album": "pets"}),  # listed without captions: it has none from here
        Listing(a, path_uri(str(coco)), ("a pet",), None),
    ]
    assert scan.sources == [path_uri(str(manifest)), path_uri(str(coco))]


def test_scan_lists_a_missing_file_and_reports_it(tmp_path):
    from ingest.sources import scan_sources

    manifest = write(tmp_path, "m.jsonl", json.dumps({"path": "gone.jpg", "caption": "x"}) + "\n")
    scan = scan_sources([manifest])
    assert scan.files == [] and [u for u, _ in scan.errors] == [str(tmp_path / "gone.jpg")]
    assert [listing.uri for listing in scan.listings] == [str(tmp_path / "gone.jpg")]  # its captions stay listed
