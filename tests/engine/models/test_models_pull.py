"""``xmodal models pull``: the offline path for real, the download path through an injected fake hub (no network)."""

import hashlib
import json
from pathlib import Path

import pytest

from engine.cli import main
from core.errors import WeightsChecksumMismatch
from engine.models import get_preset
from engine.models import weights as W
from engine.models.pull import RemoteFile, git_blob_sha1, plan_pull, pull, select_files

CLIP_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
CLAP_REPO = "laion/clap-htsat-unfused"


@pytest.fixture
def empty(tmp_path, monkeypatch):
    """No weights anywhere: an empty weights folder, Hugging Face cache and home."""
    monkeypatch.setenv("XMODAL_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "weights"


class FakeHub:
    """A hub in memory: repos of named byte strings, listed with sizes and checksums like the real one."""

    def __init__(self, repos: dict[str, dict[str, bytes]], corrupt: str | None = None) -> None:
        self.repos, self.corrupt, self.downloaded = repos, corrupt, []

    def reachable(self) -> bool:
        return True

    def files(self, repo, revision):
        out = []
        for name, data in self.repos[repo].items():
            lfs = name.endswith((".safetensors", ".bin"))
            blob = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
            out.append(RemoteFile(name, len(data), hashlib.sha256(data).hexdigest() if lfs else None,
                                  None if lfs else blob))
        return out

    def download(self, repo, name, revision, dest: Path, progress) -> None:
        data = self.repos[repo][name]
        if name == self.corrupt:
            data = data[:-1] + b"?"
        with open(dest, "wb") as fh:
            for i in range(0, len(data), 1000):
                fh.write(data[i : i + 1000])
                progress(min(i + 1000, len(data)), len(data))
        self.downloaded.append((repo, name))


def _clip_hub(**kwargs) -> FakeHub:
    return FakeHub({
        CLIP_REPO: {"open_clip_model.safetensors": b"c" * 5000, "open_clip_pytorch_model.bin": b"b" * 5000},
        CLAP_REPO: {"config.json": b'{"a": 1}', "model.safetensors": b"w" * 3000, "pytorch_model.bin": b"p" * 3000,
                    "vocab.json": b"{}", "README.md": b"# no"},
    }, **kwargs)


def test_offline_pull_prints_what_to_copy_where(empty, monkeypatch, capsys):
    monkeypatch.setenv("XMODAL_OFFLINE", "1")
    hub = _clip_hub()
    report = pull(get_preset("clip-vit-b32"), hub=hub)
    out = capsys.readouterr().out
    assert report.offline and not report.ready and hub.downloaded == []
    assert f"hf download {CLIP_REPO} open_clip_model.safetensors --local-dir DIR" in out
    assert f"copy DIR's contents to {empty / CLIP_REPO}" in out
    assert f"hf download {CLAP_REPO} --local-dir DIR" in out and str(empty / CLAP_REPO) in out
    assert "about 605.0 MB" in out and "about 614.0 MB" in out  # sizes before anything else
    assert "--bind-audio-from-text" in out  # the head is made here, and the command says how
    assert not empty.exists()


def test_offline_cli_exit_code_and_copied_files_resolve(empty, monkeypatch, capsys):
    monkeypatch.setenv("XMODAL_OFFLINE", "1")
    assert main(["models", "pull", "clip-vit-b32", "--modality", "text"]) == 3
    out = capsys.readouterr().out
    assert "clap" not in out.lower() and "1 still missing" in out  # text needs only the CLIP file
    # following the printed step by hand (copying the file there) makes the preset's text side ready
    target = empty / CLIP_REPO / "open_clip_model.safetensors"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    assert main(["models", "pull", "clip-vit-b32", "--modality", "text"]) == 0
    assert "ready" in capsys.readouterr().out


def test_download_shows_sizes_progress_and_checksums(empty, monkeypatch, capsys):
    monkeypatch.delenv("XMODAL_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = _clip_hub()
    report = pull(get_preset("clip-vit-b32"), hub=hub)
    out = capsys.readouterr().out
    lines = out.splitlines()
    sizes = next(i for i, l in enumerate(lines) if "open_clip_model.safetensors (5.0 KB)" in l)
    progress = next(i for i, l in enumerate(lines) if "open_clip_model.safetensors: 5.0 KB of 5.0 KB (100 %)" in l)
    assert sizes < progress
    assert f"sha256 {hashlib.sha256(b'c' * 5000).hexdigest()} ok" in out
    # safetensors preferred over duplicate .bin weights; README not a weight file
    assert sorted(hub.downloaded) == sorted([(CLIP_REPO, "open_clip_model.safetensors"), (CLAP_REPO, "config.json"),
                                            (CLAP_REPO, "model.safetensors"), (CLAP_REPO, "vocab.json")])
    assert (empty / CLIP_REPO / "open_clip_model.safetensors").read_bytes() == b"c" * 5000
    assert sorted(p.name for p in (empty / CLAP_REPO).iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    assert W.resolve(W.ModelSource("hf", CLAP_REPO)).origin == "weights folder"
    assert len(report.fetched) == 2 and [i.component for i in report.missing] == ["audio head"]  # trained, not pulled
    assert not report.ready
    hub.downloaded.clear()
    again = pull(get_preset("clip-vit-b32"), hub=hub)
    assert hub.downloaded == [] and len(again.present) == 3  # nothing fetched twice


def test_checksum_mismatch_leaves_nothing_behind(empty, monkeypatch):
    monkeypatch.delenv("XMODAL_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(WeightsChecksumMismatch, match="sha256"):
        pull(get_preset("clip-vit-b32"), hub=_clip_hub(corrupt="model.safetensors"), modalities=["audio"])
    assert not (empty / CLAP_REPO).exists() and list((empty / "laion").iterdir()) == []
    with pytest.raises(WeightsChecksumMismatch, match="git blob"):
        pull(get_preset("clip-vit-b32"), hub=_clip_hub(corrupt="config.json"), modalities=["audio"])


def test_preset_pin_is_checked(empty, monkeypatch, tmp_path):
    monkeypatch.delenv("XMODAL_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    raw = json.loads(get_preset("clip-vit-b32").path.read_text())
    raw["towers"] = {m: {**raw["towers"][m], "sha256": "0" * 64} for m in ("image", "text")}
    raw["heads"] = {m: raw["heads"][m] for m in ("image", "text")}
    path = tmp_path / "pinned.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(WeightsChecksumMismatch, match="pinned"):
        pull(get_preset(path), hub=_clip_hub())


def test_plan_names_shared_files_once(empty):
    items = plan_pull(get_preset("clip-vit-b32"))
    towers = [i for i in items if i.component.endswith("tower")]
    assert [i.component for i in towers] == ["text+image tower", "audio tower"]
    assert towers[0].files == ("open_clip_model.safetensors",) and towers[1].files == ()
    assert select_files([RemoteFile("a.bin"), RemoteFile("sub/x.json"), RemoteFile("c.json")], ()) == [RemoteFile("a.bin"), RemoteFile("c.json")]


def test_git_blob_id(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    assert git_blob_sha1(path) == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object` of "hello\n"
