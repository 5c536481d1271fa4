"""The command line's gate step: configuration merged, exceptions read, gates judged, verdict.

:func:`configure` folds the configuration file into the parsed arguments (the command line
wins) and reads the baseline; :func:`judge` evaluates the gates on the audited packages (and
writes a baseline when asked). The console says what failed; the CLI only calls these.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from torch_abi_audit.audit import TargetReports
from torch_abi_audit.baseline import (
    BaselineError,
    baseline_text,
    check_problem,
    load_baseline,
    write_baseline,
)
from torch_abi_audit.checks import CheckPolicy, GateVerdict, evaluate, gates
from torch_abi_audit.config import Config, ConfigError, discover
from torch_abi_audit.gate_report import AllowEntry, NothingAudited
from torch_abi_audit.report import AuditResult, EnvironmentReport, GateStatus


class SettingsError(ValueError):
    """A configuration, baseline or gate option that cannot be used (exit 2)."""


@dataclass(frozen=True)
class GateSettings:
    """What the gates run with: the policies, the ignored codes, the allow entries (the
    configuration's, then the baseline file's), where to write a baseline, and what ``-v``
    says about where they came from (``notes``)."""

    policies: tuple[CheckPolicy, ...] = ()
    ignore: tuple[str, ...] = ()
    allow: tuple[AllowEntry, ...] = ()
    baseline: Path | None = None
    write_baseline: Path | None = None
    notes: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """True when some gate is checked."""
        return bool(self.policies)


def _merge(args: argparse.Namespace, config: Config) -> None:
    """The configuration's values where the command line gave none."""
    if args.check is None and config.check:
        args.check = list(config.check)
    if args.ignore is None:
        args.ignore = list(config.ignore)
    if args.baseline is None:
        args.baseline = config.baseline
    if args.jobs is None:
        args.jobs = config.jobs
    if args.torch_version is None and args.torch is None and config.torch_version:
        args.torch_version = config.torch_version
    if args.format is None:
        args.format = config.format


def configure(args: argparse.Namespace, cwd: Path) -> GateSettings:
    """Read the configuration (``args.config``, else the nearest ``pyproject.toml`` above
    ``cwd``), fold it into ``args`` and read the baseline. Raises :class:`SettingsError`."""
    given = [
        flag
        for flag, value in (
            ("--ignore", args.ignore),
            ("--baseline", args.baseline),
            ("--write-baseline", args.write_baseline),
        )
        if value
    ]
    try:
        config = discover(args.config, cwd, enabled=not args.no_config)
    except ConfigError as exc:
        raise SettingsError(str(exc)) from None
    _merge(args, config)
    notes = []
    if args.verbose:
        where = config.path or f"none (no pyproject.toml with [tool.torch-abi-audit] above {cwd})"
        notes.append(f"config: {where}")
    policies = tuple(args.check or ())
    if given and not policies:
        raise SettingsError(f"{', '.join(given)} go with --check (which gates to judge)")
    for code in args.ignore or ():
        problem = check_problem(code, gates=False)
        if problem is not None:
            raise SettingsError(f"--ignore {problem}")
    allow = config.allow
    baseline = args.baseline.absolute() if args.baseline else None
    if baseline is not None and policies:
        if not baseline.is_file() and args.write_baseline is not None:
            entries: tuple[AllowEntry, ...] = ()  # adopting: the file is about to be written
        else:
            try:
                entries = load_baseline(baseline)
            except BaselineError as exc:
                raise SettingsError(str(exc)) from None
        if args.verbose:
            notes.append(f"baseline: {baseline} ({len(entries)} entries)")
        allow += entries
    return GateSettings(
        policies=policies,
        ignore=tuple(args.ignore or ()),
        allow=allow,
        baseline=baseline,
        write_baseline=args.write_baseline.absolute() if args.write_baseline else None,
        notes=tuple(notes),
    )


def nothing_audited(requests: Sequence[TargetReports]) -> list[NothingAudited]:
    """The requested targets that gave no library to judge (and no error of their own)."""
    empty = []
    for request in requests:
        packages = request.packages
        if any(p.libraries or p.has_error for p in packages):
            continue
        unavailable = [p.unavailable for p in packages if p.unavailable]
        reason = (
            unavailable[0]
            if unavailable
            else (
                "no compiled library found (a pure-Python package, or a build that left its "
                "extensions out?)"
            )
        )
        empty.append(NothingAudited(request.target, reason))
    return empty


def empty_environment(environment: EnvironmentReport) -> list[NothingAudited]:
    """The environment, if it held no package with a compiled library (and no error)."""
    if environment.has_error or any(p.libraries for p in environment.packages):
        return []
    where = ", ".join(str(p) for p in environment.search_paths) or str(environment.site_packages)
    return [NothingAudited(where, "no package with a compiled library")]


@dataclass(frozen=True)
class Written:
    """What ``--write-baseline`` did: the message to show, and whether it failed."""

    message: str
    failed: bool = False


def judge(
    settings: GateSettings, result: AuditResult, empty: Sequence[NothingAudited] = ()
) -> tuple[AuditResult, Written | None]:
    """``result`` with the gates' verdict (unchanged without ``--check``): every violation
    with its status, stale / expired / unchecked baseline entries, and the targets in
    ``empty`` that gave nothing to judge.

    With ``--write-baseline`` the current violations are written first, and the verdict is the
    one against the baseline written (so the report shows them allowed, with their ``TODO``).
    """
    if not settings.active:
        return result, None
    checked = gates(settings.policies)

    def verdict_with(allow: Sequence[AllowEntry]) -> GateVerdict:
        return evaluate(result.packages, checked, ignore=settings.ignore, allow=allow)

    verdict = verdict_with(settings.allow)
    written = None
    path = settings.write_baseline
    if path is not None:
        text = baseline_text(verdict.results, keep_from=settings.baseline)
        failed = [r for r in verdict.results if r.status is GateStatus.FAILED]
        new = len({(r.package, r.library, r.code) for r in failed})
        try:
            write_baseline(path, text)
            entries = load_baseline(path)
        except BaselineError as exc:
            written = Written(str(exc), failed=True)
        else:
            verdict = verdict_with(
                tuple(e for e in settings.allow if e.source != settings.baseline) + entries
            )
            written = Written(
                f"wrote {path}: {len(entries)} entries ({new} newly recorded with "
                'reason = "TODO": give each its reason)'
            )
    judged = replace(
        result,
        checks=tuple(str(gate) for gate in checked),
        gate_results=verdict.results,
        stale=verdict.stale,
        expired=verdict.expired,
        unchecked=verdict.unchecked,
        nothing_audited=tuple(empty),
    )
    return judged, written
