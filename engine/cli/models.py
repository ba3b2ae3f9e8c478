"""``xmodal models``: each preset, its towers, dimension and whether its weights are here."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

NAME = "models"
HELP = "list model presets and whether their weights are available here"


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``models`` subcommand."""
    parser = sub.add_parser(
        NAME, help=HELP,
        description="List every model preset: its towers, its dimension, and whether each tower's and head's "
        "weights are on this machine (nothing is downloaded).",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the presets; exit 0 whether or not weights are present."""
    from engine.models import list_presets, preset_status

    report = []
    for preset in list_presets():
        rows = preset_status(preset)
        report.append({
            "name": preset.name, "dim": preset.dim, "description": preset.description, "domain": dict(preset.domain),
            "random_weights": preset.random_weights, "path": str(preset.path),
            "ready": all(r.available for r in rows), "components": [asdict(r) for r in rows],
        })
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for entry in report:
        state = "ready" if entry["ready"] else "weights missing"
        print(f"{entry['name']}  (dim {entry['dim']}, {state})")
        if entry["description"]:
            print(f"  {entry['description']}")
        for modality in ("text", "image", "audio"):
            if modality in entry["domain"]:
                print(f"  made for ({modality}): {entry['domain'][modality]}")
        for c in entry["components"]:
            mark = "ok " if c["available"] else "-- "
            print(f"  {mark} {c['modality']:<5} {c['part']:<5} {c['kind']:<16} {c['source']}")
            print(f"        {c['detail']}")
    return 0
