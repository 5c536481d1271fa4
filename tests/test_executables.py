"""Executables are libraries too: programs a package ships (``bin/`` tools linked to libtorch,
a wheel's ``.data/scripts/``) are found without reading every file, audited (kind
``executable``), listed, counted in the torch verdict but not the CPython one, and predicted to
start — or not — the way a program starts: alone, finding libtorch through its own RUNPATH.

Programs are compiled at test time against a fake torch; scripts, a licence file and a program
without an execute bit sit beside them to show what is left alone.
"""

from __future__ import annotations

import json
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from helpers.build import compiler
from helpers.fake_torch import write_torch
from helpers.wheel_builder import write_wheel
from torch_abi_audit import inspect_package, inspect_site_packages
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.json_report import load_schema
from torch_abi_audit.report import LibraryKind, PackageReport, TorchVerdict

SHIM = "aoti_torch_get_dim"
TORCH_CPU = f"#include <stdint.h>\nint32_t {SHIM}(void* t, int64_t* d) {{ *d = 1; return 0; }}\n"
C10 = "namespace c10 { namespace detail { void torchCheckFail(const char*) {} } }\n"
STABLE_TOOL = f"""
#include <stdint.h>
int32_t {SHIM}(void*, int64_t*);
int main(void) {{ int64_t d = 0; return (int){SHIM}(0, &d); }}
"""
UNSTABLE_TOOL = """
namespace c10 { namespace detail { void torchCheckFail(const char*); } }
int main() { c10::detail::torchCheckFail("x"); return 0; }
"""
PLAIN_TOOL = "int main(void) { return 0; }\n"


def build_program(output: Path, source: str, *flags: str, cxx: bool = False) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    src = output.with_name(output.name + (".cpp" if cxx else ".c"))
    src.write_text(source)
    command = [compiler("c++" if cxx else "c"), "-o", str(output), str(src), *flags]
    subprocess.run(command, check=True, capture_output=True, text=True)
    src.unlink()
    return output


def executable(path: Path, *, runnable: bool = True) -> Path:
    mode = path.stat().st_mode
    path.chmod(mode | 0o111 if runnable else mode & ~0o111)
    return path


@dataclass(frozen=True)
class Env:
    site: Path
    torch: Path
    wheel: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    prefix = tmp_path_factory.mktemp("prefix")
    site = prefix / "lib" / "python3.11" / "site-packages"
    torch = write_torch(site, "2.13.0+cpu", TORCH_CPU, C10)
    link = ["-L", str(torch / "lib"), "-Wl,--no-as-needed"]
    found = ["-Wl,-rpath,$ORIGIN/../../torch/lib", "-Wl,--enable-new-dtags"]
    pkg = site / "tooling"
    build_program(pkg / "bin" / "tool", STABLE_TOOL, *link, *found, "-l:libtorch_cpu.so")
    build_program(pkg / "bin" / "lost-tool", STABLE_TOOL, *link, "-l:libtorch_cpu.so")
    build_program(
        pkg / "bin" / "unstable-tool", UNSTABLE_TOOL, *link, *found, "-l:libc10.so", cxx=True
    )
    executable(build_program(pkg / "bin" / "noexec", PLAIN_TOOL), runnable=False)
    script = pkg / "bin" / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    executable(script)
    (pkg / "LICENSE").write_text("MIT\n")
    (pkg / "__init__.py").write_text("")
    cli = build_program(prefix / "bin" / "tooling-cli", PLAIN_TOOL)
    wrapper = prefix / "bin" / "tooling-py"
    wrapper.write_text("#!/usr/bin/env python\nimport tooling\n")
    executable(wrapper)
    files = [
        *(p.relative_to(site).as_posix() for p in sorted(pkg.rglob("*")) if p.is_file()),
        "../../../bin/tooling-cli",
        "../../../bin/tooling-py",
    ]
    dist_info = site / "tooling-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: tooling\nVersion: 1.0\n")
    record = [*files, "tooling-1.0.dist-info/METADATA", "tooling-1.0.dist-info/RECORD"]
    (dist_info / "RECORD").write_text("".join(f"{f},,\n" for f in record))
    members = {
        "tooling/bin/tool": (pkg / "bin" / "tool").read_bytes(),
        "tooling/bin/script": script.read_bytes(),
        "tooling/helper": cli.read_bytes(),  # a program's bytes, but nothing says it is one
        "tooling-1.0.data/scripts/tooling-cli": cli.read_bytes(),
        "tooling-1.0.data/scripts/tooling-py": wrapper.read_bytes(),
    }
    wheels = tmp_path_factory.mktemp("wheels")
    wheel = write_wheel(wheels, "tooling", "1.0", ["py3-none-manylinux_2_28_x86_64"], members)
    return Env(site, torch, wheel)


