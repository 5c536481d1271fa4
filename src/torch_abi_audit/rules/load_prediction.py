"""Will a library load on a given torch? Predicted from its imports, never by loading it.

Two questions, two kinds of evidence:

* **Against a release** (``--torch-version 2.12``): the stable-ABI table says which shims that
  release provides, and the release-exports data what the default build of the library's
  platform exports, which libraries it installs and with which CUDA major
  (:class:`ReleaseBuildView`). A stable library loads when every shim it needs exists there
  (none newer, none removed); any library — an unstable one too — fails when that build lacks a
  needed library or an import, exactly as against an installation (the same function decides:
  :func:`predict_against_install`); what the data does not hold is ``unknown``.
* **Against an installation** (the torch in the scanned environment, or ``--torch PATH``): the
  dynamic loader first finds the libraries a library needs, then resolves its undefined symbols
  (CPython loads extension modules with ``RTLD_NOW``). So: every torch-family and CUDA-runtime
  library it needs must be found (the caller resolves them the way the loader would and passes
  the failures), and every torch-owned import must be exported by that installation's libtorch
  libraries. This holds for unstable libraries too: one built against the installed torch
  resolves fully; one built against another release usually does not.

A *torch-owned import* is a shim (known or shim-like), a C++ name whose entity lives in a
libtorch namespace, a libtorch C symbol, or anything bound to a libtorch library — but not a
package's own function that merely passes ``at::Tensor`` (that one lives in the package), nor an
import the format binds to a library other than libtorch's.

Whether a library *loads* and whether it is *stable* are separate questions. A weak import
(ELF ``STB_WEAK`` undefined, Mach-O weak import, or an import from a weak-linked dylib or a PE
delay-loaded DLL) never makes loading fail: glibc's ``_dl_lookup_symbol_x`` leaves an undefined
weak reference at 0, dyld binds a missing weak import to 0, and Windows resolves a delay-loaded
import at its first call. Compilers rely on it: every access to a libtorch ``thread_local``
declared ``extern`` references its TLS init function (``_ZTH…``) weakly, and calls it only when
it exists. Such imports are listed (``weak_undefined_symbols``), not failed on; they still count
for the torch verdict. This holds against a release as against an installation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from packaging.version import Version

from torch_abi_audit.rules.cxx_abi import abi_mismatch, abi_name
from torch_abi_audit.rules.findings import name_list
from torch_abi_audit.rules.torch_abi import (
    TorchAnalysis,
    UnstableReason,
    demangle,
    is_torch_library,
)
from torch_abi_audit.rules.torch_table import TorchAbiTable

#: How many missing symbols a message quotes before "and N more".
QUOTED = 3


class LoadStatus(StrEnum):
    """The predicted outcome of loading a library."""

    LOADS = "loads"
    FAILS = "fails"
    UNKNOWN = "unknown"  # the data cannot decide (a platform or build variant it does not hold)
    TIED = "tied-to-build"  # no longer produced (schema 1.6 and older): now loads/fails/unknown


@dataclass(frozen=True)
class LoadPrediction:
    """What loading one library on one torch is predicted to do.

    ``against`` names the torch (``torch 2.13.0+cpu`` or ``torch 2.12``). ``missing_libraries``
    are the loader's messages for needed libraries it cannot find; ``undefined_symbols`` the
    torch-owned imports the installation does not export; ``newer_shims`` / ``removed_shims``
    the imported shims the release does not have yet / any more. ``message`` says it in the
    loader's words. ``weak_undefined_symbols`` and ``missing_optional_libraries`` are what is
    missing but does not stop the load (weak imports, weak-linked dylibs, delay-loaded DLLs):
    the code that uses them finds a null address, or fails at its first call.
    ``failed_dependencies`` are the libraries of the same package this one needs that will not
    load (so neither will this one), as reports name them. ``cxx11_abi_mismatch`` are the
    undefined symbols that name the other libstdc++ string ABI than the torch's
    (:mod:`~torch_abi_audit.rules.cxx_abi`): built with ``_GLIBCXX_USE_CXX11_ABI`` set the other
    way, the library cannot resolve them; the message then says so. Against a release,
    ``build`` names the build of the library's platform the data judged it against
    (``torch 2.13.0+cu130 (linux_x86_64)``), and ``undecided_symbols`` /
    ``undecided_libraries`` what the data cannot tell (then the status is ``unknown``).
    """

    against: str
    status: LoadStatus
    message: str
    missing_libraries: tuple[str, ...] = ()
    undefined_symbols: tuple[str, ...] = ()
    newer_shims: tuple[str, ...] = ()
    removed_shims: tuple[str, ...] = ()
    weak_undefined_symbols: tuple[str, ...] = ()
    missing_optional_libraries: tuple[str, ...] = ()
    failed_dependencies: tuple[str, ...] = ()
    cxx11_abi_mismatch: tuple[str, ...] = ()
    build: str | None = None
    undecided_symbols: tuple[str, ...] = ()
    undecided_libraries: tuple[str, ...] = ()

    @property
    def fails(self) -> bool:
        """True when the library is predicted not to load."""
        return self.status is LoadStatus.FAILS

    @property
    def other_undefined(self) -> tuple[str, ...]:
        """Undefined symbols that are not shims too new for, or removed by, the target."""
        known = set(self.newer_shims) | set(self.removed_shims)
        return tuple(name for name in self.undefined_symbols if name not in known)


def torch_owned_imports(torch: TorchAnalysis) -> tuple[str, ...]:
    """The imports of a library that a torch installation must provide, sorted."""
    owned = set(torch.stable_shims) | set(torch.unknown_shims)
    for unstable in torch.unstable_details:
        if unstable.reason is UnstableReason.SIGNATURE:
            continue  # the package's own function: another of its libraries defines it
        if unstable.library is not None and not is_torch_library(unstable.library):
            continue  # the format binds it to a library that is not libtorch's
        owned.add(unstable.symbol)
    return tuple(sorted(owned))


def _symbol_error(name: str, binary_format: str | None) -> str:
    """How the platform's loader reports a missing symbol (as the ``ImportError`` shows it)."""
    if binary_format == "mach-o":
        return f"Symbol not found: _{name}"  # dyld prints the C-level name, with its underscore
    if binary_format == "pe":
        return f"The specified procedure could not be found ({name})"
    return f"undefined symbol: {name}"


