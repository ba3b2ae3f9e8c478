"""open_clip's table of pretrained weights (``open_clip/pretrained.py``), read without importing open_clip.

``import open_clip`` builds every model class and imports torch (about 5 s); ``xmodal models`` only needs to
know where a tag's checkpoint lives, so the registry module and the two small modules it imports are loaded
on their own, under private names, with ``safetensors.torch`` (an optional import there) kept out.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_PACKAGE = "_xmodal_open_clip_registry"


def pretrained_registry() -> ModuleType:
    """open_clip's ``pretrained`` module: the loaded one when open_clip is imported, else a standalone copy."""
    if "open_clip.pretrained" in sys.modules:
        return sys.modules["open_clip.pretrained"]
    loaded = sys.modules.get(f"{_PACKAGE}.pretrained")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("open_clip is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    package = ModuleType(_PACKAGE)
    package.__path__ = []  # a package with no search path: only the modules placed below exist
    sys.modules[_PACKAGE] = package
    blocked = "safetensors.torch" not in sys.modules
    if blocked:
        sys.modules["safetensors.torch"] = None  # type: ignore[assignment]  # makes its `import` fail fast
    try:
        for name in ("constants", "version", "pretrained"):
            _load(root / f"{name}.py", f"{_PACKAGE}.{name}")
    finally:
        if blocked:
            del sys.modules["safetensors.torch"]
    return sys.modules[f"{_PACKAGE}.pretrained"]


def _load(path: Path, name: str) -> None:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
