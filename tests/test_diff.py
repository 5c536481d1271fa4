"""``torch-abi-audit diff``: matching, comparison, formats, gates, saved reports, real pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from markdown_it import MarkdownIt

from helpers.build import Fixtures
from helpers.elf_builder import Sym, build_elf
from helpers.real_wheels import real_wheel
from helpers.wheel_builder import write_wheel
from helpers.workflow import commands
from torch_abi_audit import inspect_package
from torch_abi_audit.checks import CheckPolicy
from torch_abi_audit.cli import main
from torch_abi_audit.diff import (
    LibraryStatus,
    diff_packages,
    match_libraries,
    normalized_name,
)
from torch_abi_audit.renderers.base import RenderOptions
from torch_abi_audit.renderers.diff import diff_markdown
from torch_abi_audit.renderers.json_report import load_schema
from torch_abi_audit.renderers.registry import RENDERERS, get_renderer

SCHEMA = load_schema()
SARIF = jsonschema.Draft202012Validator(
    json.loads(
        (Path(__file__).parent / "fixtures" / "sarif" / "sarif-schema-2.1.0.json").read_text()
    )
)
CHECK_FAIL = "_ZN3c106detail14torchCheckFailEPKcS2_jRKSs"
SELECT_INT = "_ZN2at4_ops10select_int4callERKNS_6TensorElN3c106SymIntE"
CAT = "_ZN2at4_ops3cat4callERKN3c108IListRefINS_6TensorEEEl"
WARN = "_ZN3c104warnERKNS_7WarningE"
SIZES = "_ZNK2at10TensorBase5sizesEv"
TAG = "cp311-cp311-manylinux_2_28_x86_64"


@pytest.mark.parametrize(
    ("path", "normalized"),
    [
        ("pkg/_C.cpython-311-x86_64-linux-gnu.so", "pkg/_C.so"),
        ("pkg/_C.abi3.so", "pkg/_C.so"),
        ("pkg/_C.cp311-win_amd64.pyd", "pkg/_C.pyd"),
        ("pkg.libs/libz-915b4635.so.1", "pkg.libs/libz.so"),
        ("pkg.libs/libnvjpeg-1a359ba7.so.13.0.1.86", "pkg.libs/libnvjpeg.so"),
        ("pkg/.dylibs/libomp.1.dylib", "pkg/.dylibs/libomp.dylib"),
        ("pkg/libfoo-0123456789abcdef0123456789abcdef.dll", "pkg/libfoo.dll"),
        ("pkg/libtorchcodec_core8.so", "pkg/libtorchcodec_core8.so"),
    ],
)
def test_normalized_name(path: str, normalized: str) -> None:
    assert normalized_name(path) == normalized


def test_matching_prefers_exact_then_unique_looser_keys() -> None:
    old = [
        "pkg/_C.cpython-311-x86_64-linux-gnu.so",
        "pkg.libs/libz-915b4635.so.1",
        "pkg/libops8.so",
        "pkg/core4.so",
        "pkg/core5.so",
        "pkg/gone.so",
    ]
    new = [
        "pkg/_C.abi3.so",
        "pkg.libs/libz-0a1b2c3d.so.1",
        "pkg/libops.so",
        "pkg/core4.so",
        "pkg/core5.so",
        "pkg/core6.so",
        "other/lib/extra.so",
    ]
    pairs, only_old, only_new = match_libraries(old, new)
    how = {o: (n, h) for o, n, h in pairs}
    assert how["pkg/core4.so"] == ("pkg/core4.so", "path")
    assert how["pkg/_C.cpython-311-x86_64-linux-gnu.so"] == ("pkg/_C.abi3.so", "normalized path")
    assert how["pkg.libs/libz-915b4635.so.1"] == ("pkg.libs/libz-0a1b2c3d.so.1", "normalized path")
    assert how["pkg/libops8.so"] == ("pkg/libops.so", "file name without digits")
    assert only_old == ["pkg/gone.so"]
    # core6 shares its family with core4/core5, already paired: it is new, not a rename.
    assert only_new == ["pkg/core6.so", "other/lib/extra.so"]
    # Several candidates for one key pair nothing.
    pairs, only_old, only_new = match_libraries(["a/ops4.so", "a/ops5.so"], ["a/ops.so"])
    assert pairs == [] and only_old == ["a/ops4.so", "a/ops5.so"] and only_new == ["a/ops.so"]


def _elf(*imports: str, needed: tuple[str, ...] = ("libtorch_cpu.so", "libc10.so")) -> bytes:
    return build_elf([Sym(name, defined=False) for name in imports], needed=needed).data


def _wheels(tmp_path: Path) -> tuple[Path, Path]:
    """A port in progress: old is unstable everywhere; new moved _C to the stable ABI, kept
    a partly ported libops (renamed libops8 -> libops), dropped gone.so, added stable.so."""
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    old = write_wheel(
        old_dir,
        "mypkg",
        "1.0",
        [TAG],
        {
            "mypkg/_C.cpython-311-x86_64-linux-gnu.so": _elf(
                CHECK_FAIL, SELECT_INT, "aoti_torch_get_dim"
            ),
            "mypkg/libops8.so": _elf(CHECK_FAIL, CAT, SIZES),
            "mypkg/gone.so": _elf(WARN),
            "mypkg.libs/libz-915b4635.so.1": _elf("inflate", needed=()),
        },
        requires=["torch==2.9.1"],
    )
    new = write_wheel(
        new_dir,
        "mypkg",
        "1.1",
        [TAG],
        {
            "mypkg/_C.cpython-311-x86_64-linux-gnu.so": _elf(
                "aoti_torch_get_dim", "torch_dtype_float8_e8m0fnu"
            ),
            "mypkg/libops.so": _elf(CAT, "aoti_torch_get_dim"),
            "mypkg/stable.so": _elf("aoti_torch_get_dim"),
            "mypkg.libs/libz-0a1b2c3d.so.1": _elf("inflate", needed=()),
        },
    )
    return old, new


def test_a_port_in_progress(tmp_path: Path) -> None:
    old_wheel, new_wheel = _wheels(tmp_path)
    diff = diff_packages(inspect_package(old_wheel), inspect_package(new_wheel))
    assert (diff.old.label, diff.new.label) == ("mypkg 1.0", "mypkg 1.1")
    assert (diff.old.torch_verdict, diff.new.torch_verdict) == ("torch-unstable", "torch-unstable")
    by_name = {c.name: c for c in diff.libraries}
    core = by_name["mypkg/_C.cpython-311-x86_64-linux-gnu.so"]
    assert core.status is LibraryStatus.CHANGED and core.matched_by == "path"
    assert (core.old.torch_label, core.new.torch_label) == ("UNSTABLE", "STABLE")  # type: ignore[union-attr]
    assert {e.entity: len(e.symbols) for e in core.removed} == {
        "c10::detail::torchCheckFail": 1,
        "aten::select.int": 1,
    }
    assert core.added == () and core.shims_added == ("torch_dtype_float8_e8m0fnu",)
    ops = by_name["mypkg/libops.so"]
    assert ops.matched_by == "file name without digits" and ops.old.path == "mypkg/libops8.so"  # type: ignore[union-attr]
    assert [e.entity for e in ops.removed] == [
        "at::TensorBase::sizes",
        "c10::detail::torchCheckFail",
    ]
    assert ops.removed[0].advice.replacement == "torch::stable::Tensor::sizes"
    assert by_name["mypkg/gone.so"].status is LibraryStatus.REMOVED
    assert [e.entity for e in by_name["mypkg/gone.so"].removed] == ["c10::warn"]
    assert by_name["mypkg/stable.so"].status is LibraryStatus.ADDED
    assert by_name["mypkg.libs/libz-0a1b2c3d.so.1"].status is LibraryStatus.UNCHANGED
    assert (diff.unstable_removed, diff.unstable_added) == (5, 0)
    # The torch pin went away while libops is still unstable: a metadata regression, no torch one.
    assert [f.code for f in diff.findings_introduced] == ["torch-unpinned-unstable"]
    assert diff.failing([CheckPolicy.TORCH]) == ()
    assert [r.gate for r in diff.failing([CheckPolicy.ALL])] == [CheckPolicy.METADATA]


def test_the_reverse_regresses(tmp_path: Path) -> None:
    old_wheel, new_wheel = _wheels(tmp_path)
    diff = diff_packages(inspect_package(new_wheel), inspect_package(old_wheel))
    reasons = [r.reason for r in diff.failing([CheckPolicy.TORCH])]
    assert "mypkg/_C.cpython-311-x86_64-linux-gnu.so became UNSTABLE" in reasons
    assert (
        "mypkg/libops8.so gained unstable imports (1 -> 3): at::TensorBase::sizes, "
        "c10::detail::torchCheckFail" in reasons
    )
    assert "new library mypkg/gone.so is UNSTABLE (1 unstable imports)" in reasons


def test_gained_symbols_of_a_known_entity_and_a_rising_floor(tmp_path: Path) -> None:
    other_check = "_ZN3c106detail14torchCheckFailEPKcS2_jS2_"  # another overload
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old = write_wheel(tmp_path / "a", "p", "1", [TAG], {"p/x.so": _elf(CHECK_FAIL)})
    new = write_wheel(tmp_path / "b", "p", "2", [TAG], {"p/x.so": _elf(CHECK_FAIL, other_check)})
    diff = diff_packages(inspect_package(old), inspect_package(new))
    (regression,) = diff.failing([CheckPolicy.TORCH])
    assert regression.reason == "p/x.so gained unstable imports (1 -> 2)"
    # Same count, another mangling of the same entity (a rebuild): nothing gained.
    rebuilt = write_wheel(tmp_path / "b", "p", "3", [TAG], {"p/x.so": _elf(other_check)})
    assert diff_packages(inspect_package(old), inspect_package(rebuilt)).regressions == ()
    low = write_wheel(tmp_path / "a", "q", "1", [TAG], {"q/x.so": _elf("aoti_torch_get_dim")})
    high = write_wheel(tmp_path / "b", "q", "2", [TAG], {"q/x.so": _elf("torch_has_storage")})
    diff = diff_packages(inspect_package(low), inspect_package(high))
    assert [r.reason for r in diff.failing([CheckPolicy.TORCH])] == [
        "min torch rose from 2.9.0 to 2.14.0"
    ]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["diff", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_formats_and_gates(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old, new = _wheels(tmp_path)
    code, out, err = run(capsys, str(old), str(new))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "Diff: mypkg 1.0 -> mypkg 1.1"
    assert "  Unstable imports: 6 -> 1 (5 removed, 0 added)" in lines
    assert "    removed   [UNSTABLE            ] mypkg/gone.so  unstable 1" in lines
    assert any(
        line.startswith("        -   1  c10::detail::torchCheckFail  -> STD_TORCH_CHECK")
        for line in lines
    )
    assert not any("libz" in line for line in lines)  # unchanged: counted, not listed
    code, out, _ = run(capsys, str(old), str(new), "-v")
    assert "mypkg.libs/libz-0a1b2c3d.so.1" in out
    assert (
        "               c10::detail::torchCheckFail(char const*, char const*, unsigned int, "
        "std::string const&)" in out
    )
    # Gates.
    assert run(capsys, str(old), str(new), "--check", "torch")[0] == 0
    code, _, err = run(capsys, str(old), str(new), "--check")
    assert code == 1 and "[metadata] new error torch-unpinned-unstable" in err
    assert run(capsys, str(new), str(old), "--check", "torch")[0] == 1
    # JSON in the schema; Markdown parses, with the tables and the collapsed section.
    code, out, _ = run(capsys, str(old), str(new), "--format", "json")
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA)
    assert document["diff"]["unstable_removed"] == 5
    code, out, _ = run(capsys, str(old), str(new), "--format", "markdown")
    tokens = MarkdownIt("commonmark").enable("table").parse(out)
    # The summary, the libraries, and one table per library with entity changes (3).
    assert sum(1 for t in tokens if t.type == "table_open") == 5
    assert any(t.type == "html_block" and "<details>" in t.content for t in tokens)


def test_saved_reports_compare_like_the_wheels(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    old, new = _wheels(tmp_path)
    assert main([str(old), "--json"]) == 0
    saved = tmp_path / "old-report.json"
    saved.write_text(capsys.readouterr().out)
    _, from_wheels, _ = run(capsys, str(old), str(new), "--format", "json")
    _, from_saved, _ = run(capsys, str(saved), str(new), "--format", "json")
    assert json.loads(from_saved)["diff"] == json.loads(from_wheels)["diff"]
    # An environment report holding several packages needs --package.
    assert main([str(old), str(new), "--json"]) == 0
    both = tmp_path / "both.json"
    both.write_text(capsys.readouterr().out)
    code, _, err = run(capsys, str(both), str(new))
    assert code == 2 and "holds 2 packages (mypkg, mypkg): choose one with --package" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "no schema_version"),
        (b'{"schema_version": "2.0"}', "schema_version 2.0"),
        (b'{"schema_version": "1.4", "name": "x"}', "malformed report"),
    ],
)
def test_bad_saved_reports(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, message: str
) -> None:
    old, _ = _wheels(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    code, out, err = run(capsys, str(bad), str(old))
    assert code == 2 and out == "" and message in err


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old, _ = _wheels(tmp_path)
    code, _, err = run(capsys, str(old))
    assert code == 2 and "give two sides, OLD and NEW (got 1)" in err
    code, out, err = run(capsys, str(old), str(tmp_path / "missing.whl"))
    assert code == 2 and "path does not exist" in err
    assert "Diff: mypkg 1.0 ->" in out  # the comparison is still printed
    code, _, err = run(capsys, str(old), "./nothing-here", "-j", "0")
    assert code == 2


def test_a_side_not_read_is_said_in_every_format(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """NEW cannot be read: the comparison is still shown, but no format says "no regressions"
    as if everything had been compared; each says what was not read (exit code 2)."""
    old, _ = _wheels(tmp_path)
    missing = str(tmp_path / "missing.whl")
    code, out, _ = run(capsys, str(old), missing, "--check", "all")
    assert code == 2
    assert "Regressions: none\n" not in out
    assert "  Regressions: none found in what could be read (not everything was: see below)" in out
    not_read = out.splitlines().index("  Not read:")
    assert "path does not exist" in out.splitlines()[not_read + 1]
    code, out, _ = run(capsys, str(old), missing, "--format", "json")
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA)
    assert code == 2 and document["diff"]["regressions"] == []
    [error] = document["diff"]["errors"]
    assert "path does not exist" in error
    code, out, _ = run(capsys, str(old), missing, "--format", "markdown")
    assert code == 2 and "**Regressions:** none." not in out
    assert "**Not read:**" in out and "path does not exist" in out
    code, out, _ = run(capsys, str(old), missing, "--format", "github")
    found = commands(out)
    assert code == 2
    assert any(c[0] == "error" and c[1]["title"] == "torch-abi-audit: not read" for c in found)
    [summary] = [c for c in found if c[0] == "notice" and c[1]["title"] == "torch-abi-audit diff"]
    assert "not everything was" in summary[2]
    # Both sides read: no errors, the plain answer.
    code, out, _ = run(capsys, str(old), str(old), "--format", "json")
    assert code == 0 and json.loads(out)["diff"]["errors"] == []


def _markdown_cells(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    return [t.content for t in tokens if t.type == "inline"]


def test_hostile_names_stay_inert(tmp_path: Path) -> None:
    """A library named to break a Markdown table or inject a link stays one cell of text."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    name = "p/x|[click](http://evil)`<img src=x>`.so"
    old = write_wheel(tmp_path / "a", "p", "1", [TAG], {name: _elf(CHECK_FAIL)})
    new = write_wheel(tmp_path / "b", "p", "2", [TAG], {name: _elf("aoti_torch_get_dim")})
    markdown = diff_markdown(diff_packages(inspect_package(old), inspect_package(new)))
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    links = [c for t in tokens if t.children for c in t.children if c.type == "link_open"]
    assert links == []
    assert not any(t.type in ("html_inline", "html_block") and "img" in t.content for t in tokens)
    row = next(line for line in markdown.splitlines() if "click" in line and "changed" in line)
    assert row.count(" | ") == 4  # five cells, the pipe in the name escaped


# -- the real pairs ------------------------------------------------------------------------------

TORCHCODEC = (
    "torchcodec-0.8.1-cp311-cp311-manylinux_2_28_x86_64.whl",
    "torchcodec-0.17.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
)
TORCHAUDIO = (
    "torchaudio-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl",
    "torchaudio-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl",
)


def _json_diff(
    capsys: pytest.CaptureFixture[str], old: Path, new: Path, *extra: str
) -> tuple[int, dict[str, Any], str]:
    code, out, err = run(capsys, str(old), str(new), "--format", "json", *extra)
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA)
    return code, document["diff"], err