def _optional_note(weak: Sequence[str], libraries: Sequence[str]) -> str:
    """`` (optional, missing: …)`` for what is missing but does not stop the load."""
    parts = []
    if libraries:
        parts.append(
            f"{len(libraries)} weak or delay-loaded librar{'y' if len(libraries) == 1 else 'ies'}"
        )
    if weak:
        parts.append(
            f"{len(weak)} weak import{'s' if len(weak) > 1 else ''} ({name_list(weak, QUOTED)})"
        )
    return f" (missing but optional: {' and '.join(parts)})" if parts else ""


def _abi_note(mismatch: Sequence[str], against: str, torch_cxx11: bool | None) -> str:
    """``; built with the other libstdc++ ABI…`` when undefined symbols say so."""
    if not mismatch or torch_cxx11 is None:
        return ""
    return (
        f"; it was built with {abi_name(not torch_cxx11)} but {against} with "
        f"{abi_name(torch_cxx11)}, so its imports taking or returning std::string cannot "
        f"resolve ({demangle(mismatch[0])}"
        + (f" and {len(mismatch) - 1} more" if len(mismatch) > 1 else "")
        + ")"
    )


def predict_against_install(
    torch: TorchAnalysis,
    against: str,
    exports: frozenset[str],
    *,
    missing_libraries: Sequence[str] = (),
    missing_optional_libraries: Sequence[str] = (),
    binary_format: str | None = None,
    table: TorchAbiTable | None = None,
    release: Version | None = None,
    torch_cxx11_abi: bool | None = None,
) -> LoadPrediction:
    """Will a library with analysis ``torch`` load on the installation named ``against``, whose
    libtorch libraries export ``exports``? ``missing_libraries`` are the loader's messages for
    the needed libraries it would not find (checked first, as the loader does);
    ``missing_optional_libraries`` those for weak-linked or delay-loaded ones, which do not stop
    it. Weak imports (``torch.weak_imports``) the installation does not export do not either.
    With the ``table`` and the installation's ``release``, undefined shims are told apart as
    too new for it or removed by it. ``torch_cxx11_abi`` is the installation's libstdc++
    string ABI (ELF; see :func:`~torch_abi_audit.rules.cxx_abi.uses_cxx11_abi`): undefined
    symbols naming the other one are explained."""
    weak = set(torch.weak_imports)
    missing = [name for name in torch_owned_imports(torch) if name not in exports]
    undefined = tuple(name for name in missing if name not in weak)
    weak_undefined = tuple(name for name in missing if name in weak)
    optional = tuple(missing_optional_libraries)
    newer: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    if table is not None and release is not None:
        newer, removed = table.missing_in(undefined, release)
    if missing_libraries:
        return LoadPrediction(
            against,
            LoadStatus.FAILS,
            f"will not load with {against}: {missing_libraries[0]}",
            missing_libraries=tuple(missing_libraries),
            undefined_symbols=undefined,
            newer_shims=newer,
            removed_shims=removed,
            weak_undefined_symbols=weak_undefined,
            missing_optional_libraries=optional,
        )
    if undefined:
        first = _symbol_error(undefined[0], binary_format)
        more = f" (and {len(undefined) - 1} more)" if len(undefined) > 1 else ""
        mismatch = abi_mismatch(undefined, torch_cxx11_abi) if binary_format == "elf" else ()
        return LoadPrediction(
            against,
            LoadStatus.FAILS,
            f"will not load with {against}: {first}{more}"
            + _abi_note(mismatch, against, torch_cxx11_abi),
            undefined_symbols=undefined,
            newer_shims=newer,
            removed_shims=removed,
            weak_undefined_symbols=weak_undefined,
            missing_optional_libraries=optional,
            cxx11_abi_mismatch=mismatch,
        )
    return LoadPrediction(
        against,
        LoadStatus.LOADS,
        f"loads with {against}{_optional_note(weak_undefined, optional)}",
        weak_undefined_symbols=weak_undefined,
        missing_optional_libraries=optional,
    )


