"""Fetch wheels from the package index with the ordinary pip client, into one cache.

``pip download --no-deps --only-binary :all:`` does the resolving, the index access and the
caching rules users already trust; this module only runs it and reads which wheel it saved.
It is the one downloader of the project: the CLI's ``--download``, the scripts that generate
data from torch releases, the tests' real wheels and the benchmarks all fetch through it, into
the same cache (:func:`default_cache`).

Two entry points:

- :func:`download` (``--download``): one pip run per requested platform. A release without a
  wheel for a requested platform is an answer (``unavailable``), not an error of the audit; a
  project or release the index does not have, or a malformed platform tag, is an error
  (:mod:`torch_abi_audit.sources.index_answers` tells them apart from pip's verbose log).
- :func:`fetch_wheel` (scripts, tests, benchmarks): one pinned release for a set of platforms;
  a wheel already in the cache whose tags fit is used without asking the index at all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch_abi_audit.progress import NO_PROGRESS, Progress

if TYPE_CHECKING:
    from packaging.tags import Tag

#: Environment variable that moves the cache.
CACHE_VARIABLE = "TORCH_ABI_AUDIT_CACHE"
_SAVED = re.compile(r"^\s*(?:Saved|File was already downloaded)\s+(?P<path>.+\.whl)\s*$", re.M)
_NOT_FOUND = (
    "No matching distribution found",
    "Could not find a version that satisfies",
)
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
_MACOS = re.compile(r"macosx_(\d+)_(\d+)_(\w+)")
# PEP 600: the legacy manylinux tags are aliases of these glibc versions.
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def cache_root() -> Path:
    """The project's cache: ``$TORCH_ABI_AUDIT_CACHE`` or ``~/.cache/torch-abi-audit``.

    Wheels live in its ``wheels`` folder (:func:`default_cache`); the benchmarks keep their
    virtual environments in ``bench``.
    """
    base = os.environ.get(CACHE_VARIABLE)
    return Path(base) if base else Path.home() / ".cache" / "torch-abi-audit"


def file_sha256(path: Path) -> str:
    """The sha256 of a file (hex), read in 1 MiB chunks: what an index lists for a wheel."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache() -> Path:
    """Where downloaded wheels are kept: ``$TORCH_ABI_AUDIT_CACHE/wheels`` or
    ``~/.cache/torch-abi-audit/wheels``."""
    return cache_root() / "wheels"


class DownloadError(Exception):
    """pip could not fetch the wheel asked for (the message says why, in pip's last words)."""


@dataclass(frozen=True)
class Download:
    """The outcome of fetching one requirement for one platform.

    Exactly one of ``wheel`` (the file in the cache), ``unavailable`` (the index has no wheel
    that matches) and ``error`` (pip failed otherwise) is set.
    """

    spec: str
    platform: str | None
    wheel: Path | None = None
    unavailable: str | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        """``spec`` or ``spec [platform]``, as reports name it."""
        return f"{self.spec} [{self.platform}]" if self.platform else self.spec


def pip_command(
    spec: str,
    destination: Path,
    platform: str | Sequence[str] | None,
    python_version: str | None,
    *,
    verbose: bool = False,
) -> list[str]:
    """The ``pip download`` command line for one requirement and one or more platforms
    (``verbose``: with pip's ``-vv`` log, which names every file the index offered)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--dest",
        str(destination),
    ]
    if verbose:
        command.append("-vv")
    platforms = [platform] if isinstance(platform, str) else list(platform or ())
    return [*command, *_target_options(platforms, python_version), spec]


def _target_options(platforms: Sequence[str], python_version: str | None) -> list[str]:
    """pip's options for the wheels of ``platforms`` and ``python_version`` (none: this
    interpreter's), without pip's own version check."""
    options = ["--disable-pip-version-check"]
    for tag in platforms:
        options += ["--platform", tag]
    if python_version:
        options += ["--python-version", python_version]
    return options


#: The longest a pip call may take (seconds).
PIP_TIMEOUT = 3600


def run_pip(
    command: list[str],
    *,
    unconstrained: bool = False,
    progress: Progress = NO_PROGRESS,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a pip command line, capturing its output (``progress`` ticks while it runs).

    ``unconstrained`` hides the site's pip configuration (``PIP_CONFIG_FILE=/dev/null``): a
    machine may cap releases with a constraints file, and a script reading every torch release
    must see the index as it is. ``env`` adds to (or overrides) this process's environment for
    pip alone. Raises :class:`OSError` or :class:`subprocess.TimeoutExpired` when pip cannot
    be run.
    """
    child = None
    if env or unconstrained:
        child = {**os.environ, **(env or {})}
        if unconstrained:
            child["PIP_CONFIG_FILE"] = os.devnull
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child
    ) as process:
        waited = 0.0
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:  # still running: output so far is kept
                waited += 0.2
                progress.tick()
                if waited >= PIP_TIMEOUT:
                    process.kill()
                    raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "no output"


