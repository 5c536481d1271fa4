"""Will a library load on a given torch? Predicted from its imports, never by loading it.

Two questions, two kinds of evidence:

* **Against a release** (``--torch-version 2.12``): the stable-ABI table says which shims that
  release provides. A stable library loads when every shim it imports exists there (none newer,
  none removed). An unstable library is tied to the release it was built with: the table cannot
  say more.
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
for the torch verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from packaging.version import Version

from torch_abi_audit.rules.cxx_abi import abi_mismatch, abi_name
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
    TIED = "tied-to-build"  # unstable, judged against a release: only its build's release is safe


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
    way, the library cannot resolve them; the message then says so.
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


def _quoted(names: Sequence[str]) -> str:
    shown = ", ".join(names[:QUOTED])
    return shown + (f" and {len(names) - QUOTED} more" if len(names) > QUOTED else "")


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
        parts.append(f"{len(weak)} weak import{'s' if len(weak) > 1 else ''} ({_quoted(weak)})")
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
            tuple(missing_libraries),
            undefined,
            newer,
            removed,
            weak_undefined,
            optional,
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


def predict_against_release(
    torch: TorchAnalysis, table: TorchAbiTable, release: Version, label: str
) -> LoadPrediction | None:
    """Will a library with analysis ``torch`` load on torch ``release``? ``None`` when it does
    not use torch (nothing to say). ``label`` names the release in messages (``torch 2.12``)."""
    if not torch.uses_torch:
        return None
    if not torch.stable:
        return LoadPrediction(
            label,
            LoadStatus.TIED,
            f"tied to the torch release it was built with (uses libtorch internals); "
            f"{label} is safe only if that is the one",
        )
    newer, removed = table.missing_in(torch.required_shims, release)
    weak_newer, weak_removed = table.missing_in(torch.weak_imports, release)
    weak = tuple(sorted(weak_newer + weak_removed))
    if not newer and not removed:
        note = _optional_note(weak, ())
        return LoadPrediction(
            label, LoadStatus.LOADS, f"loads with {label}{note}", weak_undefined_symbols=weak
        )
    reasons = []
    if newer:
        reasons.append(f"needs torch>={torch.min_torch_version} ({_quoted(newer)})")
    if removed:
        reasons.append(f"imports shims removed by {label} ({_quoted(removed)})")
    return LoadPrediction(
        label,
        LoadStatus.FAILS,
        f"will not load with {label}: {'; '.join(reasons)}",
        newer_shims=newer,
        removed_shims=removed,
        weak_undefined_symbols=weak,
    )


#: A library's in-package dependencies: ``(index of the library it needs, the name it needs it
#: by)`` per library, in its ``needed`` order (what :func:`with_failed_dependencies` takes).
Dependencies = Sequence[Sequence[tuple[int, str]]]


def _reason(prediction: LoadPrediction) -> str:
    """What a failed prediction's message says after ``will not load with <torch>:``."""
    prefix = f"will not load with {prediction.against}: "
    message = prediction.message
    return message[len(prefix) :] if message.startswith(prefix) else message


def _failed_by(
    prediction: LoadPrediction | None,
    failing: Sequence[tuple[str, LoadPrediction, str]],
) -> LoadPrediction:
    """``prediction`` (``None``: the library had none) once its needed libraries ``failing``
    (``(name it needs it by, their prediction, their path)``, in needed order) do not load."""
    paths = tuple(path for _name, _prediction, path in failing)
    if prediction is not None and prediction.fails:
        # It fails on its own already: that stays its message.
        return replace(prediction, failed_dependencies=prediction.failed_dependencies + paths)
    needed, dependency, _path = failing[0]
    against = dependency.against
    base = prediction or LoadPrediction(against, LoadStatus.FAILS, "")
    return replace(
        base,
        status=LoadStatus.FAILS,
        message=(
            f"will not load with {against}: needs {needed} (bundled), which will not load: "
            f"{_reason(dependency)}"
        ),
        failed_dependencies=paths,
    )


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
    """
    result = list(predictions)
    failed = {k for k, p in enumerate(result) if p is not None and p.fails}
    frontier = set(failed)
    settled: set[int] = set()  # failed, with the dependencies that failed before them listed
    while frontier:
        reached: dict[int, list[tuple[str, LoadPrediction, str]]] = {}
        for k, needs in enumerate(dependencies):
            if k in settled:
                continue  # what fails after it (through it, in a cycle) is not its cause
            for index, name in needs:
                dependency = result[index]
                if index in frontier and index != k and dependency is not None:
                    reached.setdefault(k, []).append((name, dependency, paths[index]))
        settled |= failed
        for k, failing in reached.items():
            result[k] = _failed_by(result[k], failing)
        frontier = set(reached) - failed
        failed |= frontier
    return result