def programs(report: PackageReport) -> dict[str, LibraryKind]:
    return {lib.path.name: lib.kind for lib in report.executables}


def test_an_environment_scan_finds_programs_not_scripts(env: Env) -> None:
    scan = inspect_site_packages(env.site, jobs=1)
    [tooling] = [p for p in scan.packages if p.name == "tooling"]
    assert programs(tooling) == {
        "lost-tool": LibraryKind.EXECUTABLE,
        "tool": LibraryKind.EXECUTABLE,
        "unstable-tool": LibraryKind.EXECUTABLE,
        "tooling-cli": LibraryKind.EXECUTABLE,  # installed outside site-packages, in bin/
    }
    assert tooling.extensions == () and tooling.bundled_libs == ()
    # Counted for torch, not for CPython.
    assert tooling.torch_verdict is TorchVerdict.UNSTABLE
    assert tooling.cpython_verdict == "no-extensions"
    tools = {lib.path.name: lib for lib in tooling.executables}
    assert tools["tool"].torch_label == "STABLE" and tools["tool"].torch.stable_shims == (SHIM,)
    assert tools["unstable-tool"].torch_label == "UNSTABLE"


def test_programs_start_alone(env: Env) -> None:
    """Nothing is loaded before a program starts: it finds libtorch through its RUNPATH, or
    not at all (an extension module would have found it loaded by ``import torch``)."""
    report = inspect_package(env.site / "tooling", torch=env.torch, jobs=1)
    loads = {lib.path.name: lib.load for lib in report.executables}
    assert loads["tool"] is not None and not loads["tool"].fails
    lost = loads["lost-tool"]
    assert lost is not None and lost.message == (
        "will not load with torch 2.13.0+cpu: libtorch_cpu.so: cannot open shared object "
        "file: No such file or directory"
    )


def test_a_wheel_lists_its_programs(env: Env) -> None:
    report = inspect_package(env.wheel, torch=env.torch, jobs=1)
    assert sorted(lib.path.relative_to(env.wheel).as_posix() for lib in report.executables) == [
        "tooling-1.0.data/scripts/tooling-cli",
        "tooling/bin/tool",
    ]
    [tool] = [lib for lib in report.executables if lib.path.name == "tool"]
    # $ORIGIN/../../torch/lib: where installing torch puts its libraries, next to the wheel's.
    assert tool.load is not None
    assert not tool.load.fails, tool.load.message


def test_json_and_table(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(env.site / "tooling"), "--json", "--no-load-prediction"]) == 0
    document = json.loads(capsys.readouterr().out)
    jsonschema.validate(document, load_schema())
    assert {e["kind"] for e in document["executables"]} == {"executable"}
    assert document["bundled_libs"] == [] and document["extensions"] == []
    assert main([str(env.site / "tooling"), "--no-load-prediction"]) == 0
    out = capsys.readouterr().out
    assert "  Executables: 3" in out
    assert "  -- executables --" in out
    assert "] bin/unstable-tool" in out


def test_mode_bits_decide_for_extensionless_files(tmp_path: Path) -> None:
    program = build_program(tmp_path / "pkg" / "prog", PLAIN_TOOL)
    report = inspect_package(tmp_path / "pkg", jobs=1)
    assert [lib.path.name for lib in report.executables] == ["prog"]
    executable(program, runnable=False)
    assert not stat.S_IMODE(program.stat().st_mode) & 0o111
    assert inspect_package(tmp_path / "pkg", jobs=1).executables == ()
