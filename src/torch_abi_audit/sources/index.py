"""Fetch wheels from the package index with the ordinary pip client, into a cache.

``pip download --no-deps --only-binary :all:`` does the resolving, the index access and the
caching rules users already trust; this module only runs it once per requested platform and
reads which wheel it saved. A release without a wheel for a requested platform is an answer
(``unavailable``), not an error of the audit; a project or release the index does not have, or
a malformed platform tag, is an error (:mod:`torch_abi_audit.sources.index_answers` tells
them apart from pip's verbose log).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Environment variable that moves the cache.
CACHE_VARIABLE = "TORCH_ABI_AUDIT_CACHE"
_SAVED = re.compile(r"^\s*(?:Saved|File was already downloaded)\s+(?P<path>.+\.whl)\s*$", re.M)
_NOT_FOUND = (
    "No matching distribution found",
    "Could not find a version that satisfies",
)


def default_cache() -> Path:
    """Where downloaded wheels are kept: ``$TORCH_ABI_AUDIT_CACHE/wheels`` or
    ``~/.cache/torch-abi-audit/wheels``."""
    base = os.environ.get(CACHE_VARIABLE)
    root = Path(base) if base else Path.home() / ".cache" / "torch-abi-audit"
    return root / "wheels"


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
    spec: str, destination: Path, platform: str | None, python_version: str | None
) -> list[str]:
    """The ``pip download`` command line for one requirement and platform."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "-vv",  # the log names every file the index offered: see index_answers
        "--dest",
        str(destination),
    ]
    if platform:
        command += ["--platform", platform]
    if python_version:
        command += ["--python-version", python_version]
    return [*command, spec]


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "no output"


def download(
    spec: str,
    platforms: Sequence[str] = (),
    python_version: str | None = None,
    cache: Path | None = None,
) -> list[Download]:
    """Fetch ``spec`` once per platform (or once for this interpreter when none is given)."""
    from torch_abi_audit.sources.index_answers import explain_not_found, platform_tag_problem

    destination = cache or default_cache()
    destination.mkdir(parents=True, exist_ok=True)
    results = []
    requested: list[str | None] = list(platforms) or [None]
    for platform in requested:
        problem = platform_tag_problem(platform) if platform else None
        if problem is not None:
            results.append(Download(spec, platform, error=f"--platform {platform}: {problem}"))
            continue
        command = pip_command(spec, destination, platform, python_version)
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=3600
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            results.append(Download(spec, platform, error=f"could not run pip: {exc}"))
            continue
        output = completed.stdout + "\n" + completed.stderr
        if completed.returncode == 0:
            saved = [Path(m.group("path").strip()) for m in _SAVED.finditer(completed.stdout)]
            wheel = next((p if p.is_absolute() else destination / p.name for p in saved), None)
            if wheel is None or not wheel.is_file():
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
                Download(spec, platform, error="pip is not installed in this interpreter")
            )
        else:
            results.append(
                Download(spec, platform, error=f"pip download failed: {_last_lines(output)}")
            )
    return results