@dataclass(frozen=True)
class ReleaseBuildView:
    """What the release data tells of the build one library is judged against.

    ``label`` names the build (``torch 2.13.0+cu130 (linux_x86_64)``); ``exports`` its recorded
    exports, ``None`` when the data does not hold that build (then ``unknown_reason`` says why)
    or they were not needed; ``missing_libraries`` are the loader's messages for needed torch or
    CUDA libraries the build does not provide, ``missing_optional_libraries`` the weak-linked or
    delay-loaded ones it does not provide (they do not stop the load), ``undecided_libraries``
    required needed names the data cannot place; ``no_devices`` the shim device tiers the build
    lacks (``cuda`` on a CPU build, ``mps`` off macOS); ``cxx11_abi`` the libstdc++ string ABI
    its exports name (Linux builds; ``None`` elsewhere or when not known).
    """

    label: str | None = None
    exports: frozenset[str] | None = None
    unknown_reason: str | None = None
    missing_libraries: tuple[str, ...] = ()
    missing_optional_libraries: tuple[str, ...] = ()
    undecided_libraries: tuple[str, ...] = ()
    no_devices: frozenset[str] = frozenset()
    cxx11_abi: bool | None = None


def _absent_by_table(
    torch: TorchAnalysis, table: TorchAbiTable, release: Version, view: ReleaseBuildView
) -> frozenset[str]:
    """The imported shims (weak ones too) the release lacks by the shim table alone: newer than
    it, removed by it, or of a device tier its build does not have."""
    newer, removed = table.missing_in(torch.stable_shims, release)
    other_device = {
        name
        for name in torch.stable_shims
        if (shim := table.shims.get(name)) is not None and shim.device in view.no_devices
    }
    return frozenset(newer) | frozenset(removed) | frozenset(other_device)


