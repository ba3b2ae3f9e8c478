"""``xmodal models pull``: fetch a preset's downloadable weights into the weights folder, or say how to by hand.

A plan lists every tower and head the preset needs: present (where), downloadable (hub repo, files, sizes) or
made here (heads: trained by ``xmodal train``). Downloads go through a ``Hub`` (the Hugging Face hub by default;
tests inject a fake one), into a temporary name that is renamed only after every file's checksum matched the
hub's (LFS sha256, or the git blob id for small files) and the preset's pin, so a folder that resolves is complete.
"""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

from core.errors import WeightsChecksumMismatch, WeightsUnavailable
from engine.models.presets import Preset
from engine.models.status import preset_status
from engine.models.weights import (
    HF_WEIGHT_PATTERNS, downloads_allowed, hf_local_dir, how_hf, hub_reachable, open_clip_local_file, open_clip_remote,
    sha256_file, weights_dir,
)

# About how big the built-in presets' downloads are, shown before anything is fetched when the hub cannot be
# asked: fp32 parameter counts of the architectures (ViT-B-32: 151.3 M, CLAP HTSAT-unfused: 153.5 M) x 4 bytes.
APPROX_BYTES = {
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/open_clip_model.safetensors": 605_000_000,
    "laion/clap-htsat-unfused": 614_000_000,
}
Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class RemoteFile:
    """One file of a hub repo: its name, size in bytes and checksums (LFS sha256, git blob sha1) when known."""

    name: str
    size: int | None = None
    sha256: str | None = None
    blob_sha1: str | None = None


class Hub(Protocol):
    """Where weights come from: list a repo's files and download one of them to a path."""

    def reachable(self) -> bool:
        """Whether the hub answers from this machine (quickly, without hanging)."""

    def files(self, repo: str, revision: str | None) -> list[RemoteFile]:
        """Every file of ``repo`` at ``revision`` with sizes and checksums."""

    def download(self, repo: str, name: str, revision: str | None, dest: Path, progress: Progress) -> None:
        """Write the file ``name`` of ``repo`` to ``dest``, calling ``progress(done, total)`` as bytes arrive."""


class HfHub:
    """The Hugging Face hub through ``huggingface_hub`` (its progress reported through our callback)."""

    def reachable(self) -> bool:
        """TCP connect to the hub's host within a few seconds."""
        return hub_reachable()

    def files(self, repo: str, revision: str | None) -> list[RemoteFile]:
        """The repo's files from the hub API (``files_metadata`` gives sizes and LFS hashes)."""
        from huggingface_hub import HfApi

        info = HfApi().model_info(repo, revision=revision, files_metadata=True, timeout=30)
        found = []
        for s in info.siblings or []:
            lfs = s.lfs.get("sha256") if isinstance(s.lfs, dict) else getattr(s.lfs, "sha256", None)
            found.append(RemoteFile(s.rfilename, s.size, lfs, None if lfs else s.blob_id))
        return found

    def download(self, repo: str, name: str, revision: str | None, dest: Path, progress: Progress) -> None:
        """``hf_hub_download`` into ``dest``'s folder, with a progress bar class that forwards to ``progress``."""
        from huggingface_hub import hf_hub_download
        from tqdm.auto import tqdm

        class Bar(tqdm):  # type: ignore[misc, valid-type]
            def __init__(self, *args, **kwargs) -> None:
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)
                self.done = 0

            def update(self, n: float | None = 1) -> None:
                self.done += int(n or 0)
                progress(self.done, self.total)

        got = Path(hf_hub_download(repo, name, revision=revision, local_dir=dest.parent / ".hf", tqdm_class=Bar,
                                   etag_timeout=10))
        shutil.move(str(got), dest)