@pytest.mark.network
def test_torchcodec_is_a_complete_migration(capsys: pytest.CaptureFixture[str]) -> None:
    old, new = (real_wheel(name) for name in TORCHCODEC)
    code, diff, _ = _json_diff(capsys, old, new, "--check", "torch")
    assert code == 0
    assert (diff["old"]["torch_verdict"], diff["new"]["torch_verdict"]) == (
        "torch-unstable",
        "torch-stable",
    )
    assert (diff["old"]["unstable"], diff["new"]["unstable"], diff["unstable_removed"]) == (
        530,
        0,
        530,
    )
    assert diff["new"]["min_torch_version"] == "2.11.0"
    statuses = {
        lib["new"]["path"] if lib["new"] else lib["old"]["path"]: lib["status"]
        for lib in diff["libraries"]
    }
    assert statuses["torchcodec/libtorchcodec_core8.so"] == "changed"
    assert statuses["torchcodec/libtorchcodec_core9.so"] == "added"
    assert statuses["torchcodec/libtorchcodec_pybind_ops4.so"] == "removed"
    core = next(
        lib
        for lib in diff["libraries"]
        if lib["new"] and lib["new"]["path"] == "torchcodec/libtorchcodec_core8.so"
    )
    removed = {e["entity"]: e for e in core["removed"]}
    assert removed["c10::detail::torchCheckFail"]["advice"]["replacement"] == "STD_TORCH_CHECK"
    assert removed["aten::select.int"]["advice"]["replacement"] == "torch::stable::select"
    assert [f["code"] for f in diff["findings_fixed"]] == ["torch-unpinned-unstable"]
    # It does not declare the torch floor its shims need, and it vendors a CUDA runtime
    # library (nvJPEG): two metadata regressions.
    assert [r["gate"] for r in diff["regressions"]] == ["metadata", "metadata"]
    introduced = sorted(f["code"] for f in diff["findings_introduced"])
    assert "torch-floor-missing" in introduced and "bundled-cuda-runtime" in introduced
    code, reverse, _ = _json_diff(capsys, new, old, "--check", "torch")
    assert code == 1
    reasons = [r["reason"] for r in reverse["regressions"] if r["gate"] == "torch"]
    assert "torchcodec/libtorchcodec_core8.so became UNSTABLE" in reasons
    assert "the package became torch-unstable" in reasons


