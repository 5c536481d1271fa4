"""Predicted loads on the newest torch, as the survey runs them and the report splits them.

``survey run`` predicts every wheel's loading against one release (:func:`default_release`:
the newest the stable-ABI table and the release-exports data both hold a build of for every
platform), as ``--torch-version`` does: each library against the index's default build of that
release *for its own platform* (Linux x86_64: a CUDA build; macOS arm64; Windows x64: CPU).

The report then puts each wheel that uses torch in one category (:func:`load_category`): its
verdict (stable or unstable) and what the prediction says — it ``loads``, ``fails`` or is
``unknown`` (the data cannot tell) — unless its ``Requires-Dist: torch`` excludes the release
(``pinned elsewhere``: pip never installs the two together, so the prediction is moot). For the
wheels that fail or cannot be told, :func:`load_reasons` says why, from the load predictions the
stored ``--json`` document holds (:func:`stored_loads`, parsed once per row); :func:`judged_builds`
says which builds a wheel was judged against.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from torch_abi_audit.report import TorchVerdict
from torch_abi_audit.rules.load_prediction import LoadStatus

STABLE = str(TorchVerdict.STABLE)
UNSTABLE = str(TorchVerdict.UNSTABLE)

#: The outcomes of a prediction against a release (``tied-to-build``: rows of schema 1.6 and
#: older, when unstable libraries were not judged against a release's build).
PREDICTED = (str(LoadStatus.LOADS), str(LoadStatus.FAILS), str(LoadStatus.UNKNOWN))
PINNED_ELSEWHERE = "pinned elsewhere"
NO_PREDICTION = "no prediction"
#: What rows stored before release builds were judged are split by: their metadata alone.
LEGACY = ("admits it", "no torch requirement")

#: Every category, in the report's order.
CATEGORIES = tuple(
    f"{kind}, {outcome}"
    for kind, outcomes in (
        ("stable", (*PREDICTED, PINNED_ELSEWHERE, NO_PREDICTION)),
        ("unstable", (*PREDICTED, PINNED_ELSEWHERE, *LEGACY, NO_PREDICTION)),
    )
    for outcome in outcomes
)


def default_release() -> str:
    """The release ``survey run`` predicts loading on unless told: the newest release the
    stable-ABI table knows and the release-exports data holds a build of for every platform it
    covers (so every wheel is judged against its own platform's build); the table's newest
    when the data cannot be read."""
    from torch_abi_audit.rules.release_exports import ReleaseExportsError, load_release_exports
    from torch_abi_audit.rules.torch_table import load_table

    table = load_table()
    try:
        data = load_release_exports()
    except ReleaseExportsError:
        return str(table.newest)
    platforms = {build.platform for build in data.builds}
    complete = [
        Version(release)
        for release in table.releases
        if all(data.build(platform, Version(release)) for platform in platforms)
    ]
    return str(max(complete)) if complete else str(table.newest)


def admits(requirements: str | None, release: str) -> bool | None:
    """Whether ``Requires-Dist: torch`` entries (``'; '``-joined, as stored) let pip install
    torch ``release`` beside the wheel; ``None`` when the wheel declares no (valid) torch
    requirement — installers drop an invalid one, so none is in effect."""
    specifier = SpecifierSet()
    found = False
    for text in (requirements or "").split("; "):
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) == "torch":
            specifier &= requirement.specifier
            found = True
    return specifier.contains(release, prereleases=True) if found else None


def load_category(
    verdict: str, status: str | None, requirements: str | None, release: str | None
) -> str:
    """The report's category (one of :data:`CATEGORIES`) of a wheel that uses torch, whose
    prediction on ``release`` is ``status``.

    ``stable|unstable, loads|fails|unknown`` from the prediction, unless the wheel's
    ``Requires-Dist`` excludes the release (``…, pinned elsewhere``). Rows stored before
    unstable libraries were judged against a release's build (``tied-to-build``) are split
    by their metadata alone (``unstable, admits it`` / ``unstable, no torch requirement``).
    """
    kind = "stable" if verdict == STABLE else "unstable"
    if release is None or status is None:
        return f"{kind}, {NO_PREDICTION}"
    allowed = admits(requirements, release)
    if allowed is False:
        return f"{kind}, {PINNED_ELSEWHERE}"
    if status in PREDICTED:
        return f"{kind}, {status}"
    return f"{kind}, {LEGACY[1] if allowed is None else LEGACY[0]}"


def release_of(load_against: str | None) -> str | None:
    """The release in a stored ``load_against`` label (``torch 2.15.0`` -> ``2.15.0``)."""
    return load_against.rsplit(maxsplit=1)[-1] if load_against else None


def stored_loads(report_json: bytes | None) -> tuple[Mapping[str, Any], ...]:
    """The load predictions of every library in a stored, compressed ``--json`` document
    (empty when nothing was stored): what :func:`judged_builds` and :func:`load_reasons` read,
    decompressed and parsed once per row."""
    if not report_json:
        return ()
    document = json.loads(zlib.decompress(report_json))
    return tuple(
        load
        for group in ("extensions", "bundled_libs", "executables")
        for library in document.get(group) or ()
        if isinstance(load := library.get("load"), dict)
    )


def judged_builds(loads: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The builds a wheel's libraries were judged against (``torch 2.15.0+cu132
    (linux_x86_64)``), sorted, from its :func:`stored_loads`; empty for rows stored before
    builds were recorded."""
    return tuple(sorted({str(load["build"]) for load in loads if load.get("build")}))


#: Why a library fails or cannot be told, from the fields of its load prediction.
REASONS = (
    ("missing_libraries", "needs torch or CUDA libraries the build does not install"),
    ("newer_shims", "imports shims newer than the release"),
    ("removed_shims", "imports shims the release removed"),
    ("cxx11_abi_mismatch", "built for the other libstdc++ string ABI"),
    ("undefined_symbols", "imports libtorch symbols the build does not export"),
    ("undecided_symbols", "imports symbols the release data does not record"),
    ("undecided_libraries", "needs libraries the release data cannot place"),
    ("failed_dependencies", "needs a library of its own package that does not load"),
)
UNKNOWN_DEPENDENCY = "needs a library of its own package that may not load"
NO_BUILD = "the release data holds no build of its platform"
OTHER = "other (the libraries' load messages say)"
# How a load message says that a library is unknown only through one of its package's
# libraries (load_prediction keeps no field for it, as it does for failed dependencies).
_MAY_NOT_LOAD = "(bundled), which may not load"


def _reasons_of(load: Mapping[str, Any]) -> set[str]:
    shims = {*(load.get("newer_shims") or ()), *(load.get("removed_shims") or ())}
    found = set()
    for field, reason in REASONS:
        values = load.get(field) or ()
        if field == "undefined_symbols":  # the shims among them are said above
            values = [name for name in values if name not in shims]
        if values:
            found.add(reason)
    if found:
        return found
    if not load.get("build"):
        return {NO_BUILD}
    return {UNKNOWN_DEPENDENCY if _MAY_NOT_LOAD in str(load.get("message")) else OTHER}


def load_reasons(loads: Sequence[Mapping[str, Any]], status: str) -> tuple[str, ...]:
    """Why the libraries of a wheel whose prediction is ``status`` (``fails`` or ``unknown``)
    have that status (each reason once, in :data:`REASONS` order), from its
    :func:`stored_loads`; empty when none has or nothing was recorded."""
    found: set[str] = set()
    for load in loads:
        if load.get("status") == status:
            found |= _reasons_of(load)
    order = [reason for _, reason in REASONS] + [UNKNOWN_DEPENDENCY, NO_BUILD, OTHER]
    return tuple(sorted(found, key=order.index))