def _saved_wheel(stdout: str, destination: Path) -> Path | None:
    saved = [Path(m.group("path").strip()) for m in _SAVED.finditer(stdout)]
    wheel = next((p if p.is_absolute() else destination / p.name for p in saved), None)
    return wheel if wheel is not None and wheel.is_file() else None


def download(
    spec: str,
    platforms: Sequence[str] = (),
    python_version: str | None = None,
    cache: Path | None = None,
    progress: Progress = NO_PROGRESS,
    *,
    env: Mapping[str, str] | None = None,
) -> list[Download]:
    """Fetch ``spec`` once per platform (or once for this interpreter when none is given);
    ``env``: variables set for pip (:func:`run_pip`)."""
    from torch_abi_audit.sources.index_answers import (
        explain_not_found,
        pip_errors,
        platform_tag_problem,
    )

    destination = cache or default_cache()
    destination.mkdir(parents=True, exist_ok=True)
    results = []
    requested: list[str | None] = list(platforms) or [None]
    for platform in requested:
        problem = platform_tag_problem(platform) if platform else None
        if problem is not None:
            results.append(Download(spec, platform, error=f"--platform {platform}: {problem}"))
            continue
        command = pip_command(spec, destination, platform, python_version, verbose=True)
        progress.start(f"fetching {spec}" + (f" for {platform}" if platform else ""))
        try:
            completed = run_pip(command, progress=progress, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            results.append(Download(spec, platform, error=f"could not run pip: {exc}"))
            continue
        output = completed.stdout + "\n" + completed.stderr
        if completed.returncode == 0:
            wheel = _saved_wheel(completed.stdout, destination)
            if wheel is None:
                results.append(
                    Download(spec, platform, error=f"pip saved no wheel ({_last_lines(output)})")
                )
            else:
                results.append(Download(spec, platform, wheel=wheel))
        elif any(marker in output for marker in _NOT_FOUND):
            answer = explain_not_found(output, spec, platform, python_version)
            results.append(
                Download(spec, platform, unavailable=answer.unavailable, error=answer.error)
            )
        elif "No module named pip" in output:
            results.append(
                Download(
                    spec,
                    platform,
                    error=f"pip is not installed in this interpreter ({sys.executable}); "
                    "torch-abi-audit depends on pip: reinstall it with its dependencies",
                )
            )
        else:
            reason = pip_errors(output) or _last_lines(output)
            results.append(Download(spec, platform, error=f"pip download failed: {reason}"))
    return results


# -- pinned releases, cache first ----------------------------------------------------------


def expand_platform(platform: str) -> list[str]:
    """The platform tags a target platform accepts, as pip expands ``--platform``.

    ``manylinux_2_28_x86_64`` also accepts every older ``manylinux_2_*`` tag and the legacy
    ``manylinux2014``/``2010``/``1`` aliases (PEP 600); ``macosx_14_0_arm64`` every older
    macOS of that architecture (``packaging.tags.mac_platforms``); others only themselves.
    """
    from packaging.tags import mac_platforms

    match = _MANYLINUX.fullmatch(platform)
    if match is not None:
        major, minor, arch = int(match[1]), int(match[2]), match[3]
        expanded: list[str] = []
        for glibc_minor in range(minor, -1, -1):
            expanded.append(f"manylinux_{major}_{glibc_minor}_{arch}")
            legacy = _LEGACY_MANYLINUX.get((major, glibc_minor))
            if legacy:
                expanded.append(f"{legacy}_{arch}")
        return expanded
    match = _MACOS.fullmatch(platform)
    if match is not None:
        return list(mac_platforms((int(match[1]), int(match[2])), match[3]))
    return [platform]


def accepted_tags(platforms: Sequence[str], python_version: str | None) -> frozenset[Tag]:
    """Every wheel tag pip would accept for ``python_version`` (default: this interpreter's)
    on ``platforms`` (default: this machine's)."""
    from packaging.tags import compatible_tags, cpython_tags, sys_tags

    if not platforms and not python_version:
        return frozenset(sys_tags())
    python = (
        tuple(int(part) for part in python_version.split("."))
        if python_version
        else sys.version_info[:2]
    )
    expanded = [tag for platform in platforms for tag in expand_platform(platform)] or None
    return frozenset(cpython_tags(python, platforms=expanded)) | frozenset(
        compatible_tags(python, platforms=expanded)
    )


def find_cached_wheel(
    name: str,
    version: str,
    *,
    platforms: Sequence[str] = (),
    python_version: str | None = None,
    cache: Path | None = None,
) -> Path | None:
    """A wheel of release ``version`` of ``name`` in the cache whose tags fit, if there is one.

    The version must be equal as PEP 440 compares them, local part included (``2.13.0`` is not
    ``2.13.0+cpu``); among several fitting wheels the highest build tag wins (a rebuild).
    """
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
    from packaging.version import InvalidVersion, Version

    directory = cache or default_cache()
    if not directory.is_dir():
        return None
    wanted_name, wanted = canonicalize_name(name), Version(version)
    accepted = accepted_tags(platforms, python_version)
    candidates: list[tuple[tuple[int, str] | tuple[()], str, Path]] = []
    for path in directory.glob("*.whl"):
        try:
            found_name, found, build, tags = parse_wheel_filename(path.name)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if found_name == wanted_name and found == wanted and tags & accepted:
            candidates.append((build, path.name, path))
    return max(candidates)[2] if candidates else None


def fetch_wheel(
    name: str,
    version: str,
    *,
    platforms: Sequence[str] = (),
    python_version: str | None = None,
    cache: Path | None = None,
    unconstrained: bool = False,
) -> Path:
    """The wheel of ``name==version`` for ``platforms``: from the cache, else fetched into it.

    One pip run asks for every platform at once (pip takes the best wheel any of them accepts).
    ``unconstrained`` as for :func:`run_pip`. Raises :class:`DownloadError` when pip fails or
    saves no fitting wheel.
    """
    destination = cache or default_cache()

    def cached() -> Path | None:
        return find_cached_wheel(
            name, version, platforms=platforms, python_version=python_version, cache=destination
        )

    found = cached()
    if found is not None:
        return found
    destination.mkdir(parents=True, exist_ok=True)
    command = pip_command(f"{name}=={version}", destination, platforms, python_version)
    try:
        result = run_pip(command, unconstrained=unconstrained)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DownloadError(f"could not run pip: {exc}") from exc
    if result.returncode != 0:
        output = result.stderr + "\n" + result.stdout
        raise DownloadError(
            f"pip download {name}=={version} failed (exit {result.returncode}): "
            f"{_last_lines(output)}"
        )
    found = cached()
    if found is None:
        raise DownloadError(
            f"pip download {name}=={version} saved no fitting wheel in {destination}"
        )
    return found


def index_versions(
    name: str,
    *,
    platforms: Sequence[str] = (),
    python_version: str | None = None,
    unconstrained: bool = False,
) -> list[str]:
    """The versions the index offers for ``name`` with a wheel for ``platforms`` (``pip index
    versions``), as pip prints them. Raises :class:`DownloadError` when pip fails."""
    command = [sys.executable, "-m", "pip", "index", "versions", name, "--only-binary", ":all:"]
    command += _target_options(platforms, python_version)
    try:
        result = run_pip(command, unconstrained=unconstrained)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DownloadError(f"could not run pip: {exc}") from exc
    match = re.search(r"Available versions:\s*(.+)", result.stdout)
    if result.returncode != 0 or match is None:
        raise DownloadError(
            f"pip index versions {name} failed: {_last_lines(result.stderr + result.stdout)}"
        )
    return [text.strip() for text in match.group(1).split(",") if text.strip()]