@pytest.mark.network
def test_torchaudio_is_a_complete_migration(capsys: pytest.CaptureFixture[str]) -> None:
    old, new = (real_wheel(name) for name in TORCHAUDIO)
    code, diff, _ = _json_diff(capsys, old, new, "--check", "torch")
    assert code == 0
    assert (diff["old"]["unstable"], diff["new"]["unstable"]) == (162, 0)
    pairs = {
        lib["old"]["path"]: (lib["new"]["path"], lib["matched_by"])
        for lib in diff["libraries"]
        if lib["old"] and lib["new"]
    }
    assert pairs["torchaudio/lib/libtorchaudio.so"] == (
        "torchaudio/lib/libtorchaudio.abi3.so",
        "normalized path",
    )
    code, reverse, _ = _json_diff(capsys, new, old, "--check", "torch")
    assert code == 1
    assert "torchaudio/lib/libtorchaudio.so became UNSTABLE" in [
        r["reason"] for r in reverse["regressions"]
    ]


def test_compiled_fixtures(built: Fixtures, tmp_path: Path) -> None:
    """Real compiled libraries: the unstable one (TORCH_CHECK's torchCheckFail, at::Tensor::dim)
    ported to the stable plugin, under the same name."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old = write_wheel(
        tmp_path / "a", "c", "1", [TAG], {"c/libops.so": built.unstable_lib.read_bytes()}
    )
    new = write_wheel(
        tmp_path / "b", "c", "2", [TAG], {"c/libops.so": built.stable_plugin.read_bytes()}
    )
    diff = diff_packages(inspect_package(old), inspect_package(new))
    (change,) = diff.libraries
    assert (change.old.torch_label, change.new.torch_label) == ("UNSTABLE", "STABLE")  # type: ignore[union-attr]
    assert {e.entity: e.advice.replacement for e in change.removed} == {
        "at::Tensor::dim": "torch::stable::Tensor::dim",
        "c10::detail::torchCheckFail": "STD_TORCH_CHECK",
    }
    assert change.shims_added == ("aoti_torch_delete_tensor_object", "torch_dtype_float8_e8m0fnu")
    assert (diff.old.min_torch, diff.new.min_torch) == (None, "2.11.0")


@pytest.mark.network
def test_requirement_sides(capsys: pytest.CaptureFixture[str]) -> None:
    """A side given as a requirement is fetched with pip (--download fills NEW)."""
    old = real_wheel(TORCHAUDIO[0])
    code, out, _ = run(
        capsys,
        str(old),
        "--download",
        "torchaudio==2.11.0",
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "--check",
        "torch",
    )
    assert code == 0
    assert out.splitlines()[0] == "Diff: torchaudio 2.9.1 -> torchaudio 2.11.0"


@pytest.mark.parametrize("name", list(RENDERERS))
def test_every_format_renders_a_diff(name: str, tmp_path: Path) -> None:
    old, new = _wheels(tmp_path)
    diff = diff_packages(inspect_package(old), inspect_package(new))
    text = get_renderer(name).render(diff, RenderOptions(working_directory=tmp_path))
    assert "mypkg" in text


def test_github_and_sarif(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old, new = _wheels(tmp_path)
    # Reversed: regressions; --check torch makes the torch ones errors, the rest warnings.
    code, out, _ = run(capsys, str(new), str(old), "--check", "torch", "--format", "github")
    assert code == 1
    found = commands(out)
    errors = [c for c in found if c[0] == "error"]
    assert errors and all(c[1]["title"] == "torch-abi-audit: torch regression" for c in errors)
    # The new build is the old wheel, outside the working directory: an absolute path.
    assert {c[1]["file"] for c in errors} == {str(old)}
    # Going back to the pinned release fixes the unpinned-unstable finding: a notice.
    assert ("notice", "torch-abi-audit: fixed torch-unpinned-unstable") in {
        (c[0], c[1].get("title")) for c in found
    }
    notices = [c for c in found if c[0] == "notice"]
    assert notices[-1][1]["title"] == "torch-abi-audit diff" and "gates torch:" in notices[-1][2]
    assert "::group::torch-abi-audit report" in out
    code, out, _ = run(capsys, str(new), str(old), "--check", "torch", "--format", "sarif")
    assert code == 1
    log = json.loads(out)
    SARIF.validate(log)
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"torch-regression"}
    assert all(r["level"] == "error" for r in results if r["ruleId"] == "torch-regression")
    became = next(r for r in results if "became UNSTABLE" in r["message"]["text"])
    assert became["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == (
        "mypkg/_C.cpython-311-x86_64-linux-gnu.so"
    )


def test_output_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old, new = _wheels(tmp_path)
    target = tmp_path / "diff.md"
    code, out, _ = run(capsys, str(old), str(new), "--format", "markdown", "-o", str(target))
    assert code == 0 and out == ""
    assert target.read_text().startswith("### torch-abi-audit diff: mypkg 1.0 → mypkg 1.1")
    code, _, err = run(capsys, str(old), str(new), "-o", str(tmp_path / "missing" / "x.txt"))
    assert code == 2 and "cannot write" in err
