"""One parser for model sources: ``open_clip:ARCH[@TAG|@/path]``, ``hf:org/repo[@rev]``, ``local:/path``, ``package:mod/sub``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import InvalidModelSource

SCHEMES = ("open_clip", "hf", "local", "package")
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_ARCH = re.compile(r"^[\w./-]+$")


@dataclass(frozen=True)
class ModelSource:
    """Where a tower's weights come from: a scheme, a name, and an optional tag, revision or path."""

    scheme: str
    name: str
    tag: str | None = None

    @property
    def explicit_path(self) -> Path | None:
        """The file or directory the source names directly, if it names one."""
        if self.scheme == "local":
            return Path(self.name).expanduser()
        if self.scheme == "open_clip" and self.tag and _looks_like_path(self.tag):
            return Path(self.tag).expanduser()
        return None

    def __str__(self) -> str:
        return f"{self.scheme}:{self.name}" + (f"@{self.tag}" if self.tag else "")


def _looks_like_path(tag: str) -> bool:
    return "/" in tag or tag.startswith("~") or tag.endswith((".pt", ".pth", ".bin", ".safetensors"))


def parse_source(text: str) -> ModelSource:
    """Parse a model source string, raising ``InvalidModelSource`` on anything malformed."""
    if not isinstance(text, str) or ":" not in text:
        raise InvalidModelSource(f"model source {text!r} needs a scheme, one of {', '.join(SCHEMES)} (e.g. hf:org/repo)")
    scheme, rest = text.split(":", 1)
    rest = rest.strip()
    if scheme not in SCHEMES:
        raise InvalidModelSource(f"unknown model source scheme {scheme!r} in {text!r}; expected one of {', '.join(SCHEMES)}")
    if not rest:
        raise InvalidModelSource(f"model source {text!r} names nothing after '{scheme}:'")
    if scheme == "local":
        return ModelSource("local", rest)
    name, _, tag = rest.partition("@")
    if "@" in rest and not tag:
        raise InvalidModelSource(f"model source {text!r} has an empty tag after '@'")
    if scheme == "hf" and not _HF_ID.match(name):
        raise InvalidModelSource(f"hf source {text!r} must look like hf:org/name[@revision]")
    if scheme == "open_clip" and not _ARCH.match(name):
        raise InvalidModelSource(f"open_clip source {text!r} must look like open_clip:ARCH[@TAG or @/path/to/ckpt]")
    if scheme == "package" and not re.match(r"^[A-Za-z_]\w*(/[\w.-]+)*$", name):
        raise InvalidModelSource(f"package source {text!r} must look like package:module[/subdir]")
    return ModelSource(scheme, name, tag or None)
