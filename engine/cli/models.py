"""``xmodal models``: each preset, its towers, dimension and whether its weights are here."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from core.modalities import MODALITIES

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
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")
    pull = actions.add_parser(
        "pull", help="download a preset's weights (sizes first, progress, checksums), or print how to supply them",
        description="Fetch the towers a preset needs from the Hugging Face hub into the weights folder "
        "($XMODAL_WEIGHTS, default ~/.cache/xmodal/weights): sizes are shown first, progress during, and every "
        "file is checked against the hub's checksums before it is used. Offline (XMODAL_OFFLINE/HF_HUB_OFFLINE, or "
        "no route to the hub) it prints the exact `hf download` command to run elsewhere and the folder to copy "
        "the files to. Learned heads are never downloaded: it prints the `xmodal train` command that makes them. "
        "Exit 0 when everything is here afterwards, 3 when something is still missing.",
    )
    pull.add_argument("name", metavar="PRESET", help="preset name or JSON file")
    pull.add_argument("--modality", action="append", choices=MODALITIES,
                      help="only what these modalities need (repeatable; default all the preset has)")
    pull.set_defaults(func=run_pull)
    return parser


def run_pull(args: argparse.Namespace) -> int:
    """Pull a preset's weights; 0 when it is ready afterwards, 3 (weights unavailable) when not."""
    from engine.models import get_preset
    from engine.models.pull import pull

    report = pull(get_preset(args.name), modalities=args.modality, say=lambda line: print(line, flush=True))
    if report.ready:
        print(f"{args.name}: ready")
        return 0
    print(f"{args.name}: {len(report.missing)} still missing (see above)")
    return 3


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
        state = "ready" if entry["ready"] else f"weights missing: `xmodal models pull {entry['name']}`"
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
            if not c["available"] and c.get("how"):
                print(f"        how: {c['how']}")
    return 0
