#!/usr/bin/env python3
"""Generate ``src/torch_abi_audit/data/cpython_stable_abi.json`` from the installed abi3info.

The file is never edited by hand: re-run this script after abi3info changes.

    python scripts/generate_cpython_abi_data.py            # from the installed abi3info
    python scripts/generate_cpython_abi_data.py --check    # exit 1 if the file differs

What belongs to the CPython stable ABI, and from which Python version, is abi3info's word (it is
generated from CPython's ``Misc/stable_abi.toml``). Importing abi3info costs ~30 ms, and every
process that judges CPython imports needs its tables: each worker of an environment scan, the
process that audits a small wheel. The file holds the two tables the audit reads (every function
and data symbol with the version that stabilised it; the structs abi3t makes opaque), where they
came from (abi3info's version, the SHA-256 of its tables file) and the fingerprint the audit
compares with the installed abi3info before using them (size and CRC-32 of that file: cheap to
compute at every start). With another abi3info installed, the audit reads abi3info itself
(:func:`torch_abi_audit.rules.cpython_abi.tables_from_abi3info`, which this script also uses):
the copy can be stale, never wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from torch_abi_audit.rules.cpython_abi import (  # noqa: E402
    ABI3INFO_TABLES,
    DATA_FILE,
    abi3info_fingerprint,
    tables_from_abi3info,
)

OUTPUT = REPO / "src" / "torch_abi_audit" / "data" / DATA_FILE
GENERATED_BY = "scripts/generate_cpython_abi_data.py"
FORMAT_VERSION = 1


def build() -> dict[str, Any]:
    """The document, from the installed abi3info. Raises :class:`RuntimeError` when its tables
    file cannot be read as a file (an abi3info installed as a zip)."""
    fingerprint = abi3info_fingerprint()
    if fingerprint is None:
        raise RuntimeError(f"cannot read abi3info/{ABI3INFO_TABLES} as a file")
    import abi3info

    tables = Path(abi3info.__file__).with_name(ABI3INFO_TABLES).read_bytes()
    symbols, opaque = tables_from_abi3info()
    return {
        "format_version": FORMAT_VERSION,
        "generated_by": GENERATED_BY,
        "source": {
            "package": f"abi3info {version('abi3info')}",
            "sha256": {f"abi3info/{ABI3INFO_TABLES}": hashlib.sha256(tables).hexdigest()},
            "fingerprint": fingerprint,
        },
        "note": (
            "Generated from abi3info's tables; do not edit by hand. The audit uses them only "
            "while the installed abi3info matches source.fingerprint, else it reads abi3info."
        ),
        "symbols": dict(sorted(symbols.items())),
        "opaque_in_abi3t": list(opaque),
    }


def render(document: dict[str, Any]) -> str:
    """The file's text: one symbol per line."""
    return json.dumps(document, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write")
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the output would change"
    )
    args = parser.parse_args(argv)
    try:
        document = build()
    except (RuntimeError, ImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render(document)
    source = document["source"]["package"]
    if args.check:
        up_to_date = args.output.is_file() and args.output.read_text(encoding="utf-8") == text
        if up_to_date:
            print(f"{args.output} is up to date ({source})")
        else:
            print(f"{args.output} is out of date: run {GENERATED_BY}", file=sys.stderr)
        return 0 if up_to_date else 1
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
