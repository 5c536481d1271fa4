#!/usr/bin/env python3
"""Generate ``src/torch_abi_audit/data/manylinux_policy.json`` from auditwheel's policy files.

The file is never edited by hand: re-run this script to update it.

    python scripts/generate_manylinux_policy.py                 # from auditwheel AUDITWHEEL
    python scripts/generate_manylinux_policy.py --check         # exit 1 if the file differs
    python scripts/generate_manylinux_policy.py --auditwheel 6.9.0 --output /tmp/policy.json

What a ``manylinux_X_Y`` or ``musllinux_X_Y`` tag allows is what pypa/auditwheel's published
policy says (PEP 600 / PEP 656 leave it to the reference tool): per policy and architecture,
the symbol versions a library may require from the system's libraries (``GLIBC_2.17``,
``GLIBCXX_3.4.19``, ``CXXABI_1.3.7``, ``GCC_4.8.0``…). The script fetches the auditwheel wheel
of release ``--auditwheel`` with the project's one downloader (``pip download --no-deps``, into
the shared cache), reads ``auditwheel/policy/manylinux-policy.json`` and
``musllinux-policy.json`` from it in place, and writes, per policy: its name, aliases, libc and
libc version (from the name), priority and ``symbol_versions``, plus where it all came from
(the wheel and the SHA-256 of each policy file). The generic ``linux`` policy (which allows
anything and cannot be uploaded to PyPI) is left out. Nothing is ever imported from auditwheel.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from torch_abi_audit.sources.index import DownloadError, fetch_wheel  # noqa: E402
from torch_abi_audit.sources.wheels import WheelArchive, WheelError  # noqa: E402

OUTPUT = REPO / "src" / "torch_abi_audit" / "data" / "manylinux_policy.json"
GENERATED_BY = "scripts/generate_manylinux_policy.py"
FORMAT_VERSION = 1
#: The auditwheel release the shipped file comes from.
AUDITWHEEL = "6.8.2"
POLICY_FILES = {
    "glibc": "auditwheel/policy/manylinux-policy.json",
    "musl": "auditwheel/policy/musllinux-policy.json",
}
_NAME = re.compile(r"(manylinux|musllinux)_(\d+)_(\d+)")


class PolicyError(Exception):
    """The policy file does not have the shape this script knows."""


def _policy(entry: dict[str, Any], libc: str) -> dict[str, Any] | None:
    name = entry.get("name")
    if name == "linux":
        return None
    match = _NAME.fullmatch(str(name))
    if match is None or {"manylinux": "glibc", "musllinux": "musl"}[match[1]] != libc:
        raise PolicyError(f"unexpected policy name {name!r} in the {libc} policy file")
    versions = entry.get("symbol_versions")
    if not isinstance(versions, dict):
        raise PolicyError(f"{name}: symbol_versions is not an object")
    return {
        "name": name,
        "aliases": sorted(entry.get("aliases", [])),
        "libc": libc,
        "libc_version": [int(match[2]), int(match[3])],
        "priority": int(entry["priority"]),
        "symbol_versions": {
            arch: {prefix: list(found) for prefix, found in sorted(prefixes.items())}
            for arch, prefixes in sorted(versions.items())
        },
    }


def build(wheel: Path) -> dict[str, Any]:
    """The policy document from the auditwheel wheel at ``wheel``."""
    policies: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    with WheelArchive(wheel) as archive:
        for libc, member in POLICY_FILES.items():
            text = archive.read_text(member)
            sources[member] = hashlib.sha256(text.encode()).hexdigest()
            for entry in json.loads(text):
                found = _policy(entry, libc)
                if found is not None:
                    policies.append(found)
    policies.sort(key=lambda p: (p["libc"], p["libc_version"]))
    return {
        "format_version": FORMAT_VERSION,
        "generated_by": GENERATED_BY,
        "source": {"wheel": wheel.name, "sha256": sources},
        "note": "Generated from pypa/auditwheel's policy files; do not edit by hand.",
        "policies": policies,
    }


def render(document: dict[str, Any]) -> str:
    """The file's text: the header indented, then one line per policy and architecture (a new
    policy or a new version shows as a line of its own in a diff)."""
    head = {key: value for key, value in document.items() if key != "policies"}
    lines = [json.dumps(head, indent=1)[:-2] + ',\n "policies": [']
    blocks = []
    for policy in document["policies"]:
        fields = {key: value for key, value in policy.items() if key != "symbol_versions"}
        arches = [
            f"   {json.dumps(arch)}: {json.dumps(versions, separators=(',', ':'))}"
            for arch, versions in policy["symbol_versions"].items()
        ]
        blocks.append(
            "  "
            + json.dumps(fields)[:-1]
            + ', "symbol_versions": {\n'
            + ",\n".join(arches)
            + "\n  }}"
        )
    lines.append(",\n".join(blocks))
    lines.append(" ]\n}\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--auditwheel", default=AUDITWHEEL, help="auditwheel release to read")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write")
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the output would change"
    )
    args = parser.parse_args(argv)
    try:
        wheel = fetch_wheel("auditwheel", args.auditwheel)
        text = render(build(wheel))
    except (DownloadError, WheelError, PolicyError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        return check(args.output, text, wheel.name)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} from {wheel.name}")
    return 0


def check(output: Path, text: str, source: str) -> int:
    """0 when ``output`` holds ``text`` already, else 1 (and says so)."""
    up_to_date = output.is_file() and output.read_text(encoding="utf-8") == text
    if up_to_date:
        print(f"{output} is up to date ({source})")
    else:
        print(f"{output} is out of date: run {GENERATED_BY}", file=sys.stderr)
    return 0 if up_to_date else 1


if __name__ == "__main__":
    sys.exit(main())
