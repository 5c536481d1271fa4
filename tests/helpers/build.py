"""Compile the test fixtures with the system C and C++ compilers.

Every library the tests audit is built here, during the test run, from the sources in
``tests/fixtures/src``: no binary is committed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SOURCES = Path(__file__).resolve().parent.parent / "fixtures" / "src"
EXT_SUFFIX = str(sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def compiler(language: str) -> str:
    """The system compiler for ``c`` or ``c++`` (``CC`` / ``CXX`` override)."""
    if language == "c":
        found = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    else:
        found = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not found:
        raise RuntimeError(f"no {language} compiler on PATH")
    return found


def compile_shared(source: str, output: Path, *flags: str, language: str | None = None) -> Path:
    """Build ``tests/fixtures/src/<source>`` into the shared library ``output``."""
    language = language or ("c++" if source.endswith(".cpp") else "c")
    command = [
        compiler(language),
        "-shared",
        "-fPIC",
        "-O0",
        "-o",
        str(output),
        str(SOURCES / source),
        *flags,
    ]
    if language == "c++":
        command.insert(1, "-std=c++17")
    subprocess.run(command, check=True, capture_output=True, text=True)
    return output


@dataclass(frozen=True)
class Fixtures:
    """Paths of every compiled fixture."""

    directory: Path
    abi3_ext: Path  # goodabi3.abi3.so: limited API only
    private_ext: Path  # privext.cpython-3XY-*.so: private CPython API
    abi3_bad_ext: Path  # badabi3.abi3.so: tagged abi3, private CPython API
    stable_plugin: Path  # shim imports + weak c10 definitions -> STABLE
    unstable_lib: Path  # c10::/at:: imports -> UNSTABLE
    signature_lib: Path  # only tie is a signature passing at::Tensor -> UNSTABLE
    versioned: Path  # libfoo.so.1 (plain C, versions, runpath, libm)
    versioned_link: Path  # libfoo.so -> libfoo.so.1
    sysv_hash: Path  # libfoo built with --hash-style=sysv (DT_HASH)
    tiny32: Path  # 32-bit (i386) library


def build_fixtures(directory: Path) -> Fixtures:
    """Compile every fixture into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    include = ["-I", sysconfig.get_paths()["include"]]
    abi3_ext = compile_shared("abi3_ext.c", directory / "goodabi3.abi3.so", *include)
    private_ext = compile_shared(
        "private_ext.c", directory / f"privext{EXT_SUFFIX}", *include, "-DMODULE_NAME=privext"
    )
    abi3_bad_ext = compile_shared(
        "private_ext.c", directory / "badabi3.abi3.so", *include, "-DMODULE_NAME=badabi3"
    )
    stable_plugin = compile_shared("stable_plugin.cpp", directory / "libstable_plugin.so")
    unstable_lib = compile_shared("unstable_lib.cpp", directory / "libunstable.so")
    signature_lib = compile_shared("signature_only.cpp", directory / "libsignature.so")
    plain_flags = (
        "-Wl,-soname,libfoo.so.1",
        f"-Wl,--version-script={SOURCES / 'plain.map'}",
        "-Wl,-rpath,$ORIGIN/../lib",
        "-Wl,--enable-new-dtags",
        "-lm",
    )
    versioned = compile_shared("plain.c", directory / "libfoo.so.1", *plain_flags)
    link = directory / "libfoo.so"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to("libfoo.so.1")
    sysv_hash = compile_shared(
        "plain.c", directory / "libfoo_sysv.so", *plain_flags, "-Wl,--hash-style=sysv"
    )
    tiny32 = compile_shared("tiny32.c", directory / "libtiny32.so", "-m32", "-nostdlib")
    return Fixtures(
        directory=directory,
        abi3_ext=abi3_ext,
        private_ext=private_ext,
        abi3_bad_ext=abi3_bad_ext,
        stable_plugin=stable_plugin,
        unstable_lib=unstable_lib,
        signature_lib=signature_lib,
        versioned=versioned,
        versioned_link=link,
        sysv_hash=sysv_hash,
        tiny32=tiny32,
    )
