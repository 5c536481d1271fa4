"""What the index said when pip fetched nothing: a typo, a missing release, or a missing build.

``pip download`` answers "Could not find a version that satisfies the requirement" alike for a
project the index does not have (``torchaudioo``), a version it never released, and a release
that has no wheel for the requested platform or Python. Only the last is an answer about the
package ("not available"); the others are mistakes in the request, and a gate that passed on
them would pass on a typo. pip's verbose log (``-vv``) lists every file the index offered, with
the reason it skipped each; the file names tell which case it is.

Platform tags are checked before pip runs: pip takes any string as ``--platform`` and simply
finds nothing for a misspelt one. Only imported with ``--download`` (it loads ``packaging``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from urllib.parse import unquote

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

# Architectures each platform family's tags use (PEP 600/656 manylinux/musllinux and the
# legacy manylinux1/2010/2014 and linux_ tags, as auditwheel's policies and packaging.tags
# spell them; macOS as packaging.tags._mac_binary_formats).
_LINUX_ARCHES = (
    "x86_64",
    "i686",
    "aarch64",
    "armv7l",
    "armv6l",
    "ppc64",
    "ppc64le",
    "s390x",
    "riscv64",
    "loongarch64",
)
_MAC_ARCHES = (
    "arm64",
    "x86_64",
    "i386",
    "ppc",
    "ppc64",
    "universal2",
    "universal",
    "intel",
    "fat",
    "fat3",
    "fat32",
    "fat64",
)
_WINDOWS = ("win32", "win_amd64", "win_arm64", "win_ia64")
_ANDROID_ABIS = ("arm64_v8a", "armeabi_v7a", "x86_64", "x86")
_FAMILIES: tuple[tuple[re.Pattern[str], tuple[str, ...], str], ...] = (
    (re.compile(r"(?:manylinux|musllinux)_\d+_\d+_(?P<arch>.+)"), _LINUX_ARCHES, "Linux"),
    (re.compile(r"manylinux(?:1|2010|2014)_(?P<arch>.+)"), _LINUX_ARCHES, "Linux"),
    (re.compile(r"linux_(?P<arch>.+)"), _LINUX_ARCHES, "Linux"),
    (re.compile(r"macosx_(?:1\d|[2-9]\d)_\d+_(?P<arch>.+)"), _MAC_ARCHES, "macOS"),
    (re.compile(r"ios_\d+_\d+_(?P<arch>.+)_iphone(?:os|simulator)"), ("arm64", "x86_64"), "iOS"),
    (re.compile(r"android_\d+_(?P<arch>.+)"), _ANDROID_ABIS, "Android"),
    (re.compile(r"(?:pyodide_\d{4}_\d+|emscripten_\d+_\d+_\d+)_(?P<arch>.+)"), ("wasm32",), "wasm"),
)
_EXAMPLES = "manylinux_2_28_x86_64, musllinux_1_2_aarch64, macosx_11_0_arm64, win_amd64 or any"


def platform_tag_problem(tag: str) -> str | None:
    """Why ``tag`` is not a wheel platform tag pip could match, or ``None`` when it is one."""
    if tag == "any" or tag in _WINDOWS:
        return None
    for pattern, arches, family in _FAMILIES:
        match = pattern.fullmatch(tag)
        if match is None:
            continue
        arch = match.group("arch")
        if arch in arches:
            return None
        close = difflib.get_close_matches(arch, arches, n=1)
        hint = f" (did you mean {tag[: match.start('arch')]}{close[0]}?)" if close else ""
        return f"{arch!r} is not a {family} architecture of wheel tags{hint}"
    close = difflib.get_close_matches(tag, _WINDOWS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else f" (e.g. {_EXAMPLES})"
    return f"not a wheel platform tag{hint}"


# A distribution file named in pip's log: the last path part of a link, before any fragment.
_LINK = re.compile(
    r"(?:https?|file)://\S*?/([^/\s#?]+?\.(?:whl|tar\.gz|zip|tar\.bz2))(?=[\s#?),]|$)"
)
_FETCH_FAILED = re.compile(r"Could not fetch URL (\S+?): (.+?)(?: - skipping)?$", re.MULTILINE)


@dataclass(frozen=True)
class IndexAnswer:
    """What a failed ``pip download`` means: exactly one of ``error`` (the request names
    nothing the index has) and ``unavailable`` (the release exists, without a wheel for the
    platform or Python asked for)."""

    error: str | None = None
    unavailable: str | None = None


def pip_errors(output: str) -> str:
    """The ``ERROR:`` lines of pip's output, joined (empty when it printed none): its own words
    for what went wrong, without the log and traceback ``-vv`` adds."""
    errors = [line.strip() for line in output.splitlines() if line.startswith("ERROR:")]
    return " / ".join(line.removeprefix("ERROR:").strip() for line in errors)


def _pip_reason(output: str) -> tuple[str, bool]:
    """pip's first error line, with why it could not read the index if it says so; and
    whether the index was unreachable (rather than answering "not found")."""
    errors = pip_errors(output).split(" / ")
    reason = errors[0] or "pip found no distribution"
    fetch = _FETCH_FAILED.search(output)
    if fetch is None:
        return reason, False
    failure = fetch.group(2).strip()
    return f"{reason} ({failure})", " 404 " not in f" {failure} "


def _offered(output: str, project: str) -> dict[str, set[str]]:
    """Version -> platform tags of the project's files that pip's log names (``none`` for an
    sdist, which ``--only-binary`` never takes)."""
    offered: dict[str, set[str]] = {}
    for match in _LINK.finditer(output):
        filename = unquote(match.group(1))
        try:
            if filename.endswith(".whl"):
                name, version, _build, tags = parse_wheel_filename(filename)
                platforms = {tag.platform for tag in tags}
            else:
                name, version = parse_sdist_filename(filename)
                platforms = set()
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
        if canonicalize_name(name) == project:
            offered.setdefault(str(version), set()).update(platforms)
    return offered


def explain_not_found(
    output: str, spec: str, platform: str | None, python_version: str | None
) -> IndexAnswer:
    """Read pip's ``-vv`` log of a download that found nothing for ``spec``.

    No file of the project at all: the index has no such project (an error, with pip's
    reason). Files, but none of a version ``spec`` admits: no such release (an error). A
    release ``spec`` admits whose files suit another platform or Python: not available.
    """
    reason, unreachable = _pip_reason(output)
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        return IndexAnswer(error=f"not a requirement: {exc}")
    project = canonicalize_name(requirement.name)
    offered = _offered(output, project)
    if not offered:
        if unreachable:
            return IndexAnswer(error=f"could not read the index for {requirement.name}: {reason}")
        return IndexAnswer(error=f"the index has no project named {requirement.name}: {reason}")
    matching = []
    for text, platforms in offered.items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if requirement.specifier.contains(version, prereleases=True):
            matching.append((version, platforms))
    if not matching:
        newest = sorted(offered, key=_sort_key, reverse=True)[:5]
        return IndexAnswer(
            error=f"{requirement.name} has no release matching {requirement.specifier} on the "
            f"index (newest: {', '.join(newest)}): {reason}"
        )
    version, platforms = max(matching, key=lambda item: item[0])
    wanted = f"platform {platform}" if platform else "this interpreter"
    if python_version:
        wanted += f", Python {python_version}"
    built = f" (its wheels: {', '.join(sorted(platforms))})" if platforms else " (no wheels at all)"
    return IndexAnswer(
        unavailable=f"the index has no wheel for {wanted}: {requirement.name} {version}{built}"
    )


def _sort_key(text: str) -> tuple[int, Version | None, str]:
    try:
        return (1, Version(text), text)
    except InvalidVersion:
        return (0, None, text)
