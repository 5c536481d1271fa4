"""What every finding rule is given: facts of a package's libraries, and the audit's context.

Every rule has one shape, ``(PackageFacts, RuleContext) -> list[Finding]``
(:data:`torch_abi_audit.rules.pipeline.RULES` lists them), so the same rules serve wheels,
directories and installed environments, and a rule can be tested on facts written by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from torch_abi_audit.model import VersionNeed
from torch_abi_audit.python_model import Interpreter
from torch_abi_audit.rules.cpython_abi import CPythonAnalysis
from torch_abi_audit.rules.findings import Finding
from torch_abi_audit.rules.torch_abi import TorchAnalysis
from torch_abi_audit.rules.torch_table import TorchAbiTable, load_table

if TYPE_CHECKING:  # its module's finding rule takes these facts
    from torch_abi_audit.rules.bundled_runtimes import RuntimeCopy
    from torch_abi_audit.rules.load_prediction import LoadPrediction


class LibraryFacts(NamedTuple):
    """What the rules know about one audited library (one read without error).

    ``name`` is its path inside the distribution (``torchaudio/lib/libtorchaudio.so``).
    ``os_floors`` pairs each architecture (``arm64``, ``x86_64``: one per slice of a universal
    binary) with the minimum OS release it declares, where it declares one. ``entry_points``
    are the ``PyInit_*`` / ``PyModExport_*`` names it exports; ``load`` its load prediction,
    when loading was predicted; ``runtime`` what it is when it is a copy of libtorch or of a
    CUDA runtime library; ``machine`` its architecture; ``version_needs`` the ELF symbol
    versions it requires.
    """

    name: str
    is_extension: bool
    torch: TorchAnalysis
    cpython: CPythonAnalysis
    needed: tuple[str, ...] = ()
    os_floors: tuple[tuple[str, str], ...] = ()
    entry_points: tuple[str, ...] = ()
    load: LoadPrediction | None = None
    runtime: RuntimeCopy | None = None
    machine: str | None = None
    version_needs: tuple[VersionNeed, ...] = ()


@dataclass(frozen=True)
class PackageFacts:
    """What the rules know about one package.

    ``requirements`` are its ``Requires-Dist: torch`` entries as written, ``None`` when its
    metadata is unknown or unreadable (then nothing is said about them);
    ``invalid_requirements`` the entries naming torch that are not valid requirements (they
    are not among ``requirements``); ``tags`` its wheel
    tags (from the wheel's name, or an installed ``WHEEL`` file); ``from_wheel`` whether a
    wheel file itself is audited; ``is_torch`` whether it is torch itself.
    """

    name: str
    libraries: tuple[LibraryFacts, ...] = ()
    requirements: tuple[str, ...] | None = None
    invalid_requirements: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    from_wheel: bool = False
    is_torch: bool = False


@dataclass(frozen=True)
class RuleContext:
    """What the rules need beyond the package: the environment's interpreter (when known), the
    oldest torch a stable build promises to load on (``--target-version X.Y``, when given) and
    the stable-ABI table (the shipped one unless another is given)."""

    interpreter: Interpreter | None = None
    table: TorchAbiTable | None = None
    target_version: str | None = None

    def shim_table(self) -> TorchAbiTable:
        """The stable-ABI table to judge shims with."""
        return self.table if self.table is not None else load_table()


#: The shape of every finding rule.
Rule = Callable[[PackageFacts, RuleContext], list[Finding]]
