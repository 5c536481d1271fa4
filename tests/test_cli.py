"""The command line: every mode, flag and exit code, output checked line by line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from helpers.build import SOURCES, Fixtures, compile_shared
from helpers.site import FakeSite
from torch_abi_audit import __version__
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.json_report import load_schema

SCHEMA = load_schema()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *argv, "--json")
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA)
    return code, document


@pytest.fixture
def package_dir(built: Fixtures, tmp_path: Path) -> Path:
    package = tmp_path / "mypkg"
    (package / "lib").mkdir(parents=True)
    shutil.copyfile(built.abi3_ext, package / built.abi3_ext.name)
    shutil.copyfile(built.stable_plugin, package / "lib" / "libplugin.so")
    shutil.copyfile(built.unstable_lib, package / "lib" / "libcore.so")
    return package


def test_single_file_table(capsys: pytest.CaptureFixture[str], built: Fixtures) -> None:
    code, out, err = run(capsys, str(built.stable_plugin))
    assert code == 0 and err == ""
    assert out.splitlines() == [
        "Package: libstable_plugin.so",
        f"  Root: {built.stable_plugin.parent}",
        "  Torch ABI:   STABLE",
        "  Min torch:   2.11.0",
        "  CPython ABI: n/a",
        "  Extensions:  0",
        "  Bundled libs: 1",
        "  -- bundled libs --",
        "    [STABLE  ] [not-abi3              ] libstable_plugin.so"
        "  (stable_shim=3, unstable=0)  min-torch=2.11.0",
    ]


def test_directory_table(capsys: pytest.CaptureFixture[str], package_dir: Path) -> None:
    code, out, _ = run(capsys, str(package_dir))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Package: mypkg"
    assert "  Torch ABI:   UNSTABLE" in lines
    assert "  Min torch:   n/a" in lines
    assert "  CPython ABI: abi3" in lines
    assert "  Extensions:  1" in lines
    assert "  Bundled libs: 2" in lines
    assert "    [NO-TORCH] [abi3-ok               ] goodabi3.abi3.so" in lines
    assert (
        "    [UNSTABLE] [not-abi3              ] lib/libcore.so  (stable_shim=1, unstable=2)"
        in lines
    )
    assert lines.index("  -- extensions --") < lines.index("  -- bundled libs --")


def test_verbose_lists_symbols_and_reasons(
    capsys: pytest.CaptureFixture[str], built: Fixtures
) -> None:
    code, out, _ = run(capsys, str(built.signature_lib), str(built.stable_plugin), "-v")
    assert code == 0
    assert (
        "        torch unstable: mypkg::process(at::Tensor const&)"
        "  <- signature passes at::Tensor, a libtorch type" in out.splitlines()
    )
    assert "        requires torch 2.11.0: torch_dtype_float8_e8m0fnu" in out.splitlines()
    # Two targets: two blocks separated by a blank line.
    assert out.count("Package: ") == 2 and "\n\nPackage: " in out


def test_verbose_cuts_at_fifteen_symbols(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "many.cpp"
    calls = "\n".join(f"  c10::internal_{i}();" for i in range(20))
    decls = "\n".join(f"void internal_{i}();" for i in range(20))
    source.write_text(f'namespace c10 {{\n{decls}\n}}\nextern "C" void entry() {{\n{calls}\n}}\n')
    library = tmp_path / "libmany.so"
    subprocess.run(
        [shutil.which("c++") or "g++", "-shared", "-fPIC", "-o", str(library), str(source)],
        check=True,
    )
    _, out, _ = run(capsys, str(library), "-v")
    unstable = [line for line in out.splitlines() if line.startswith("        torch unstable: ")]
    assert len(unstable) == 15
    assert "        ... 5 more" in out.splitlines()
    assert "(stable_shim=0, unstable=20)" in out


def test_json_single_target(capsys: pytest.CaptureFixture[str], package_dir: Path) -> None:
    code, document = run_json(capsys, str(package_dir))
    assert code == 0
    assert document["schema_version"] == "1.13"
    assert document["document"] == "package"
    assert document["name"] == "mypkg"
    assert document["torch_verdict"] == "torch-unstable"
    assert document["cpython_verdict"] == "abi3-compliant"
    libs = {Path(lib["path"]).name: lib for lib in document["bundled_libs"]}
    core = libs["libcore.so"]
    assert core["torch"]["stable"] is False
    assert core["torch"]["stable_shim_count"] == 1
    assert {d["reason"] for d in core["torch"]["unstable_details"]} == {"namespace"}
    assert core["soname"] is None and isinstance(core["needed"], list)
    plugin = libs["libplugin.so"]
    assert plugin["torch"]["min_torch_version"] == "2.11.0"
    assert plugin["torch_label"] == "STABLE"


def test_json_several_targets_make_a_targets_document(
    capsys: pytest.CaptureFixture[str], built: Fixtures
) -> None:
    code, document = run_json(capsys, str(built.abi3_ext), str(built.unstable_lib))
    assert code == 0
    # No made-up environment: no site-packages was scanned.
    assert document["document"] == "targets"
    assert "site_packages" not in document and "search_paths" not in document
    assert [p["name"] for p in document["packages"]] == [
        "goodabi3.abi3.so",
        "libunstable.so",
    ]


def test_site_packages_table(capsys: pytest.CaptureFixture[str], fake_site: FakeSite) -> None:
    code, out, err = run(capsys, "--site-packages", str(fake_site.site))
    assert code == 2  # brokenpkg holds corrupt files
    assert "error: inspection failed for brokenpkg" in err
    lines = out.splitlines()
    assert lines[0] == f"Site-packages: {fake_site.site}"
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("PACKAGE"))
    rows = [line.split()[0] for line in lines[header + 2 :] if line.strip()][:4]
    # Unstable first (alphabetical), then errors; no-torch packages hidden without --all.
    assert rows == ["fake_dist", "orphan", "torchish", "brokenpkg"]
    assert "marker_pkg" not in out
    assert "1 without torch use hidden (--all shows them)" in out


def test_site_packages_all_and_json(
    capsys: pytest.CaptureFixture[str], fake_site: FakeSite
) -> None:
    code, out, _ = run(capsys, "--site-packages", str(fake_site.site), "--all")
    assert code == 2
    assert "marker_pkg" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("torchish"))
    assert row.split() == ["torchish", "UNSTABLE", "-", "n/a", "0", "1", "0.1", "-"]
    code, document = run_json(capsys, "--site-packages", str(fake_site.site))
    assert code == 2
    names = {p["name"]: p for p in document["packages"]}
    assert set(names) == {"brokenpkg", "fake_dist", "marker_pkg", "orphan", "torchish"}
    assert names["fake_dist"]["distribution"] == {
        "name": "fake_dist",
        "version": "1.2.3",
        "requires_torch": [],
        "tags": [],
    }
    # fake_dist uses libtorch internals (fakepkg_extra) and declares no torch requirement.
    finding, unstable = names["fake_dist"]["findings"]
    assert finding["code"] == "torch-unpinned-unstable" and finding["severity"] == "error"
    assert finding["libraries"] == [] and finding["gates"] == ["metadata"]
    # The UNSTABLE row as a finding too (what the torch gate fails), naming its library.
    assert unstable["code"] == "torch-unstable" and unstable["gates"] == ["torch"]
    assert unstable["libraries"] == ["fakepkg_extra/libextra.so"]
    assert finding["evidence"]["unstable_libraries"] == ["fakepkg_extra/libextra.so"]
    assert names["brokenpkg"]["torch_verdict"] == "error"


def test_site_packages_verbose_expands_attention_packages(
    capsys: pytest.CaptureFixture[str], fake_site: FakeSite
) -> None:
    _, out, _ = run(capsys, "--site-packages", str(fake_site.site), "-v")
    assert "Package: torchish" in out
    assert "Package: brokenpkg" in out
    assert "(error: " in out
    assert "Package: marker_pkg" not in out


def test_check_gates(capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path) -> None:
    stable = tmp_path / "stablepkg"
    stable.mkdir()
    shutil.copyfile(built.stable_plugin, stable / "libp.so")
    shutil.copyfile(built.abi3_ext, stable / built.abi3_ext.name)
    assert run(capsys, str(stable), "--check", "both")[0] == 0
    code, _, err = run(capsys, str(built.unstable_lib), "--check", "torch")
    assert code == 1
    assert "FAIL: --check torch found 1 non-compliant package(s):" in err
    assert (
        "  libunstable.so: [torch] torch-unstable (libunstable.so): uses libtorch internals "
        "outside the stable ABI (c10::detail::torchCheckFail, at::Tensor::dim)"
    ) in err.splitlines()
    assert run(capsys, str(built.unstable_lib), "--check", "abi3")[0] == 0
    code, _, err = run(capsys, str(built.abi3_bad_ext), "--check", "abi3")
    assert code == 1
    assert "(badabi3.abi3.so): tagged abi3 but imports PyCode_Addr2Line" in err
    # A torch-using package whose extension is not abi3-compliant fails abi3 too.
    mixed = tmp_path / "torchext"
    mixed.mkdir()
    shutil.copyfile(built.stable_plugin, mixed / "libp.so")
    shutil.copyfile(built.private_ext, mixed / built.private_ext.name)
    code, _, err = run(capsys, str(mixed), "--check", "abi3")
    assert code == 1 and "CPython ABI is not-abi3" in err
    assert run(capsys, str(mixed), "--check", "torch")[0] == 0


def test_errors_win_over_check_failures(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    bad = tmp_path / "libbad.so"
    bad.write_text("not elf")
    code, out, err = run(capsys, str(built.unstable_lib), str(bad), "--check", "torch")
    assert code == 2
    assert "FAIL: --check torch" in err
    assert "[ERROR   ] [n/a                   ] libbad.so  (error: not a shared library" in out
    assert "[UNSTABLE]" in out  # the rest of the report is intact


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no_such_module_for_sure"], "no module or package named 'no_such_module_for_sure'"),
        (["./missing/dir"], "path does not exist"),
    ],
)
def test_operational_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_usage_errors(capsys: pytest.CaptureFixture[str], built: Fixtures) -> None:
    assert run(capsys)[0] == 2
    code, _, err = run(capsys, "--env", "--download", "x==1")
    assert code == 2 and "cannot be combined" in err
    with pytest.raises(SystemExit) as exc:
        main(["--check", "nonsense", str(built.abi3_ext)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["--jobs", "0", str(built.abi3_ext)])
    assert exc.value.code == 2


def test_import_name_target_does_not_execute(fake_site: FakeSite) -> None:
    env = {**os.environ, "PYTHONPATH": str(fake_site.site)}
    result = subprocess.run(
        [sys.executable, "-m", "torch_abi_audit", "marker_pkg.sub", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["name"] == "marker_pkg.sub"
    assert [Path(e["path"]).name for e in document["extensions"]] == ["_speedups.abi3.so"]
    assert not fake_site.marker.exists()


def test_env_mode_and_module_entry_point() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "torch_abi_audit", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == f"torch-abi-audit {__version__}"
    result = subprocess.run(
        [sys.executable, "-m", "torch_abi_audit", "--env", "--all", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 2), result.stderr
    assert "Traceback" not in result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    import sysconfig

    assert document["site_packages"] == str(Path(sysconfig.get_paths()["purelib"]).absolute())
    # This interpreter has packaging installed: it has no compiled code, so it is absent,
    # while pycxxfilt (a compiled extension) must be listed.
    names = {p["name"] for p in document["packages"]}
    assert "pycxxfilt" in names


def test_broken_pipe_is_quiet(built: Fixtures) -> None:
    command = f"{sys.executable} -m torch_abi_audit {built.unstable_lib} -v | head -n 1"
    result = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
    assert result.stdout.startswith("Package: ")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


#: What the command's import leaves for the runs that need it: the worker pool's machinery,
#: the other formats' readers, load prediction, configuration files, the other subcommands and
#: formats, and the modules only a mistake (a "did you mean" hint) uses.
DEFERRED_MODULES = (
    "concurrent.futures",
    "multiprocessing",
    "ctypes",
    "difflib",
    "tomllib",
    "packaging.requirements",
    "torch_abi_audit.readers.macho",
    "torch_abi_audit.readers.pe",
    "torch_abi_audit.loading",
    "torch_abi_audit.survey",
    "torch_abi_audit.commands.diff",
    "torch_abi_audit.renderers.sarif",
    "torch_abi_audit.renderers.markdown",
)


def test_importing_the_command_leaves_out_what_a_run_may_not_need() -> None:
    # Every run pays for the command's import (benchmarks/bench_startup.py times it): what
    # only some runs use is imported where they use it.
    program = (
        "import sys, torch_abi_audit.cli\n"
        f"print([m for m in {DEFERRED_MODULES!r} if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_console_entry_exits_quickly_without_losing_anything(built: Fixtures) -> None:
    # The console script ends the process with os._exit after an audit: what was printed is
    # all there, the exit code is the audit's (1: a gate failed), atexit handlers still run.
    program = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
        "from torch_abi_audit.cli import run\n"
        "run()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, str(built.unstable_lib), "--check", "torch", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["torch_verdict"] == "torch-unstable"
    assert result.stderr.splitlines()[-1] == "atexit ran"
    assert "FAIL: --check torch" in result.stderr
    # A subcommand exits the usual way, with its own code.
    result = subprocess.run(
        [sys.executable, "-c", program, "explain", "no-such-thing-at-all"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1, 2) and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == "atexit ran"


def test_closed_or_full_standard_streams_are_operational_errors_not_crashes(
    built: Fixtures, tmp_path: Path
) -> None:
    # A process started with its standard output closed (>&-) has no sys.stdout: the report
    # cannot be written (exit 2, said on standard error), unless it goes to a file (-o).
    def shell(arguments: str) -> subprocess.CompletedProcess[str]:
        command = f"{sys.executable} -m torch_abi_audit {arguments}"
        return subprocess.run(command, shell=True, capture_output=True, text=True, check=False)

    closed = shell(f"{built.unstable_lib} >&-")
    assert closed.returncode == 2
    assert "standard output is closed" in closed.stderr and "Traceback" not in closed.stderr
    report = tmp_path / "report.json"
    to_file = shell(f"{built.unstable_lib} --json -o {report} >&-")
    assert to_file.returncode == 0, to_file.stderr
    assert json.loads(report.read_text())["torch_verdict"] == "torch-unstable"
    explain = shell("explain c10::Half >&-")
    assert explain.returncode == 2 and "standard output is closed" in explain.stderr
    listing = shell("survey packages >&-")  # printed nothing and exited 0
    assert listing.returncode == 2 and "standard output is closed" in listing.stderr
    # Standard error closed (2>&-): the report still comes out, and the exit code tells.
    quiet = shell(f"{built.unstable_lib} --check torch 2>&-")
    assert quiet.returncode == 1 and quiet.stdout.startswith("Package: ")
    # Standard output that cannot take the report (a full disk) is an operational error too.
    if Path("/dev/full").exists():
        full = shell(f"{built.unstable_lib} > /dev/full")
        assert full.returncode == 2, full.stderr
        assert full.stderr.strip() == "error: cannot write the report: No space left on device"
        assert shell("survey packages > /dev/full").returncode == 2
        # Standard error that cannot take a message: the message is lost, the exit code is 2
        # (an operational problem), never 1 (a failed gate) as a crash would give.
        missing = shell(f"{tmp_path / 'missing'} 2> /dev/full")
        assert missing.returncode == 2
        gate = shell(f"{built.unstable_lib} --check torch 2> /dev/full")
        assert gate.returncode == 2 and gate.stdout.startswith("Package: ")
        assert shell(f"{built.abi3_ext} 2> /dev/full").returncode == 0


def test_compile_helper_is_reused(tmp_path: Path) -> None:
    # Sanity check of the fixture helper itself: sources exist and compile.
    assert (SOURCES / "plain.c").is_file()
    out = compile_shared("tiny32.c", tmp_path / "libt.so", "-nostdlib")
    assert out.read_bytes()[:4] == b"\x7fELF"


def test_check_torch_does_not_gate_torch_itself(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    # An installed "torch" distribution is the libtorch implementation: unstable by nature.
    site = tmp_path / "site-packages"
    (site / "torch" / "lib").mkdir(parents=True)
    shutil.copyfile(built.unstable_lib, site / "torch" / "lib" / "libtorch_cpu.so")
    dist_info = site / "torch-2.13.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0\n")
    (dist_info / "RECORD").write_text("torch/lib/libtorch_cpu.so,,\n")
    code, out, err = run(capsys, "--site-packages", str(site), "--check", "torch")
    assert code == 0, err
    assert "UNSTABLE" in out
    # A package built on torch that reaches into its internals is gated.
    shutil.copyfile(built.unstable_lib, site / "torch" / ".." / "libext.so")
    code, _, err = run(capsys, "--site-packages", str(site), "--check", "torch")
    assert code == 1 and "libext.so" in err and "  torch:" not in err


def test_jobs_do_not_change_the_report(
    capsys: pytest.CaptureFixture[str], fake_site: FakeSite
) -> None:
    serial = run(capsys, "--site-packages", str(fake_site.site), "--all", "-j", "1")
    parallel = run(capsys, "--site-packages", str(fake_site.site), "--all", "-j", "2")
    assert serial == parallel
    assert "5 packages with compiled libraries, 10 libraries" in serial[1]


def _wheel_with(
    directory: Path, name: str, tag: str, files: dict[str, Path], requires: str = ""
) -> Path:
    import zipfile

    path = directory / f"{name}-1.0-{tag}.whl"
    dist_info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, source in files.items():
            archive.write(source, member)
        requirement = f"Requires-Dist: {requires}\n" if requires else ""
        archive.writestr(
            f"{dist_info}/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{requirement}",
        )
        archive.writestr(f"{dist_info}/WHEEL", f"Wheel-Version: 1.0\nTag: {tag}\n")
        archive.writestr(f"{dist_info}/RECORD", "")
    return path


def test_wheel_targets_findings_and_check_metadata(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    tag = "cp311-abi3-manylinux_2_28_x86_64"
    stable = _wheel_with(
        tmp_path,
        "stablepkg",
        tag,
        {"stablepkg/libops.so": built.stable_plugin, "stablepkg/_ext.abi3.so": built.abi3_ext},
    )
    code, out, err = run(capsys, str(stable))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Package: stablepkg"
    assert f"  Root: {stable}" in lines
    assert f"  Wheel tags: {tag}" in lines
    assert "  Distribution: stablepkg 1.0" in lines
    assert "  Findings:" in lines
    assert any(
        line.startswith("    [warning] torch-floor-missing: needs torch>=2.11.0") for line in lines
    )
    assert "    [STABLE  ] [not-abi3              ] stablepkg/libops.so" in "\n".join(lines)
    # The finding fails --check metadata, not --check torch.
    assert run(capsys, str(stable), "--check", "torch")[0] == 0
    code, _, err = run(capsys, str(stable), "--check", "metadata")
    assert code == 1 and "stablepkg: [metadata] torch-floor-missing: needs torch>=2.11.0" in err
    # Declaring the floor clears it.
    fixed_dir = tmp_path / "fixed"
    fixed_dir.mkdir()
    fixed = _wheel_with(
        fixed_dir, "stablepkg", tag, {"stablepkg/libops.so": built.stable_plugin}, "torch>=2.11"
    )
    code, document = run_json(capsys, str(fixed), "--check", "all")
    assert code == 0
    # Nothing remains; not even abi3-not-free-threaded: torch loads libops.so, no Python
    # imports it, so a free-threaded Python is no concern of its abi3 tag.
    assert document["findings"] == []
    assert document["wheel"] == {
        "path": str(fixed),
        "filename": fixed.name,
        "tags": [tag],
        "verified": True,  # a small member: read to its end, its CRC-32 checked
        "unverified_members": [],
    }
    assert document["distribution"]["requires_torch"] == ["torch>=2.11"]


def test_directory_of_wheels(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    _wheel_with(
        tmp_path, "one", "cp311-cp311-manylinux_2_28_x86_64", {"one/a.so": built.unstable_lib}
    )
    _wheel_with(tmp_path, "two", "cp311-cp311-manylinux_2_28_x86_64", {"two/b.so": built.abi3_ext})
    code, document = run_json(capsys, str(tmp_path))
    assert code == 0
    packages = document["packages"]
    assert [p["name"] for p in packages] == ["one", "two"]
    assert packages[0]["findings"][0]["code"] == "torch-unpinned-unstable"


def test_download_from_a_local_index(
    capsys: pytest.CaptureFixture[str],
    built: Fixtures,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    _wheel_with(
        links, "dlpkg", "py3-none-manylinux_2_28_x86_64", {"dlpkg/libx.so": built.stable_plugin}
    )
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    cache = tmp_path / "cache"
    code, out, err = run(
        capsys,
        "--download",
        "dlpkg==1.0",
        "--platform",
        "manylinux_2_28_x86_64",
        "--platform",
        "win_amd64",
        "--python-version",
        "3.11",
        "--cache-dir",
        str(cache),
    )
    assert code == 0, err
    assert (cache / "dlpkg-1.0-py3-none-manylinux_2_28_x86_64.whl").is_file()
    assert "Package: dlpkg\n" in out
    unavailable = (
        "the index has no wheel for platform win_amd64, Python 3.11: dlpkg 1.0 "
        "(its wheels: manylinux_2_28_x86_64)"
    )
    assert f"Package: dlpkg==1.0 [win_amd64]\n  Not available: {unavailable}" in out
    assert f"note: dlpkg==1.0 [win_amd64]: {unavailable}" in err
    assert run(capsys, "--platform", "win_amd64", "x")[0] == 2  # --platform needs --download


@pytest.mark.network
def test_download_from_the_index(capsys: pytest.CaptureFixture[str]) -> None:
    """Two builds of one release from the real index: one audited, one not published."""
    code, document = run_json(
        capsys,
        "--download",
        "torchcodec==0.17.0",
        "--platform",
        "manylinux_2_28_x86_64",
        "--platform",
        "win_arm64",
        "--python-version",
        "3.11",
    )
    assert code == 0
    linux, windows = document["packages"]
    assert linux["name"] == "torchcodec" and linux["torch_verdict"] == "torch-stable"
    assert any("manylinux" in tag for tag in linux["wheel"]["tags"])
    # It vendors NVIDIA's nvJPEG (torchcodec.libs/libnvjpeg-<hash>.so.13...): a CUDA runtime; and
    # it is stable but version-specific: the abi3 gate would fail it (information only).
    assert [f["code"] for f in linux["findings"]] == [
        "torch-floor-missing",
        "bundled-cuda-runtime",
        "not-abi3-compliant",
    ]
    assert windows["name"] == "torchcodec==0.17.0 [win_arm64]"
    assert windows["unavailable"].startswith(
        "the index has no wheel for platform win_arm64, Python 3.11: torchcodec 0.17.0 "
        "(its wheels: macosx_14_0_arm64, "
    )
    assert windows["error"] is None


def test_subcommand_dispatch(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first argument naming a subcommand runs that module's main with the rest; anything
    else (a path spelled like one included) is the audit command's."""
    import types

    from torch_abi_audit import cli

    seen: list[list[str]] = []

    def probe_main(argv: list[str]) -> int:
        seen.append(argv)
        return 7

    probe = types.ModuleType("torch_abi_audit.commands._probe")
    probe.main = probe_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch_abi_audit.commands._probe", probe)
    monkeypatch.setitem(cli.SUBCOMMANDS, "probe", ("_probe", "a probe"))
    assert main(["probe", "a", "--b"]) == 7
    assert seen == [["a", "--b"]]
    code, _, err = run(capsys, "./probe")
    assert code == 2 and "probe" in err and seen == [["a", "--b"]]
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "probe     a probe" in capsys.readouterr().out
