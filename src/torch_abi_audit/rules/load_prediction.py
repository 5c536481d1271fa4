"""Will a library load on a given torch? Predicted from its imports, never by loading it.

Two questions, two kinds of evidence:

* **Against a release** (``--torch-version 2.12``): the stable-ABI table says which shims that
  release provides, and the release-exports data what the default build of the library's
  platform exports, which libraries it installs and with which CUDA major. A stable library
  loads when every shim it imports exists there (none newer, none removed); any library — an
  unstable one too — fails when that build lacks a needed library or an import, exactly as
  against an installation; what the data does not hold is ``unknown``.
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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from packaging.version import Version

from torch_abi_audit.rules.release_exports import undecidable
from torch_abi_audit.rules.torch_abi import TorchAnalysis, UnstableReason, is_torch_library
from torch_abi_audit.rules.torch_table import TorchAbiTable

#: How many missing symbols a message quotes before "and N more".
QUOTED = 3


class LoadStatus(StrEnum):
    """The predicted outcome of loading a library."""

    LOADS = "loads"
    FAILS = "fails"
    UNKNOWN = "unknown"  # the data cannot decide (a platform or build variant it does not hold)
    TIED = "tied-to-build"  # no longer produced (schema 1.4 and older): now loads/fails/unknown


@dataclass(frozen=True)
class LoadPrediction:
    """What loading one library on one torch is predicted to do.

    ``against`` names the torch (``torch 2.13.0+cpu`` or ``torch 2.12``). ``missing_libraries``
    are the loader's messages for needed libraries it cannot find; ``undefined_symbols`` the
    torch-owned imports the installation does not export; ``newer_shims`` / ``removed_shims``
    the imported shims the release does not have yet / any more. ``message`` says it in the
    loader's words. Against a release, ``build`` names the build of the library's platform the
    data judged it against (``torch 2.13.0+cu130 (linux_x86_64)``), and ``undecided_symbols``
    / ``undecided_libraries`` what the data cannot tell (then the status is ``unknown``).
    """

    against: str
    status: LoadStatus
    message: str
    missing_libraries: tuple[str, ...] = ()
    undefined_symbols: tuple[str, ...] = ()
    newer_shims: tuple[str, ...] = ()
    removed_shims: tuple[str, ...] = ()
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


def predict_against_install(
    torch: TorchAnalysis,
    against: str,
    exports: frozenset[str],
    *,
    missing_libraries: Sequence[str] = (),
    binary_format: str | None = None,
    table: TorchAbiTable | None = None,
    release: Version | None = None,
) -> LoadPrediction:
    """Will a library with analysis ``torch`` load on the installation named ``against``, whose
    libtorch libraries export ``exports``? ``missing_libraries`` are the loader's messages for
    the needed libraries it would not find (checked first, as the loader does). With the
    ``table`` and the installation's ``release``, undefined shims are told apart as too new
    for it or removed by it."""
    undefined = tuple(name for name in torch_owned_imports(torch) if name not in exports)
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
        )
    if undefined:
        first = _symbol_error(undefined[0], binary_format)
        more = f" (and {len(undefined) - 1} more)" if len(undefined) > 1 else ""
        return LoadPrediction(
            against,
            LoadStatus.FAILS,
            f"will not load with {against}: {first}{more}",
            undefined_symbols=undefined,
            newer_shims=newer,
            removed_shims=removed,
        )
    return LoadPrediction(against, LoadStatus.LOADS, f"loads with {against}")


@dataclass(frozen=True)
class ReleaseBuildView:
    """What the release data tells of the build one library is judged against.

    ``label`` names the build (``torch 2.13.0+cu130 (linux_x86_64)``); ``exports`` its recorded
    exports, ``None`` when the data does not hold that build (then ``unknown_reason`` says why);
    ``missing_libraries`` are the loader's messages for needed torch or CUDA libraries the build
    does not provide, ``undecided_libraries`` needed names the data cannot place; ``no_devices``
    the shim device tiers the build lacks (``cuda`` on a CPU build, ``mps`` off macOS).
    """

    label: str | None = None
    exports: frozenset[str] | None = None
    unknown_reason: str | None = None
    missing_libraries: tuple[str, ...] = ()
    undecided_libraries: tuple[str, ...] = ()
    no_devices: frozenset[str] = frozenset()


def _shim_failure(
    torch: TorchAnalysis, table: TorchAbiTable, release: Version, label: str
) -> LoadPrediction | None:
    newer, removed = table.missing_in(torch.stable_shims, release)
    if not newer and not removed:
        return None
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
    )


def predict_against_release(
    torch: TorchAnalysis,
    table: TorchAbiTable,
    release: Version,
    label: str,
    build: ReleaseBuildView | None = None,
    *,
    binary_format: str | None = None,
) -> LoadPrediction | None:
    """Will a library with analysis ``torch`` load on torch ``release``? ``None`` when it
    neither uses torch nor needs a torch or CUDA library (nothing to say). ``label`` names the
    release in messages (``torch 2.12``); ``build`` is what the release data says of its
    platform's build.

    Needed libraries come first, as for the loader. A stable library is then judged by the shim
    table (shims too new or removed), and by the device tiers the build has. Where the data holds
    the build's exports, every torch-owned import is resolved against them exactly as against an
    installation (:func:`predict_against_install`); imports of kinds the data does not record,
    a build it does not hold (for an unstable library) and needed libraries it cannot place make
    the answer ``unknown``, never a guess.
    """
    view = build or ReleaseBuildView()
    if not (torch.uses_torch or view.missing_libraries or view.undecided_libraries):
        return None
    if torch.stable and not view.missing_libraries:
        failure = _shim_failure(torch, table, release, label)
        if failure is not None:
            return replace(failure, build=view.label)
    owned = torch_owned_imports(torch)
    undecided = undecidable(owned, (*table.internal_c_symbols, *table.shims))
    exports = view.exports
    if exports is None:
        # Without the build's exports only the shim table speaks: shims of a device tier the
        # build lacks are missing, everything else is taken as present.
        absent = {
            name
            for name in torch.stable_shims
            if (shim := table.shims.get(name)) is not None and shim.device in view.no_devices
        }
        exports = frozenset(owned) - absent
    prediction = predict_against_install(
        torch,
        label,
        exports | frozenset(undecided),
        missing_libraries=view.missing_libraries,
        binary_format=binary_format,
        table=table,
        release=release,
    )
    prediction = replace(prediction, build=view.label)
    if prediction.fails:
        return prediction
    reasons = []
    if view.exports is None and torch.uses_torch and not torch.stable:
        reasons.append(view.unknown_reason or "the data holds no build of its platform")
    if view.exports is not None and undecided:
        reasons.append(f"imports the data does not record ({_quoted(undecided)})")
    if view.undecided_libraries:
        reasons.append(
            f"needs {_quoted(view.undecided_libraries)}, which {view.label or label} does not "
            "install (found only where the environment provides it)"
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
