"""libstdc++'s dual ABI, read from mangled names.

GCC 5 gave libstdc++ a second ``std::string`` (and ``std::list``) that C++11 requires: code
compiled with ``_GLIBCXX_USE_CXX11_ABI=1`` (the default since) names
``std::__cxx11::basic_string<…>`` (Itanium ``NSt7__cxx1112basic_string…``), code compiled
with ``=0`` the old ``std::string`` (abbreviated ``Ss``). The two spell every
function that takes or returns a string differently, so a library built with one cannot
resolve such an import against a libtorch built with the other: the loader reports it as an
``undefined symbol`` and nothing says why. (libstdc++ manual, "Dual ABI".) PyTorch's Linux wheels
used the old ABI until the 2.6/2.7 ``manylinux_2_28`` builds.

Only ELF with libstdc++ has this; libc++ (macOS) and MSVC have one ABI each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: The C++11 ABI's inline namespace, as it appears in mangled names.
CXX11_MARKER = "St7__cxx11"
# ``Ss`` (the pre-C++11 std::string) as a type in a mangled signature: after a qualifier or
# the end of a nested name (``RKSs``, ``PSs``, ``ESs``), or as a template argument (``ISs``).
_OLD_STRING = re.compile(r"(?:RK|PK|R|P|O|K|E|I)Ss")


def names_cxx11_string(name: str) -> bool:
    """True when the mangled ``name`` involves a C++11-ABI ``std::__cxx11`` type."""
    return CXX11_MARKER in name


def names_old_string(name: str) -> bool:
    """True when the mangled ``name`` involves the pre-C++11 ``std::string``."""
    return name.startswith("_Z") and _OLD_STRING.search(name) is not None


def uses_cxx11_abi(names: Iterable[str]) -> bool | None:
    """Whether the C++ symbols ``names`` (a build's exports) come from the C++11 ABI.

    ``True`` when one of them names a ``std::__cxx11`` type, ``False`` when one names the old
    ``std::string`` (a build with one ABI never names the other's types), ``None`` when they
    say neither.
    """
    old = False
    for name in names:
        if CXX11_MARKER in name:
            return True
        old = old or names_old_string(name)
    return False if old else None


def abi_mismatch(undefined: Iterable[str], torch_cxx11: bool | None) -> tuple[str, ...]:
    """The ``undefined`` imports that fail because they name the other ABI's string than the
    torch whose string ABI is ``torch_cxx11`` (see :func:`uses_cxx11_abi`)."""
    if torch_cxx11 is None:
        return ()
    other = names_old_string if torch_cxx11 else names_cxx11_string
    return tuple(name for name in undefined if other(name))


def abi_name(cxx11: bool) -> str:
    """How messages name an ABI."""
    return (
        "the C++11 ABI (_GLIBCXX_USE_CXX11_ABI=1)"
        if cxx11
        else ("the pre-C++11 ABI (_GLIBCXX_USE_CXX11_ABI=0)")
    )
