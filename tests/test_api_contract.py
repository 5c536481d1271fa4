"""The Python API is a contract: a client written for torch-abi-audit 0.3 keeps working.

``allowlist_check`` below is such a client, as release engineers wrote them around the
predecessor (vLLM's CI kept one): it audits a package and compares the libraries that are not
on the PyTorch stable ABI with an allowlist, failing on new offenders and on stale entries. It
uses only what 0.3 offered — ``inspect_package``, ``torch_abi_audit.report.PackageReport`` and
``ExtensionReport``, ``report.root``, ``report.error``, ``report.extensions``,
``report.bundled_libs``, ``lib.path``, ``lib.error``, ``lib.torch.uses_torch``,
``lib.torch.stable`` and ``lib.cpython.compliant`` — and must not change when the package
grows. Do not modernise it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.real_wheels import real_wheel
from torch_abi_audit import inspect_package
from torch_abi_audit.report import ExtensionReport, PackageReport


def allowlist_check(
    target: str | Path, allowlist: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """(new offenders, stale allowlist entries, libraries claiming abi3 that are not), as the
    predecessor's clients computed them: library paths relative to ``report.root``."""
    report = inspect_package(target)
    assert isinstance(report, PackageReport)
    if report.error:
        raise RuntimeError(f"audit failed: {report.error}")
    unstable: set[str] = set()
    not_abi3: set[str] = set()
    for lib in list(report.extensions) + list(report.bundled_libs):
        assert isinstance(lib, ExtensionReport)
        if lib.error:
            raise RuntimeError(f"{lib.path}: {lib.error}")
        name = os.path.relpath(str(lib.path), str(report.root)).replace(os.sep, "/")
        if lib.torch.uses_torch and not lib.torch.stable:
            unstable.add(name)
        if name.endswith(".abi3.so") and not lib.cpython.compliant:
            not_abi3.add(name)
    new = sorted(unstable - set(allowlist))
    stale = sorted(set(allowlist) - unstable)
    return new, stale, sorted(not_abi3)


@pytest.fixture
def package(built: Fixtures, tmp_path: Path) -> Path:
    root = tmp_path / "site" / "mypkg"
    (root / "lib").mkdir(parents=True)
    shutil.copyfile(built.unstable_lib, root / "lib" / "libcore.so")
    shutil.copyfile(built.stable_plugin, root / "lib" / "libops.so")
    shutil.copyfile(built.abi3_ext, root / "_native.abi3.so")
    shutil.copyfile(built.abi3_bad_ext, root / "_legacy.abi3.so")
    (root / "__init__.py").write_text("raise SystemExit('imported!')\n")
    return root


def test_allowlist_client_by_path(package: Path) -> None:
    assert allowlist_check(str(package), ["lib/libcore.so"]) == ([], [], ["_legacy.abi3.so"])
    assert allowlist_check(package, []) == (["lib/libcore.so"], [], ["_legacy.abi3.so"])
    # The library was ported (or removed): the allowlist entry is stale.
    (package / "lib" / "libcore.so").unlink()
    assert allowlist_check(package, ["lib/libcore.so"]) == (
        [],
        ["lib/libcore.so"],
        ["_legacy.abi3.so"],
    )


def test_allowlist_client_by_import_name(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An import name is resolved on sys.path, never imported (its __init__ would exit).
    monkeypatch.setattr(sys, "path", [str(package.parent), *sys.path])
    assert allowlist_check("mypkg", ["lib/libcore.so", "lib/old.so"]) == (
        [],
        ["lib/old.so"],
        ["_legacy.abi3.so"],
    )


def test_allowlist_client_reports_errors(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="audit failed"):
        allowlist_check("no_such_package_for_sure", [])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "libbad.so").write_bytes(b"\x7fELF" + b"\x00" * 10)
    with pytest.raises(RuntimeError, match=r"libbad\.so"):
        allowlist_check(broken, [])


@pytest.mark.network
def test_allowlist_client_on_a_real_wheel() -> None:
    wheel = real_wheel("torchaudio-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl")
    allowed = ["torchaudio/lib/libtorchaudio.so"]
    assert allowlist_check(wheel, allowed) == ([], [], [])
    assert allowlist_check(wheel, [])[0] == allowed
