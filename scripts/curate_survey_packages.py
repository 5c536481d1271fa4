"""Derive the survey's list of torch extension packages from the index, never by hand.

Candidates: the projects among PyPI's most downloaded (a TSV of ``name, version, month, rank,
summary`` rows, such as the package list this project's machines carry; only ranked rows count)
whose name or summary matches ``--pattern``. Each candidate is then judged on what the index
and its binaries say, on the newest final release that has wheels:

* it **ships compiled libraries**: some wheel is tagged for a platform (not ``any``);
* and it **is built on torch**: its ``Requires-Dist`` names ``torch`` (read from the index's
  metadata), or — many extensions leave torch undeclared so that users pick its build — the
  libraries in its smallest platform wheel import from libtorch (that wheel is fetched with the
  downloader behind ``--download`` and audited with this project's own API, then deleted).

torch itself is not an extension of torch. The result is written as JSON with how it was made,
the evidence per package, and every rejected candidate with the reason:

    python scripts/curate_survey_packages.py --top-packages PATH/pypi.tsv
    python scripts/curate_survey_packages.py --top-packages PATH/pypi.tsv --output other.json
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import re
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from torch_abi_audit.audit import inspect_targets
from torch_abi_audit.report import TorchVerdict
from torch_abi_audit.sources.index import default_cache, download
from torch_abi_audit.survey.curated import CURATED_FILE

DEFAULT_PATTERN = r"torch|cuda|kernel|attention|triton|gpu|transformer|llm|quantiz|optimizer"
#: Wheels larger than this are not fetched to look for libtorch imports.
MAX_AUDIT_BYTES = 150_000_000
_JSON_API = "https://pypi.org/pypi/{name}/json"


@dataclass(frozen=True)
class Candidate:
    """A project from the most-downloaded list that matches the pattern."""

    name: str
    rank: int
    summary: str


def read_candidates(path: Path, pattern: str) -> list[Candidate]:
    """Ranked rows whose name or summary matches ``pattern`` (case-insensitive), by rank."""
    matcher = re.compile(pattern, re.IGNORECASE)
    found = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            rank_text = (row.get("rank_among_15000_most_downloaded") or "").strip()
            if not rank_text.isdigit():
                continue
            name, summary = row["name"], row.get("summary") or ""
            if matcher.search(name) or matcher.search(summary):
                found.append(Candidate(canonicalize_name(name), int(rank_text), summary))
    return sorted(found, key=lambda c: c.rank)


def _project_json(name: str, cache: Path | None) -> dict[str, Any] | None:
    cached = cache / f"{name}.json" if cache else None
    if cached is not None and cached.is_file():
        stored: dict[str, Any] = json.loads(cached.read_text(encoding="utf-8"))
        return stored
    request = urllib.request.Request(
        _JSON_API.format(name=name), headers={"User-Agent": "torch-abi-audit curation script"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            document: dict[str, Any] = json.load(response)
    except OSError:
        return None
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(document), encoding="utf-8")
    return document


def _platforms(filename: str) -> set[str]:
    try:
        return {tag.platform for tag in parse_wheel_filename(filename)[3]}
    except InvalidWheelFilename:
        return set()


def _newest_with_wheels(releases: dict[str, list[dict[str, Any]]]) -> tuple[str, list[Any]]:
    """The newest final release with wheels (a pre-release only when there is no final one,
    as pip chooses)."""
    ordered = []
    for text, files in releases.items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        wheels = [f for f in files if f["filename"].endswith(".whl") and not f.get("yanked")]
        if wheels:
            final = not (version.is_prerelease or version.is_devrelease)
            ordered.append((final, version, text, wheels))
    if not ordered:
        return "", []
    _, _, text, wheels = max(ordered)
    return text, wheels


def _torch_requirements(requires: Sequence[str] | None) -> list[str]:
    found = []
    for text in requires or ():
        try:
            if canonicalize_name(Requirement(text).name) == "torch":
                found.append(text)
        except InvalidRequirement:
            continue
    return found


def _audit_smallest(name: str, version: str, wheels: list[dict[str, Any]]) -> tuple[str, str]:
    """(verdict, wheel) of the smallest platform wheel, or ("", reason)."""
    platform = [w for w in wheels if _platforms(w["filename"]) - {"any"}]
    smallest = min(platform, key=lambda w: w.get("size") or 0)
    if (smallest.get("size") or 0) > MAX_AUDIT_BYTES:
        return "", f"smallest platform wheel is {smallest['size'] / 1e6:.0f} MB: not fetched"
    tags = parse_wheel_filename(smallest["filename"])[3]
    tag = next(iter(sorted(tags, key=str)))
    python = f"3.{tag.interpreter[3:]}" if re.fullmatch(r"cp3\d+", tag.interpreter) else None
    with tempfile.TemporaryDirectory() as directory:
        fetched = download(f"{name}=={version}", [tag.platform], python, Path(directory))[0]
        if fetched.wheel is None:
            return (
                "",
                f"could not fetch {smallest['filename']}: {fetched.error or fetched.unavailable}",
            )
        report = inspect_targets([fetched.wheel], jobs=1, predict_loads=False)[0]
        return str(report.torch_verdict), fetched.wheel.name


def judge(candidate: Candidate, cache: Path | None) -> tuple[dict[str, Any] | None, str]:
    """The curated entry for a candidate, or ``None`` and why it is left out."""
    if candidate.name == "torch":
        return None, "torch itself"
    document = _project_json(candidate.name, cache)
    if document is None:
        return None, "not on the index"
    version, wheels = _newest_with_wheels(document.get("releases") or {})
    if not wheels:
        return None, "no wheels (source distributions only)"
    platforms = sorted(set().union(*(_platforms(w["filename"]) for w in wheels)) - {"any"})
    if not platforms:
        return None, f"pure Python ({version}: py3-none-any wheels only)"
    info = document.get("info") or {}
    requirements = _torch_requirements(info.get("requires_dist"))
    entry: dict[str, Any] = {
        "name": candidate.name,
        "rank": candidate.rank,
        "release": version,
        "requires_torch": "; ".join(requirements) or None,
        "platforms": platforms,
        "wheels": len(wheels),
    }
    if requirements:
        entry["evidence"] = "Requires-Dist names torch; platform wheels"
        return entry, ""
    verdict, detail = _audit_smallest(candidate.name, version, wheels)
    if verdict in (TorchVerdict.STABLE, TorchVerdict.UNSTABLE):
        entry["evidence"] = f"libraries import from libtorch ({verdict}, {detail})"
        return entry, ""
    return None, detail if not verdict else f"no torch requirement, libraries {verdict} ({detail})"


def curate(
    candidates: list[Candidate], source: str, pattern: str, cache: Path | None
) -> dict[str, Any]:
    """The curated-list document."""
    packages, rejected = [], []
    for number, candidate in enumerate(candidates, 1):
        entry, reason = judge(candidate, cache)
        if entry is not None:
            packages.append(entry)
            print(f"[{number}/{len(candidates)}] + {candidate.name}: {entry['evidence']}")
        else:
            rejected.append({"name": candidate.name, "rank": candidate.rank, "reason": reason})
            print(f"[{number}/{len(candidates)}] - {candidate.name}: {reason}")
    return {
        "generated_by": "scripts/curate_survey_packages.py",
        "generated_at": datetime.date.today().isoformat(),
        "how": (
            "Candidates: projects ranked among PyPI's 15,000 most downloaded whose name or "
            f"summary matches /{pattern}/i ({source}). Kept: the newest final release with "
            "wheels has a platform-specific wheel (it ships compiled libraries) and either its "
            "Requires-Dist names torch (PyPI's JSON metadata) or the libraries of its smallest "
            "platform wheel import from libtorch (fetched with pip, audited with "
            "torch-abi-audit). Not edited by hand: rerun the script to refresh."
        ),
        "candidates": len(candidates),
        "packages": sorted(packages, key=lambda p: p["name"]),
        "rejected": sorted(rejected, key=lambda r: r["name"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top-packages", type=Path, required=True, metavar="TSV")
    parser.add_argument("--pattern", default=DEFAULT_PATTERN)
    parser.add_argument("--output", type=Path, default=CURATED_FILE)
    parser.add_argument(
        "--cache",
        type=Path,
        default=default_cache().parent / "curation",
        help="where the index's answers are kept between runs (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    candidates = read_candidates(args.top_packages, args.pattern)
    document = curate(candidates, args.top_packages.name, args.pattern, args.cache)
    args.output.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"{len(document['packages'])} packages of {len(candidates)} candidates -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
