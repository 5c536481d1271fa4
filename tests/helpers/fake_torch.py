"""Fake torch installations and the libraries linked against them, compiled at test time.

A fake torch is a ``torch`` package directory with ``version.py`` and ``lib/libtorch_cpu.so``
/ ``lib/libc10.so`` built from the C and C++ sources a test gives: what they export is what the
libraries judged against them can resolve. Nothing here is ever loaded.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers.build import compiler


def build_library(directory: Path, name: str, source: str, *flags: str, cxx: bool = False) -> Path:
    """Compile ``source`` (C, or C++ with ``cxx``) into the shared library ``directory/name``."""
    directory.mkdir(parents=True, exist_ok=True)
    src = directory / (name + (".cpp" if cxx else ".c"))
    src.write_text(source)
    out = directory / name
    command = [compiler("c++" if cxx else "c"), "-shared", "-fPIC", "-o", str(out), str(src)]
    subprocess.run([*command, *flags], check=True, capture_output=True, text=True)
    src.unlink()
    return out


def write_torch(root: Path, version: str, torch_cpu_source: str, c10_source: str) -> Path:
    """``root/torch`` with ``lib/libtorch_cpu.so`` (C), ``lib/libc10.so`` (C++) and
    ``version.py``; returns the ``torch`` directory."""
    lib = root / "torch" / "lib"
    build_library(lib, "libtorch_cpu.so", torch_cpu_source, "-Wl,-soname,libtorch_cpu.so")
    build_library(lib, "libc10.so", c10_source, "-Wl,-soname,libc10.so", cxx=True)
    (root / "torch" / "version.py").write_text(f"__version__ = '{version}'\n")
    return root / "torch"
