"""The table's -v: symbols shared by several libraries of a package are listed once."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.demo_wheels import DemoWheels
from helpers.reports import unstable_package
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.table import VERBOSE_SYMBOL_LIMIT, format_package


def test_verbose_lists_a_shared_symbol_once(
    capsys: pytest.CaptureFixture[str], demo: DemoWheels, in_demo: Path
) -> None:
    assert main([demo.port.name, "-v"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = "    [UNSTABLE] [not-abi3              ] portpkg/lib/libcore.so"
    start = lines.index(f"{row}  (stable_shim=1, unstable=2)")
    assert lines[start + 1 : start + 5] == [
        "        torch unstable: c10::detail::torchCheckFail(char const*, char const*, "
        "unsigned int, char const*)  (in 2 libraries)",
        "        torch unstable: at::Tensor::dim() const  (in 2 libraries)",
        "    [UNSTABLE] [not-abi3              ] portpkg/lib/libcore_cuda.so  "
        "(stable_shim=1, unstable=2)",
        "        (2 unstable symbols listed above)",
    ]


def test_new_symbols_still_count_against_the_limit(tmp_path: Path) -> None:
    shared = [f"c10::shared{i}()" for i in range(3)]
    own = [f"c10::own{i}()" for i in range(20)]
    package = unstable_package("pkg", tmp_path, {"liba.so": shared, "libb.so": shared + own})
    lines = format_package(package, verbose=True).splitlines()
    second = lines[lines.index(next(line for line in lines if "libb.so" in line)) + 1 :]
    listed = [line for line in second if line.startswith("        torch unstable: ")]
    assert len(listed) == VERBOSE_SYMBOL_LIMIT
    assert listed[0] == "        torch unstable: c10::own0()"
    assert "        ... 5 more" in second
    assert "        (also 3 unstable symbols listed above)" in second
