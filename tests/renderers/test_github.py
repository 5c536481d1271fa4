"""--format github: workflow commands as the Actions runner parses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.demo_wheels import DemoWheels
from helpers.reports import unstable_package
from helpers.workflow import commands, unescape
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.base import RenderOptions
from torch_abi_audit.renderers.escaping import workflow_data, workflow_property
from torch_abi_audit.renderers.github import render
from torch_abi_audit.report import AuditResult, GateResult, GateStatus


def test_escaping_follows_githubs_rules() -> None:
    assert workflow_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert workflow_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert unescape(workflow_property("x: 1, y%")) == "x: 1, y%"
    # Other control characters are shown, not sent.
    assert workflow_data("\x1b[2J") == "\\x1b[2J"


def test_demo_annotations(
    capsys: pytest.CaptureFixture[str], demo: DemoWheels, in_demo: Path
) -> None:
    code = main([demo.port.name, demo.stable.name, "--check", "all", "--format", "github"])
    out = capsys.readouterr().out
    assert code == 1
    found = commands(out)
    errors = [(p["title"], p.get("file"), data) for name, p, data in found if name == "error"]
    assert errors == [
        (
            "torch-abi-audit: torch-unstable torch gate failed",
            demo.port.name,
            "portpkg (portpkg/lib/libcore.so): uses libtorch internals outside the stable ABI "
            "(c10::detail::torchCheckFail, at::Tensor::dim)",
        ),
        (
            "torch-abi-audit: torch-unstable torch gate failed",
            demo.port.name,
            "portpkg (portpkg/lib/libcore_cuda.so): uses libtorch internals outside the stable "
            "ABI (c10::detail::torchCheckFail, at::Tensor::dim)",
        ),
        (
            "torch-abi-audit: abi3-tagged-violations abi3 gate failed",
            demo.port.name,
            "portpkg (portpkg/_C.abi3.so): tagged abi3 but imports PyCode_Addr2Line, "
            "PyCode_Type, _PyObject_GetDictPtr",
        ),
        (
            "torch-abi-audit: torch-unpinned-unstable metadata gate failed",
            demo.port.name,
            "portpkg: uses libtorch internals but declares no torch requirement: the next torch "
            "release will break it (pin the release it was built for, torch==X.Y.*)",
        ),
    ]
    # The finding that failed the metadata gate is annotated once; info findings are notices.
    notices = [(p["title"], data) for name, p, data in found if name == "notice"]
    assert [title for title, _ in notices] == [
        "torch-abi-audit: abi3-not-free-threaded",
        "torch-abi-audit: abi3-not-free-threaded",
        "torch-abi-audit",
    ]
    assert notices[-1][1] == (
        "2 packages, 6 libraries audited; gates torch, abi3, metadata, load: 4 violations; "
        "3 findings"
    )
    # The table follows in a folded group, where no command is processed.
    assert "::group::torch-abi-audit report" in out and out.rstrip().endswith("::endgroup::")
    assert "Package: portpkg" in out


def test_paths_outside_the_working_directory_stay_absolute(
    capsys: pytest.CaptureFixture[str],
    demo: DemoWheels,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    main([str(demo.port), "--check", "torch", "--format", "github"])
    (name, properties, _), *_ = commands(capsys.readouterr().out)
    assert name == "error" and properties["file"] == demo.port.as_posix()


def test_a_name_cannot_forge_or_stop_commands(tmp_path: Path) -> None:
    hostile = "pkg\n::error title=forged::pwned\n::stop-commands::x,y:z%"
    package = unstable_package(hostile, tmp_path / "pkg", {"lib/a\n::warning::b.so": ["s\r\n::x"]})
    gate = GateResult(
        "torch", hostile, GateStatus.FAILED, hostile, library="lib/a\n::warning::b.so"
    )
    allowed = GateResult(
        "metadata", hostile, GateStatus.ALLOWED, "m", code="x", justification="known, see #12"
    )
    result = AuditResult((package,), checks=("torch",), gate_results=(gate, allowed))
    text = render(result, RenderOptions(working_directory=tmp_path))
    found = commands(text)
    # One command per annotation (the gate violation, the allowed one, the finding, the
    # summary), each carrying the hostile text intact as data.
    names = [name for name, _, _ in found]
    assert names == ["error", "notice", "error", "notice", "group", "endgroup"]
    assert found[0][2].startswith(f"{hostile} (lib/a\n::warning::b.so): ")
    assert found[0][1]["file"] == "pkg/lib/a\n::warning::b.so"
    assert found[1][1]["title"] == "torch-abi-audit: x metadata gate allowed"
    assert found[1][2].endswith("(allowed: known, see #12)")
    # Outside the stop-commands block, every line is one of our commands.
    body = text.split("::stop-commands::")[0]
    assert all(line.startswith("::") for line in body.splitlines())
