"""libstdc++'s dual ABI: a library built with the other ``_GLIBCXX_USE_CXX11_ABI`` than torch.

Compiled at test time: a fake ``libc10.so`` defining ``c10::detail::torchCheckFail(…, const
std::string&)`` with one ABI, and extensions calling it built with one or the other. The
prediction says why the import cannot resolve, in both directions; the names come from the
compiler, not typed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.fake_torch import build_library, write_torch
from helpers.real_wheels import installed_torch
from torch_abi_audit import inspect_package
from torch_abi_audit.readers import read_library
from torch_abi_audit.rules.cxx_abi import (
    abi_mismatch,
    names_cxx11_string,
    names_old_string,
    uses_cxx11_abi,
)
from torch_abi_audit.sources.torch_install import load_torch_install

C10 = """
#include <cstdint>
#include <string>
namespace c10 { namespace detail {
void torchCheckFail(const char*, const char*, uint32_t, const std::string&) {}
} }
"""
EXT = """
#include <cstdint>
#include <string>
namespace c10 { namespace detail {
void torchCheckFail(const char*, const char*, uint32_t, const std::string&);
} }
extern "C" void check(bool ok) { if (!ok) c10::detail::torchCheckFail("f", "x.cpp", 1, "no"); }
"""
TORCH_CPU = "int aoti_torch_get_dim(void* t, long* d) { *d = 1; return 0; }\n"
NEW, OLD = "-D_GLIBCXX_USE_CXX11_ABI=1", "-D_GLIBCXX_USE_CXX11_ABI=0"


def torch_with(root: Path, flag: str) -> Path:
    torch = write_torch(root, "2.13.0", TORCH_CPU, "")
    build_library(torch / "lib", "libc10.so", C10, "-Wl,-soname,libc10.so", flag, cxx=True)
    return torch


def extension(directory: Path, torch: Path, flag: str) -> Path:
    link = ["-L", str(torch / "lib"), "-l:libc10.so"]
    return build_library(directory / "ext", "libext.so", EXT, flag, *link, cxx=True)


def test_names_tell_the_abi(tmp_path: Path) -> None:
    new = read_library(extension(tmp_path / "n", torch_with(tmp_path / "tn", NEW), NEW))
    old = read_library(extension(tmp_path / "o", torch_with(tmp_path / "to", OLD), OLD))
    [new_name] = [n for n in new.imports.names() if "torchCheckFail" in n]
    [old_name] = [n for n in old.imports.names() if "torchCheckFail" in n]
    assert names_cxx11_string(new_name) and not names_old_string(new_name)
    assert names_old_string(old_name) and not names_cxx11_string(old_name)
    assert uses_cxx11_abi([new_name, "aoti_torch_get_dim"]) is True
    assert uses_cxx11_abi([old_name]) is False
    assert uses_cxx11_abi(["aoti_torch_get_dim", "_ZN3c104HalfC1Ef"]) is None
    assert abi_mismatch([new_name, old_name], torch_cxx11=True) == (old_name,)
    assert abi_mismatch([new_name, old_name], torch_cxx11=False) == (new_name,)
    assert abi_mismatch([new_name, old_name], torch_cxx11=None) == ()


@pytest.mark.parametrize(
    ("torch_flag", "ext_flag", "explained"),
    [
        (
            NEW,
            OLD,
            "built with the pre-C++11 ABI (_GLIBCXX_USE_CXX11_ABI=0) but torch 2.13.0 "
            "with the C++11 ABI (_GLIBCXX_USE_CXX11_ABI=1)",
        ),
        (
            OLD,
            NEW,
            "built with the C++11 ABI (_GLIBCXX_USE_CXX11_ABI=1) but torch 2.13.0 "
            "with the pre-C++11 ABI (_GLIBCXX_USE_CXX11_ABI=0)",
        ),
        (NEW, NEW, None),
        (OLD, OLD, None),
    ],
)
def test_the_other_abi_is_explained(
    tmp_path: Path, torch_flag: str, ext_flag: str, explained: str | None
) -> None:
    torch = torch_with(tmp_path, torch_flag)
    assert load_torch_install(torch).cxx11_abi is (torch_flag == NEW)
    extension(tmp_path, torch, ext_flag)
    [lib] = inspect_package(tmp_path / "ext", torch=torch, jobs=1).libraries
    assert lib.torch_label == "UNSTABLE"
    load = lib.load
    assert load is not None
    if explained is None:
        assert not load.fails and load.cxx11_abi_mismatch == ()
        return
    assert load.fails
    [symbol] = load.cxx11_abi_mismatch
    assert load.undefined_symbols == (symbol,)
    assert explained in load.message
    assert "its imports taking or returning std::string cannot resolve" in load.message
    assert "c10::detail::torchCheckFail(char const*, char const*, unsigned int, " in load.message


@pytest.mark.torch
def test_the_real_torch_uses_the_cxx11_abi() -> None:
    assert load_torch_install(installed_torch()).cxx11_abi is True
