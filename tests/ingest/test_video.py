"""Video files (#16 item 3): frames sampled by time with static shots kept once, the soundtrack streamed in windows,
every container, truncated and corrupt files refused with their reason, readers for enrichers, and a folder with
videos ingested and searched to the moment. Videos are tiny (160x120, 4 fps, 9 s), made once per module."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest

from engine.datasets.videos import write_video
from ingest.decode import DecodeSettings, VideoSettings, modality_of, sniff_media
from ingest.enrich_media import ENRICH_RATE, MEDIA_READERS
from ingest.errors import DecodeError
from ingest.video import frame_at, frame_interval, iter_frames, iter_soundtrack, video_media
from tests.videos import FRAME_TIMES, RATE, SHOTS, SOUNDS, picture


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    made = {}
    for ext in (".mp4", ".webm", ".mkv", ".mov"):
        made[ext] = root / f"scenes{ext}"
        assert write_video(made[ext], SHOTS, SOUNDS) == 9.0
    return made


def test_static_shots_are_one_frame_and_a_changing_shot_one_per_second(videos):
    frames = list(iter_frames(str(videos[".mp4"]), "scenes.mp4"))
    assert [t for t, _ in frames] == FRAME_TIMES
    assert all(image.mode == "RGB" and image.size == (160, 120) for _, image in frames)
    red = np.asarray(frames[0][1], dtype=np.float32).mean(axis=(0, 1))
    assert red[0] > 150 and red[1] < 60 and red[2] < 60


def test_a_long_video_is_sampled_more_sparsely_under_the_frame_cap(videos):
    capped = DecodeSettings(video=VideoSettings(max_frames=3, same_frame_mad=0.0))
    assert frame_interval(9.0, capped) == 3.0 and frame_interval(None, capped) == 1.0
    assert [t for t, _ in iter_frames(str(videos[".mp4"]), "v", capped)] == [0.0, 3.0, 6.0]
    every = DecodeSettings(video=VideoSettings(same_frame_mad=0.0))  # no skipping: one per second
    assert [t for t, _ in iter_frames(str(videos[".mp4"]), "v", every)] == [float(s) for s in range(9)]


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".mkv", ".mov"])
def test_every_container_gives_frames_and_its_soundtrack_at_the_right_seconds(videos, ext):
    path = str(videos[ext])
    head = videos[ext].read_bytes()[:16]
    assert modality_of(path, head) == "video" and sniff_media(head)[0] == "video"
    assert [t for t, _ in iter_frames(path, path)] == FRAME_TIMES
    blocks = list(iter_soundtrack(path, path, rate=RATE, block_s=0.5))
    samples = np.concatenate([b.samples for b in blocks])
    assert all(b.sample_rate == RATE for b in blocks) and abs(len(samples) / RATE - 9.0) < 0.2
    loud = [i * 0.5 for i, b in enumerate(blocks) if np.sqrt(np.mean(b.samples ** 2)) > 0.1]
    assert loud == [4.0, 4.5]  # the tone, where it was placed


def test_ingest_media_are_frames_then_ten_second_windows_and_the_decoder_beats_per_packet(videos):
    beats = []
    with open(videos[".webm"], "rb") as handle:
        media = list(video_media(handle, "scenes.webm", DecodeSettings(), ("image", "audio"), lambda: beats.append(1)))
    assert [(kind, m, t) for kind, m, t, _ in media] == (
        [("frame", "image", t) for t in FRAME_TIMES] + [("audio-segment", "audio", 0.0)])
    assert len(beats) >= 36  # every packet of both passes (36 frames alone), not only the frames kept
    with open(videos[".webm"], "rb") as handle:
        assert [kind for kind, *_ in video_media(handle, "v", DecodeSettings(), ("audio",))] == ["audio-segment"]


def test_enrichers_read_the_soundtrack_at_16_khz_and_full_resolution_frames(videos):
    pieces = list(MEDIA_READERS[("video", "audio")](str(videos[".mkv"]), DecodeSettings()))
    assert len(pieces) == 1 and pieces[0][0] == 0.0 and pieces[0][1].sample_rate == ENRICH_RATE
    frames = list(MEDIA_READERS[("video", "image")](str(videos[".mkv"]), DecodeSettings()))
    assert [t for t, _ in frames] == FRAME_TIMES
    small = dataclasses.replace(DecodeSettings(), video=VideoSettings(frame_max_side=80))
    assert next(iter_frames(str(videos[".mkv"]), "v", small))[1].size == (80, 60)


def test_the_frame_at_a_moment_is_the_one_shown_then(videos):
    path = str(videos[".webm"])
    colours = {t: np.asarray(frame_at(path, path, t), dtype=np.float32).mean(axis=(0, 1)) for t in (0.5, 2.9, 4.4)}
    assert colours[0.5][0] > 150 and colours[2.9][0] > 150  # still the red shot
    expected = np.asarray(picture(1).resize((160, 120)), dtype=np.float32).mean(axis=(0, 1))
    assert np.abs(colours[4.4] - expected).max() < 12
    assert frame_at(path, path, 500.0).size == (160, 120)  # past the end: the last frame


def _cut(data: bytes, share: float) -> bytes:
    return data[: int(len(data) * share)]


@pytest.fixture(scope="module")
def broken(videos, tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    files = {}
    for ext in (".webm", ".mkv"):
        files[f"truncated{ext}"] = _cut(videos[ext].read_bytes(), 0.4)
    faststart = root / "faststart.mp4"
    import av

    with av.open(str(videos[".mp4"])) as src, av.open(str(faststart), "w", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    files["truncated-faststart.mp4"] = _cut(faststart.read_bytes(), 0.4)
    files["truncated-moov-last.mp4"] = _cut(videos[".mp4"].read_bytes(), 0.9)
    files["garbage.mp4"] = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40
    files["random.mkv"] = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize("name, reason", [
    ("truncated.webm", "truncated"), ("truncated.mkv", "truncated"), ("truncated-faststart.mp4", "truncated"),
    ("truncated-moov-last.mp4", "not a readable video"), ("garbage.mp4", "not a readable video"),
    ("random.mkv", "not a readable video"),
])
def test_truncated_and_corrupt_videos_are_refused_with_their_reason(broken, name, reason):
    path = str(broken / name)
    with pytest.raises(DecodeError, match=reason):
        list(video_media(io.BytesIO((broken / name).read_bytes()), path, DecodeSettings(), ("image", "audio")))


def test_limits_refuse_a_video_longer_than_allowed(videos):
    short = DecodeSettings(video=VideoSettings(max_video_s=5.0))
    with pytest.raises(DecodeError, match="over the limit of 5 s"):
        list(iter_frames(str(videos[".mp4"]), "v", short))
    assert DecodeSettings().max_bytes("video") > DecodeSettings().max_bytes("audio")


def test_sniffing_tells_video_from_other_iso_media():
    assert sniff_media(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00") == ("video", "video/mp4")
    assert sniff_media(b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00") == ("video", "video/quicktime")
    assert sniff_media(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01") == ("video", "video/webm")
    assert sniff_media(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00") is None  # AAC audio in MP4: not a video
    assert sniff_media(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") is None  # a HEIF photo
    assert modality_of("clip.jpg", b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00") == "video"  # content first
    assert modality_of("old.mov", b"\x00\x00\x00\x08wide\x00\x00") == "video"  # no ftyp: by its extension


@pytest.fixture(scope="module")
def ingested(videos, broken, tmp_path_factory):
    from engine.api.facade import Engine
    from ingest.pipeline import IngestOptions

    root = tmp_path_factory.mktemp("folder")
    media = root / "media"
    media.mkdir()
    for ext in (".webm", ".mp4"):
        (media / f"scenes{ext}").write_bytes(videos[ext].read_bytes())
    (media / "broken.mkv").write_bytes((broken / "truncated.mkv").read_bytes())
    (media / "garbage.mp4").write_bytes((broken / "garbage.mp4").read_bytes())
    picture(1).save(media / "photo.jpg")
    engine = Engine.open(root / "store", "tiny-random")
    summary = engine.ingest([media], IngestOptions(workers=0, batch_size=4))
    yield engine, media, summary
    engine.close()


@pytest.mark.slow  # the ingest fixture loads the tiny towers (most of its time is importing them)
def test_a_folder_with_videos_ingests_the_good_ones_and_reports_the_bad(ingested):
    engine, media, summary = ingested
    assert summary.added == 3 and summary.failed == 2
    reasons = dict(summary.failures)
    assert "truncated" in reasons[str(media / "broken.mkv")]
    assert "not a readable video" in reasons[str(media / "garbage.mp4")]
    catalog = engine.store.catalog
    video = next(i for i in catalog.items(status="ok") if i.uri.endswith("scenes.webm"))
    assert video.modality == "video"
    reps = catalog.representations_of(video.id)
    assert [(r.kind, r.modality, r.offset_seconds) for r in reps] == (
        [("frame", "image", t) for t in FRAME_TIMES] + [("audio-segment", "audio", 0.0)])
    from ingest.pipeline import IngestOptions

    again = engine.ingest([media], IngestOptions(workers=0))
    assert again.added == 0 and again.unchanged == 3


@pytest.mark.slow
def test_a_picture_finds_the_video_at_the_second_it_is_shown(ingested):
    engine, media, _ = ingested
    results = engine.search(picture(1), targets=["video"], k=5)
    assert {r.modality for r in results} == {"video"} and len(results) == 2  # the webm and the mp4
    assert all(r.match.kind == "frame" and r.match.offset_seconds == 3.0 for r in results)
    mixed = engine.search(picture(1), k=5)
    assert mixed[0].uri.endswith("photo.jpg")  # the photo itself first; the videos come next, at 3 s
    assert {r.modality for r in mixed} >= {"image", "video"}


@pytest.mark.slow
def test_the_cli_names_the_moment(ingested, tmp_path, capsys):
    from engine.cli import main

    engine, _, _ = ingested
    picture(1).save(tmp_path / "query.png")
    assert main(["search", "--image", str(tmp_path / "query.png"), "--targets", "video", "--k", "2",
                 "--store", str(engine.store.root)]) == 0
    out = capsys.readouterr().out
    assert "scenes.webm at 0:03 (frame)" in out and "scenes.mp4 at 0:03 (frame)" in out
