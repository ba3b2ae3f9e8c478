"""The layer check: the package graph from every import in the tree (read with ``ast``, nothing imported), upward imports,
cycles among packages, and bench's use of names other than the packages' public faces.

``python -m bench.layers [--json PATH]`` prints the graph and every problem; exit 0 when clean, 1 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Arrows point down only: a module may import its own rank's packages or lower ones.
RANKS = {
    "core": 0, "index": 1, "ingest": 2, "engine.models": 3, "engine.rerank": 4, "engine.query": 5,
    "engine.datasets": 5, "engine.train": 6, "engine.api": 6, "engine.server": 7, "engine.cli": 7, "engine": 8,
    "bench": 9,
}
TOP = ("core", "index", "ingest", "engine", "bench")


@dataclass(frozen=True)
class Import:
    """One import of project code: where it is, which module it names, and the two packages (layers) it joins."""

    path: str
    line: int
    source: str
    target: str
    names: tuple[str, ...] = ()
    origin: str = ""  # the module a ``from`` statement names (target is its submodule for ``from pkg import mod``)


@dataclass
class Graph:
    """Every project module (name -> path relative to the root) and every import of project code among them."""

    root: Path
    modules: dict[str, str] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)
    imports: list[Import] = field(default_factory=list)

    def edges(self) -> Counter[tuple[str, str]]:
        """Imports per (importing package, imported package), self edges left out."""
        pairs = ((layer_of(i.source), layer_of(i.target)) for i in self.imports)
        return Counter(p for p in pairs if p[0] != p[1])


def layer_of(module: str) -> str:
    """The package (layer) of a module: its top folder, or ``engine.<sub>`` inside engine; engine's flat modules are
    its face, ``engine``."""
    parts = module.split(".")
    if parts[0] == "engine" and len(parts) > 1 and f"engine.{parts[1]}" in RANKS:
        return f"engine.{parts[1]}"
    return parts[0]


def _module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module a relative ``from`` names."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _lazy_targets(tree: ast.Module) -> list[tuple[int, str]]:
    """Module names held as strings in a lazy face's map (only in modules that call ``lazy_face``)."""
    calls = any(isinstance(n, ast.Name) and n.id == "lazy_face" for n in ast.walk(tree))
    if not calls:
        return []
    return [(v.lineno, v.value) for d in ast.walk(tree) if isinstance(d, ast.Dict) for v in d.values
            if isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value.split(".")[0] in TOP]


def graph(root: Path = ROOT) -> Graph:
    """Read every ``.py`` file under the project's top folders of ``root`` and collect their project imports."""
    g = Graph(root)
    files = sorted(p for top in TOP if (root / top).is_dir() for p in (root / top).rglob("*.py"))
    for path in files:
        name = _module_name(path.relative_to(root))
        g.modules[name] = str(path.relative_to(root))
        if path.name == "__init__.py":
            g.packages.add(name)
    for path in files:
        rel = path.relative_to(root)
        source = _module_name(rel)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
        found: list[Import] = []
        for node in ast.walk(tree):  # module level, inside functions and TYPE_CHECKING blocks alike
            if isinstance(node, ast.Import):
                found += [Import(str(rel), node.lineno, source, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(source, path.name == "__init__.py", node.level, node.module)
                groups: dict[str, list[str]] = {}
                for alias in node.names:  # ``from engine import models`` imports engine.models, not the face
                    groups.setdefault(f"{base}.{alias.name}" if f"{base}.{alias.name}" in g.modules else base,
                                      []).append(alias.name)
                found += [Import(str(rel), node.lineno, source, t, tuple(n), base) for t, n in groups.items()]
        found += [Import(str(rel), line, source, target) for line, target in _lazy_targets(tree)]
        g.imports += [i for i in found if i.target.split(".")[0] in TOP]
    return g


def violations(g: Graph) -> list[str]:
    """Every import from a higher layer, and every module of a package without a rank."""
    out = []
    for i in g.imports:
        a, b = layer_of(i.source), layer_of(i.target)
        if a not in RANKS or b not in RANKS:
            out.append(f"{i.path}:{i.line}  {a} imports {b}: no rank for {a if a not in RANKS else b}")
        elif RANKS[b] > RANKS[a]:
            out.append(f"{i.path}:{i.line}  {a} (rank {RANKS[a]}) imports {b} (rank {RANKS[b]})")
    return out


def cycles(g: Graph) -> list[list[str]]:
    """Strongly connected components of more than one package in the package graph (Tarjan)."""
    succ: dict[str, set[str]] = {}
    for a, b in g.edges():
        succ.setdefault(a, set()).add(b)
        succ.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return sorted(found)


def private_uses(g: Graph) -> list[str]:
    """Imports in bench/ of project code other than bench that name a module rather than a package face, or a name
    starting with ``_``."""
    out = []
    for i in g.imports:
        if layer_of(i.source) != "bench" or layer_of(i.target) == "bench":
            continue
        named = i.origin or i.target
        if named not in g.packages and named in g.modules:
            out.append(f"{i.path}:{i.line}  imports {named}, a module, not a package face")
        elif any(n.startswith("_") for n in i.names):
            private = ", ".join(n for n in i.names if n.startswith("_"))
            out.append(f"{i.path}:{i.line}  imports {private} from {named}: not public")
    return out


def report(g: Graph) -> dict[str, object]:
    """Everything the check found, as plain data."""
    return {
        "edges": [{"from": a, "to": b, "imports": n} for (a, b), n in sorted(g.edges().items())],
        "upward": violations(g), "cycles": cycles(g), "bench_private": private_uses(g),
        "modules": len(g.modules), "imports": [asdict(i) for i in g.imports],
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.layers``: print the package graph and every problem; 1 when there is one."""
    parser = argparse.ArgumentParser(prog="python -m bench.layers", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the project's root folder")
    parser.add_argument("--json", dest="json_out", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    found = report(graph(args.root))
    print(f"package graph ({found['modules']} modules):")
    for e in found["edges"]:
        print(f"  {e['from']} -> {e['to']}  ({e['imports']} imports)")
    sections = (("upward imports", found["upward"]), ("cycles among packages", [" <-> ".join(c) for c in found["cycles"]]),
                ("bench names other than package faces", found["bench_private"]))
    for title, lines in sections:
        print(f"{title}: {len(lines) or 'none'}")
        for line in lines:
            print(f"  {line}")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(found, indent=1) + "\n")
    return 1 if any(lines for _, lines in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