def _shim_reasons(prediction: LoadPrediction, torch: TorchAnalysis) -> LoadPrediction:
    """A stable library that fails on shims too new or removed says so in those words."""
    if not torch.stable or prediction.missing_libraries:
        return prediction
    newer, removed = prediction.newer_shims, prediction.removed_shims
    if not newer and not removed:
        return prediction
    label = prediction.against
    reasons = []
    if newer:
        reasons.append(f"needs torch>={torch.min_torch_version} ({name_list(newer, QUOTED)})")
    if removed:
        reasons.append(f"imports shims removed by {label} ({name_list(removed, QUOTED)})")
    return replace(prediction, message=f"will not load with {label}: {'; '.join(reasons)}")


def _needs_build_exports(torch: TorchAnalysis, owned: Sequence[str]) -> bool:
    """Does loading need torch-owned imports beyond shims (what only a build's exports tell)?"""
    decided = {*torch.stable_shims, *torch.unknown_shims, *torch.weak_imports}
    return any(name not in decided for name in owned)


def predict_against_release(
    torch: TorchAnalysis,
    table: TorchAbiTable,
    release: Version,
    label: str,
    build: ReleaseBuildView | None = None,
    *,
    binary_format: str | None = None,
) -> LoadPrediction:
    """Will a library with analysis ``torch`` load on torch ``release``? ``label`` names the
    release in messages (``torch 2.12``); ``build`` is what the release data says of its
    platform's build. (Which libraries concern torch — they use it or need a torch or CUDA
    library — is the caller's to say, as against an installation.)

    The library is judged by :func:`predict_against_install`, as against an installation, with
    the build's recorded exports — or, where the data does not hold them, every torch-owned
    import but the shims the table says the release lacks (too new, removed, of a device tier
    the build does not have). So needed libraries come first, weak imports and weak-linked
    libraries never fail the load, and undefined symbols naming the other libstdc++ string ABI
    than the build's are explained. What the data cannot decide — required imports of a kind it
    does not record, required imports beyond shims without the build's exports, required
    needed libraries it cannot place — makes a load that nothing fails ``unknown``, never a
    guess.
    """
    view = build or ReleaseBuildView()
    owned = torch_owned_imports(torch)
    from torch_abi_audit.rules.release_exports import undecidable  # its tables: ~10 ms

    unrecorded = undecidable(owned, (*table.internal_c_symbols, *table.shims))
    if view.exports is not None:
        exports = view.exports
    else:
        exports = frozenset(owned) - _absent_by_table(torch, table, release, view)
    prediction = predict_against_install(
        torch,
        label,
        exports | frozenset(unrecorded),
        missing_libraries=view.missing_libraries,
        missing_optional_libraries=view.missing_optional_libraries,
        binary_format=binary_format,
        table=table,
        release=release,
        torch_cxx11_abi=view.cxx11_abi,
    )
    prediction = replace(prediction, build=view.label)
    if prediction.fails:
        return _shim_reasons(prediction, torch)
    weak = set(torch.weak_imports)
    undecided = tuple(name for name in unrecorded if name not in weak)
    reasons = []
    if view.exports is None and _needs_build_exports(torch, owned):
        reasons.append(view.unknown_reason or "the data holds no build of its platform")
    if view.exports is not None and undecided:
        reasons.append(f"imports the data does not record ({name_list(undecided, QUOTED)})")
    if view.undecided_libraries:
        reasons.append(
            f"needs {name_list(view.undecided_libraries, QUOTED)}, which "
            f"{view.label or label} does not install (found only where the environment provides it)"
        )
    if not reasons:
        return prediction
    return replace(
        prediction,
        status=LoadStatus.UNKNOWN,
        message=f"cannot tell whether it loads with {label}: {'; '.join(reasons)}",
        undecided_symbols=undecided if view.exports is not None else (),
        undecided_libraries=view.undecided_libraries,
    )


#: A library's in-package dependencies: ``(index of the library it needs, the name it needs it
#: by)`` per library, in its ``needed`` order (what :func:`with_failed_dependencies` takes).
Dependencies = Sequence[Sequence[tuple[int, str]]]


def _reason(prediction: LoadPrediction) -> str:
    """What a prediction's message says after ``will not load with <torch>:`` (or ``cannot
    tell whether it loads with <torch>:``)."""
    message = prediction.message
    for prefix in (
        f"will not load with {prediction.against}: ",
        f"cannot tell whether it loads with {prediction.against}: ",
    ):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


