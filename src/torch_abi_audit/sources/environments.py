"""Which Python environment to audit, found from its files: the interpreter is never run.

``--python PATH`` names an interpreter (``.venv/bin/python``, ``C:\\venv\\Scripts\\python.exe``,
``/usr/bin/python3.12``) or an environment's root (``.venv``, a conda environment, ``/usr``);
``--site-packages`` accepts such a root too. Running the interpreter to ask ``sysconfig`` would
be simpler, but it executes the audited environment's own binary and its startup code
(``sitecustomize``, ``.pth`` files: arbitrary code), and it cannot work for an environment built
for another platform or architecture. The layout is enough, because it is fixed by CPython's
installation schemes (``sysconfig``: ``posix_prefix``/``venv`` put packages in
``{base}/lib/python{X.Y}{t}/site-packages``, ``nt`` in ``{base}/Lib/site-packages``; Debian
adds ``dist-packages``) and the virtual environment's ``pyvenv.cfg`` (PEP 405: ``home``,
``version``, ``include-system-site-packages``).

:func:`tool_environment` recognises the isolated environment a tool runner made for this very
tool (``uvx``, ``uv tool``, ``pipx``), where ``--env`` would audit nothing but this tool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.metadata and the requirement parser: only for --env (~35 ms)
    from importlib import metadata

from torch_abi_audit.files import MAX_CONFIG_SIZE, read_regular
from torch_abi_audit.sources.interpreter import LIB_DIR_NAME


class EnvironmentNotFound(LookupError):
    """``--python`` or ``--site-packages`` names nothing whose packages can be found."""


@dataclass(frozen=True)
class PythonEnvironment:
    """An environment to audit: where its packages are (its own site-packages first), its root,
    and what it is in words (``virtual environment``, ``installation``)."""

    site_packages: tuple[Path, ...]
    prefix: Path
    kind: str

    def describe(self) -> str:
        """``the virtual environment /x/.venv (/x/.venv/lib/python3.12/site-packages)``."""
        places = ", ".join(str(p) for p in self.site_packages)
        return f"the {self.kind} {self.prefix} ({places})"


_VERSIONED_NAME = re.compile(r"python(3\.\d+)(t?)(?:\.exe)?$", re.IGNORECASE)
_CFG_VERSION = re.compile(r"^(3\.\d+)")


def read_pyvenv_cfg(prefix: Path) -> dict[str, str] | None:
    """The ``key = value`` lines of ``prefix/pyvenv.cfg`` (PEP 405), or ``None`` without one."""
    try:
        raw = read_regular(prefix / "pyvenv.cfg", MAX_CONFIG_SIZE)
    except OSError:  # missing, not a regular file (a FIFO would block), too large
        return None
    text = raw.decode("utf-8", errors="replace")
    values = {}
    for line in text.splitlines():
        key, equals, value = line.partition("=")
        if equals:
            values[key.strip().lower()] = value.strip()
    return values


def _prefix_of(path: Path) -> Path:
    """The root of the environment an interpreter or directory belongs to."""
    if path.is_dir():
        return path
    if not path.is_file():
        raise EnvironmentNotFound(f"{path} does not exist")
    # A virtual environment's interpreter is a link to the base interpreter: look for its
    # pyvenv.cfg before following the link (bin/python, Scripts/python.exe, or at the root).
    for candidate in (path.parent.parent, path.parent):
        if (candidate / "pyvenv.cfg").is_file():
            return candidate
    real = path.resolve()
    return real.parent.parent if real.parent.name.lower() in ("bin", "scripts") else real.parent


def _wanted_version(path: Path, config: dict[str, str] | None) -> str | None:
    """The X.Y (plus ``t`` when free-threaded) an interpreter's name or pyvenv.cfg states."""
    match = _VERSIONED_NAME.search(path.name)
    if match:
        return match.group(1) + match.group(2)
    if config is not None:
        found = _CFG_VERSION.match(config.get("version_info") or config.get("version") or "")
        if found:
            return found.group(1)
    return None


def _layout_site_packages(prefix: Path) -> list[Path]:
    """Every directory CPython's installation schemes (and Debian's) put packages in."""
    found = sorted(prefix.glob("lib/python3*/site-packages"))
    found += sorted(prefix.glob("lib/python3*/dist-packages"))
    found += sorted(prefix.glob("local/lib/python3*/dist-packages"))
    for extra in (prefix / "lib" / "python3" / "dist-packages", prefix / "Lib" / "site-packages"):
        if extra.is_dir():
            found.append(extra)
    return [p for p in found if p.is_dir()]


