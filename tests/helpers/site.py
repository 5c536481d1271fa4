"""Build a fake site-packages directory around the compiled fixtures.

Layout (what each part is for):

* ``fake_dist`` 1.2.3 owns ``fakepkg/`` (an abi3 extension and a stable plugin),
  ``fakepkg_extra/`` (an unstable library), ``fakepkg.libs/libvendored-1a2b3c4d.so.1`` (a
  vendored copy of libfoo) and a script outside the site directory: one distribution, three
  top-level directories.
* ``torchish`` 0.1 owns ``torchish/`` with the signature-only library (UNSTABLE) and pins
  ``torch==2.13.0``.
* ``orphan/`` holds a library that no ``RECORD`` lists: grouped by its top-level directory.
* ``brokenpkg`` 0.0.1 owns ``brokenpkg/`` with a truncated library and a text file named ``.so``.
* ``purepy`` 1.0 is pure Python: no report.
* ``marker_pkg/`` (unowned) has ``__init__.py`` files that write a marker file when executed, and
  an abi3 extension in ``marker_pkg/sub``: auditing it by import name must not execute them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from helpers.build import Fixtures

MARKER_CODE = """
import pathlib
pathlib.Path({marker!r}).write_text("executed: " + __name__)
"""


@dataclass(frozen=True)
class FakeSite:
    """Paths of the fake site-packages and of its interesting files."""

    site: Path
    marker: Path
    corrupt: Path
    not_elf: Path


def _write_dist(
    site: Path, name: str, version: str, files: list[str], requires: tuple[str, ...] = ()
) -> None:
    dist_info = site / f"{name}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (dist_info / "METADATA").write_text("\n".join(lines) + "\n\nA long description.\n")
    record = [f"{f},sha256=AAAA,1" for f in files]
    record += [f"{dist_info.name}/METADATA,,", f"{dist_info.name}/RECORD,,"]
    (dist_info / "RECORD").write_text("\n".join(record) + "\n")


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def make_site(root: Path, built: Fixtures) -> FakeSite:
    """Create the fake site-packages under ``root`` (see the module docstring)."""
    site = root / "site-packages"
    site.mkdir(parents=True)

    _copy(built.abi3_ext, site / "fakepkg" / "_native.abi3.so")
    _copy(built.stable_plugin, site / "fakepkg" / "lib" / "libplugin.so")
    (site / "fakepkg" / "__init__.py").write_text("")
    _copy(built.unstable_lib, site / "fakepkg_extra" / "libextra.so")
    _copy(built.versioned, site / "fakepkg.libs" / "libvendored-1a2b3c4d.so.1")
    _write_dist(
        site,
        "fake_dist",
        "1.2.3",
        [
            "fakepkg/__init__.py",
            "fakepkg/_native.abi3.so",
            "fakepkg/lib/libplugin.so",
            "fakepkg_extra/libextra.so",
            "fakepkg.libs/libvendored-1a2b3c4d.so.1",
            "../../../bin/fake-tool",
        ],
    )

    _copy(built.signature_lib, site / "torchish" / "libtorchish.so")
    _write_dist(site, "torchish", "0.1", ["torchish/libtorchish.so"], ("torch==2.13.0", "numpy"))

    _copy(built.unstable_lib, site / "orphan" / "deep" / "liborphan.so")

    corrupt = site / "brokenpkg" / "libbroken.so"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(built.stable_plugin.read_bytes()[:700])
    not_elf = site / "brokenpkg" / "notes.so"
    not_elf.write_text("this is not a shared library\n")
    _copy(built.stable_plugin, site / "brokenpkg" / "libfine.so")
    _write_dist(
        site,
        "brokenpkg",
        "0.0.1",
        ["brokenpkg/libbroken.so", "brokenpkg/notes.so", "brokenpkg/libfine.so"],
    )

    (site / "purepy").mkdir()
    (site / "purepy" / "__init__.py").write_text("")
    _write_dist(site, "purepy", "1.0", ["purepy/__init__.py"])

    marker = root / "MARKER-imported"
    package = site / "marker_pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text(MARKER_CODE.format(marker=str(marker)))
    (package / "sub" / "__init__.py").write_text(MARKER_CODE.format(marker=str(marker)))
    _copy(built.abi3_ext, package / "sub" / "_speedups.abi3.so")
    return FakeSite(site=site, marker=marker, corrupt=corrupt, not_elf=not_elf)