@dataclass(frozen=True)
class PullItem:
    """One thing a preset needs: what it is, where it comes from, whether it is here, and how to get it."""

    component: str
    source: str
    present: bool
    detail: str
    repo: str | None = None  # None: not downloadable (a trained head, a package, a local path)
    revision: str | None = None
    files: tuple[str, ...] = ()  # empty with a repo: the whole repo's weight files
    target: Path | None = None  # the file (one named file) or folder (a whole repo) in the weights folder
    sha256: str | None = None  # the preset's pin, for a one-file tower
    how: str = ""

    @property
    def approx_bytes(self) -> int | None:
        """About how big the download is, when known without asking the hub."""
        key = f"{self.repo}/{self.files[0]}" if self.files else str(self.repo)
        return APPROX_BYTES.get(key)


@dataclass
class PullReport:
    """What a pull did: items fetched, present before, still missing (with how), and the checksums it verified."""

    fetched: list[PullItem] = field(default_factory=list)
    present: list[PullItem] = field(default_factory=list)
    missing: list[PullItem] = field(default_factory=list)
    checksums: dict[str, str] = field(default_factory=dict)
    offline: bool = False

    @property
    def ready(self) -> bool:
        """Whether everything the preset needs is now here."""
        return not self.missing


def plan_pull(preset: Preset, modalities: Iterable[str] | None = None) -> list[PullItem]:
    """Every tower and head the preset needs, one item per distinct source, nothing downloaded."""
    items: dict[tuple[str, str], PullItem] = {}
    for row in preset_status(preset, modalities):
        key = (row.part, row.source)
        if key in items:
            old = items[key]
            items[key] = PullItem(**{**old.__dict__, "component": f"{row.modality}+{old.component}"})
            continue
        label = f"{row.modality} {row.part}"
        item = PullItem(label, row.source, row.available, row.detail, how=row.how)
        spec = preset.towers[row.modality]
        if row.part == "tower" and not row.available and spec.source.explicit_path is None:
            if spec.source.scheme == "hf":
                item = PullItem(label, row.source, False, row.detail, spec.source.name, spec.source.tag, (),
                                hf_local_dir(spec.source.name, spec.source.tag), spec.sha256, row.how)
            elif spec.source.scheme == "open_clip" and spec.source.tag:
                repo, names, _url = open_clip_remote(spec.source)
                if repo:
                    item = PullItem(label, row.source, False, row.detail, repo, None, (names[0],),
                                    open_clip_local_file(spec.source), spec.sha256, row.how)
        items[key] = item
    return list(items.values())


def human(size: int | None) -> str:
    """Bytes as a short human figure (``?`` when unknown)."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def manual_steps(item: PullItem) -> str:
    """The exact commands to supply one downloadable item by hand from a connected machine."""
    assert item.repo is not None and item.target is not None
    folder = item.target.parent if item.files else item.target
    return how_hf(item.repo + (f" --revision {item.revision}" if item.revision else ""), folder, list(item.files))


def select_files(remote: list[RemoteFile], wanted: tuple[str, ...]) -> list[RemoteFile]:
    """The named files, or a whole repo's weight files (safetensors preferred over duplicate .bin weights)."""
    if wanted:
        by_name = {f.name: f for f in remote}
        missing = [w for w in wanted if w not in by_name]
        if missing:
            raise WeightsUnavailable("hub", missing, "the hub's repo does not hold these files")
        return [by_name[w] for w in wanted]
    chosen = [f for f in remote if "/" not in f.name and any(fnmatch.fnmatch(f.name, p) for p in HF_WEIGHT_PATTERNS)]
    if any(f.name.endswith(".safetensors") for f in chosen):
        chosen = [f for f in chosen if not f.name.endswith(".bin")]
    return chosen