def _version_of(site: Path) -> str | None:
    match = LIB_DIR_NAME.fullmatch(site.parent.name)
    return match.group(1) + match.group(2) if match else None


def _select(sites: list[Path], wanted: str | None, prefix: Path) -> list[Path]:
    versions = {v for v in map(_version_of, sites) if v}
    if wanted is not None and versions:
        chosen = [s for s in sites if _version_of(s) in (wanted, None)]
        if any(_version_of(s) == wanted for s in chosen):
            return chosen
    if len(versions) > 1:
        listed = ", ".join(sorted(versions))
        raise EnvironmentNotFound(
            f"{prefix} holds packages for several Pythons ({listed}): name the interpreter "
            "(e.g. bin/python3.12) or pass --site-packages DIR"
        )
    return sites


def find_environment(path: Path) -> PythonEnvironment:
    """The environment of the interpreter or environment root ``path``.

    Raises :class:`EnvironmentNotFound` when no site-packages is found there, or when packages
    of several Python versions are and ``path`` does not say which.
    """
    path = path.absolute()
    prefix = _prefix_of(path)
    config = read_pyvenv_cfg(prefix)
    wanted = _wanted_version(path, config)
    sites = _select(_layout_site_packages(prefix), wanted, prefix)
    if not sites:
        raise EnvironmentNotFound(
            f"no site-packages found under {prefix} (expected lib/python3.X/site-packages or "
            "Lib/site-packages): pass --site-packages DIR"
        )
    if config is not None and config.get("include-system-site-packages", "").lower() == "true":
        home = Path(config.get("home", ""))
        if home.name and home.is_dir():
            base = home.parent if home.name.lower() in ("bin", "scripts") else home
            sites += [
                s for s in _select(_layout_site_packages(base), wanted, base) if s not in sites
            ]
    kind = "virtual environment" if config is not None else "installation"
    return PythonEnvironment(tuple(sites), prefix, kind)


def site_packages_directories(paths: Iterable[Path]) -> list[Path]:
    """``--site-packages`` arguments as directories to scan: a site-packages directory as it
    is, an environment's root (it has a ``pyvenv.cfg``, or a ``lib/python3.X/site-packages``)
    as its site-packages."""
    found: list[Path] = []
    for path in paths:
        is_root = (path / "pyvenv.cfg").is_file() or bool(_layout_site_packages(path))
        if path.is_dir() and is_root and path.name not in ("site-packages", "dist-packages"):
            found += [s for s in find_environment(path).site_packages if s not in found]
        elif path not in found:
            found.append(path)
    return found


# -- the tool's own environment --------------------------------------------------------------

_THIS_TOOL = "torch-abi-audit"
#: What :func:`tool_environment` calls an environment holding only this tool and its needs.
ISOLATED = "an isolated environment"
# What installers put into any environment.
_INSTALLERS = frozenset({"pip", "setuptools", "wheel", "uv"})


def _requirement_closure(distributions: dict[str, metadata.Distribution]) -> set[str]:
    """This tool and everything it requires, transitively, among ``distributions``."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    closure = {_THIS_TOOL}
    pending = [_THIS_TOOL]
    while pending:
        dist = distributions.get(pending.pop())
        for line in (dist.requires or []) if dist is not None else []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(requirement.name)
            if name not in closure:
                closure.add(name)
                pending.append(name)
    return closure


def tool_environment(prefix: Path, site_packages: Sequence[Path]) -> str | None:
    """How this tool's own isolated environment was made, when ``prefix`` is one: ``uv tool``
    (a ``uv-receipt.toml``), ``pipx`` (a ``pipx_metadata.json``), ``uvx`` (an environment uv
    keeps in its cache, marked by ``CACHEDIR.TAG``), or ``an isolated environment`` when it
    holds nothing but this tool and what it requires. ``None`` otherwise."""
    if (prefix / "uv-receipt.toml").is_file():
        return "uv tool"
    if (prefix / "pipx_metadata.json").is_file():
        return "pipx"
    from importlib import metadata

    from packaging.utils import canonicalize_name

    distributions: dict[str, metadata.Distribution] = {
        canonicalize_name(dist.metadata["Name"] or ""): dist
        for dist in metadata.distributions(path=[str(p) for p in site_packages])
    }
    if _THIS_TOOL not in distributions:
        return None
    if (prefix / "CACHEDIR.TAG").is_file():
        return "uvx"
    if set(distributions) - _INSTALLERS <= _requirement_closure(distributions):
        return ISOLATED
    return None