#: A dependency reached: ``(name it is needed by, its prediction, its path)``.
_Reached = tuple[str, LoadPrediction, str]


#: How a message says that a needed library of the package fails, or may: ``(the opening, with
#: the torch's label to fill in, and how the dependency is said to load)``.
_THROUGH = {
    LoadStatus.FAILS: ("will not load with {}", "which will not load"),
    LoadStatus.UNKNOWN: ("cannot tell whether it loads with {}", "which may not load"),
}


def _through(
    status: LoadStatus, prediction: LoadPrediction | None, via: Sequence[_Reached]
) -> LoadPrediction:
    """``prediction`` (``None``: the library had none) once its needed libraries ``via`` (in
    needed order) will not load (``status`` fails), or may not (``unknown``)."""
    paths = tuple(path for _name, _prediction, path in via)
    if prediction is not None and prediction.status is not LoadStatus.LOADS:
        # Failing on its own already: that stays its message. Unknown on its own (the failures
        # have spread already): so it stays. Unknown, reached by a failure: it fails.
        if prediction.fails:
            return replace(prediction, failed_dependencies=prediction.failed_dependencies + paths)
        if status is LoadStatus.UNKNOWN:
            return prediction
    needed, dependency, _path = via[0]
    opening, how = _THROUGH[status]
    against = dependency.against
    base = prediction or LoadPrediction(against, status, "", build=dependency.build)
    return replace(
        base,
        status=status,
        message=(
            f"{opening.format(against)}: needs {needed} (bundled), {how}: {_reason(dependency)}"
        ),
        failed_dependencies=paths if status is LoadStatus.FAILS else base.failed_dependencies,
    )


def _spread(
    result: list[LoadPrediction | None],
    dependencies: Dependencies,
    paths: Sequence[str],
    status: LoadStatus,
    *,
    fixed: frozenset[int] = frozenset(),
) -> None:
    """Spread ``status`` outward from the libraries that have it to those needing them, one
    layer per round (see :func:`_through`), never to those in ``fixed``."""
    seeds = {k for k, p in enumerate(result) if p is not None and p.status is status}
    spread = set(seeds)
    frontier = set(seeds)
    settled = set(fixed)  # reached, with the dependencies reached before them listed
    while frontier:
        reached: dict[int, list[_Reached]] = {}
        for k, needs in enumerate(dependencies):
            if k in settled:
                continue  # what is reached after it (through it, in a cycle) is not its cause
            for index, name in needs:
                dependency = result[index]
                if index in frontier and index != k and dependency is not None:
                    reached.setdefault(k, []).append((name, dependency, paths[index]))
        settled |= spread
        for k, via in reached.items():
            result[k] = _through(status, result[k], via)
        frontier = set(reached) - spread
        spread |= frontier


def with_failed_dependencies(
    predictions: Sequence[LoadPrediction | None],
    dependencies: Dependencies,
    paths: Sequence[str],
) -> list[LoadPrediction | None]:
    """The predictions of one package's libraries once a library whose needed library (of the
    same package) will not load is predicted to fail too: the loader loads what a library
    needs before the library itself, and gives up on the first failure.

    ``dependencies`` are each library's in-package needed libraries (see :data:`Dependencies`;
    only the required ones: weak-linked dylibs and delay-loaded DLLs do not stop the load),
    ``paths`` their names as reports show them. The failure spreads outward from the libraries
    that fail on their own, one layer per round, so each library names a dependency that failed
    in an earlier round, and libraries that would fail only through each other (a cycle) do
    not fail: at most one round per library, whatever the graph. The message says it as
    ``needs libfoo.so.0 (bundled), which will not load: <why libfoo fails>``; every needed
    library that fails is listed in ``failed_dependencies``.

    Then, the same way, a library that would load but needs one whose load is ``unknown``
    (against a release the data cannot fully tell) is ``unknown`` too: ``needs libfoo.so.0
    (bundled), which may not load: <why that is unknown>``.
    """
    result = list(predictions)
    _spread(result, dependencies, paths, LoadStatus.FAILS)
    failed = frozenset(k for k, p in enumerate(result) if p is not None and p.fails)
    _spread(result, dependencies, paths, LoadStatus.UNKNOWN, fixed=failed)
    return result