def git_blob_sha1(path: Path) -> str:
    """The git blob id of a file (how the hub names small, non-LFS files)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(item: PullItem, remote: RemoteFile, path: Path, pinned: str | None) -> str:
    """Check a downloaded file against the hub's checksums and the preset's pin; its sha256 when all match."""
    actual = sha256_file(path)
    if remote.size is not None and path.stat().st_size != remote.size:
        raise WeightsChecksumMismatch(item.source, [remote.name], f"{path.stat().st_size} bytes, the hub lists {remote.size}")
    for expected, what in ((remote.sha256, "the hub's"), (pinned, "the preset's pinned")):
        if expected and actual != expected.lower():
            raise WeightsChecksumMismatch(item.source, [remote.name], f"sha256 {actual} differs from {what} {expected}")
    if remote.blob_sha1 and git_blob_sha1(path) != remote.blob_sha1:
        raise WeightsChecksumMismatch(item.source, [remote.name], f"git blob id differs from the hub's {remote.blob_sha1}")
    return actual


def _fetch(item: PullItem, hub: Hub, remote: list[RemoteFile], say: Callable[[str], None],
           report: PullReport) -> None:
    """Download an item's files under a temporary name, verify each, then rename it into place."""
    assert item.repo is not None and item.target is not None
    staging = item.target.with_name(item.target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    folder = staging
    folder.mkdir(parents=True)
    try:
        for f in remote:
            dest = folder / f.name
            last = [-1]

            def progress(done: int, total: int | None, name: str = f.name, last: list[int] = last) -> None:
                total = total or f.size
                step = int(done * 10 / total) if total else -1
                if step != last[0] and total:  # one line per 10 %
                    last[0] = step
                    say(f"    {name}: {human(done)} of {human(total)} ({100 * done // total} %)")

            hub.download(item.repo, f.name, item.revision, dest, progress)
            pin = item.sha256 if len(remote) == 1 else None
            report.checksums[f"{item.repo}/{f.name}"] = _verify(item, f, dest, pin)
            say(f"    {f.name}: sha256 {report.checksums[f'{item.repo}/{f.name}']} ok")
        item.target.parent.mkdir(parents=True, exist_ok=True)
        if item.files:
            (folder / item.files[0]).replace(item.target)
        else:
            shutil.rmtree(item.target, ignore_errors=True)
            shutil.rmtree(folder / ".hf", ignore_errors=True)
            folder.replace(item.target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pull(preset: Preset, hub: Hub | None = None, modalities: Iterable[str] | None = None,
         say: Callable[[str], None] = print) -> PullReport:
    """Fetch what the preset needs and the hub has (sizes first, progress during, checksums after); offline,
    print exactly what to download elsewhere and where to copy it. Items nobody can download are listed with how."""
    items = plan_pull(preset, modalities)
    report = PullReport(present=[i for i in items if i.present])
    todo = [i for i in items if not i.present and i.repo]
    report.missing = [i for i in items if not i.present and not i.repo]
    say(f"preset {preset.name}: weights folder {weights_dir()} ($XMODAL_WEIGHTS)")
    for i in report.present:
        say(f"  ok   {i.component}: {i.detail}")
    hub = hub or HfHub()
    online = bool(todo) and downloads_allowed() and hub.reachable()
    listings: dict[str, list[RemoteFile]] = {}
    if online:
        for i in todo:
            listings[i.component] = select_files(hub.files(i.repo, i.revision), i.files)  # type: ignore[arg-type]
    for i in todo:
        if i.component in listings:
            files = listings[i.component]
            size = sum(f.size or 0 for f in files) if all(f.size is not None for f in files) else None
            names = ", ".join(f"{f.name} ({human(f.size)})" for f in files)
            say(f"  get  {i.component}: {i.repo}: {names}; {human(size)} in all")
        else:
            approx = i.approx_bytes
            say(f"  get  {i.component}: {i.repo}" + (f" {' '.join(i.files)}" if i.files else "")
                + (f" (about {human(approx)})" if approx else ""))
    for i in report.missing:
        say(f"  --   {i.component}: {i.detail}; cannot be downloaded: {i.how}")
    if todo and not online:
        report.offline = True
        why = "downloads are disabled (XMODAL_OFFLINE/HF_HUB_OFFLINE)" if not downloads_allowed() else \
            "the hub is unreachable from this machine"
        say(f"nothing downloaded: {why}. To supply the files by hand:")
        for i in todo:
            say(f"  {i.component}: {manual_steps(i)}")
        report.missing = todo + report.missing
        return report
    for i in todo:
        say(f"fetching {i.component} into {i.target}")
        _fetch(i, hub, listings[i.component], say, report)
        report.fetched.append(i)
    return report
