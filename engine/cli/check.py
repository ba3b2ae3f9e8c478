"""``xmodal check``: do the catalog and its indexes agree? ``--repair`` rebuilds what does not."""

from __future__ import annotations

import argparse
import json

from engine.api.defaults import default_store

EXIT_PROBLEMS = 1
EXIT_DAMAGED = 5  # as a damaged store's error: vectors that were the only copy are lost (a bulk store's Parquet files)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``check`` subcommand."""
    parser = subparsers.add_parser(
        "check",
        help="check that the catalog and the vector indexes agree",
        description="Compare every index file with the catalog: catalog integrity, identity and history (a restored "
        "catalog is told apart), ids, dimension, unit norms and every stored vector. Exit status 0 when they agree "
        "(or were repaired), 1 when problems remain, 5 when the store is damaged (the message says what --repair "
        "does), 2 when there is no store.",
    )
    parser.add_argument("--store", default=None,
                        help="store folder holding catalog.db and indexes/ (default: $XMODAL_STORE or ./xmodal-store)")
    parser.add_argument("--repair", action="store_true",
                        help="rebuild or catch up indexes that disagree; salvage or move aside a damaged catalog, a "
                        "non-folder indexes/ or an unreadable xmodal.json")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the check and print the report."""
    from index import check_store

    report = check_store(args.store or default_store(), repair=args.repair)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for vs in report.vector_sets:
            compared = f" ({vs['compared']} compared with the catalog{'' if vs.get('exact') else ', approximately'})" \
                if "compared" in vs else ""
            parquet = f" ({vs['in_parquet']} in Parquet files)" if vs.get("in_parquet") else ""
            print(f"{vs['model']}/{vs['modality']}: {vs['vectors']} vectors of dim {vs['dim']}{parquet}{compared}")
        for p in report.problems:
            where = f"{p.model}/{p.modality}: " if p.model else ""
            state = " [repaired]" if p.repaired else ""
            print(f"{p.severity}: {where}{p.kind}: {p.detail}{state}")
        print(f"{'ok' if report.ok else 'problems remain'} (catalog generation {report.generation})")
    return 0 if report.ok else EXIT_DAMAGED if report.damaged else EXIT_PROBLEMS
