"""The --check gates as CI uses them: each gate, comma lists, --ignore, baselines (matched,
stale, expired, written), and what the failure lines and the JSON gate results say.

Compiled fixtures stand in for most packages; the real torchaudio 2.9.1 manylinux wheel (its
``torchaudio/lib/libtorchaudio.so`` uses libtorch internals) for the baseline cases a release
engineer meets, in the wheel and in an installed copy of it.
"""

from __future__ import annotations

import json
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from helpers.build import Fixtures
from helpers.cli_run import run
from helpers.real_wheels import real_wheel
from helpers.wheel_builder import write_wheel
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.json_report import load_schema

SCHEMA = load_schema()
TORCHAUDIO = "torchaudio-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl"
LIBTORCHAUDIO = "torchaudio/lib/libtorchaudio.so"
TAG = "cp311-cp311-manylinux_2_28_x86_64"
ABI3_TAG = "cp311-abi3-manylinux_2_28_x86_64"
PIN = "torch==2.13.*"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = run(capsys, *argv, "--json")
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA)
    return code, document, err


@pytest.fixture(autouse=True)
def no_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs where no pyproject.toml configures the tool (unless it writes one)."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def wheels(built: Fixtures, tmp_path: Path) -> dict[str, Path]:
    """Small wheels, one per gate to fail, and one that passes every gate."""
    out = tmp_path / "wheels"
    for name in "tamc":
        (out / name).mkdir(parents=True)
    data = {name: path.read_bytes() for name, path in vars(built).items() if name != "directory"}
    unstable = {"unstablepkg/libcore.so": data["unstable_lib"]}
    abi3_bad = {"badabi3/badabi3.abi3.so": data["abi3_bad_ext"]}
    return {
        # torch: an unstable library, pinned (so metadata has nothing to say)
        "torch": write_wheel(out / "t", "unstablepkg", "1.0", [TAG], unstable, requires=[PIN]),
        # abi3: an abi3 module importing private CPython API (and no torch)
        "abi3": write_wheel(out / "a", "badabi3", "1.0", [ABI3_TAG], abi3_bad),
        # metadata: a stable plugin without a torch floor
        "metadata": write_wheel(
            out / "m", "floorless", "1.0", [TAG], {"floorless/libops.so": data["stable_plugin"]}
        ),
        # passes everything
        "clean": write_wheel(
            out / "c",
            "cleanpkg",
            "1.0",
            [TAG],
            {"cleanpkg/libops.so": data["stable_plugin"]},
            requires=["torch>=2.11"],
        ),
    }


def allow_file(directory: Path, *entries: str) -> Path:
    path = directory / "baseline.toml"
    path.write_text("\n".join(f"[[allow]]\n{entry.strip()}\n" for entry in entries))
    return path


# -- each gate, and comma lists --------------------------------------------------------------


@pytest.mark.parametrize(
    ("wheel", "gate", "line"),
    [
        ("torch", "torch", "  unstablepkg: [torch] torch-unstable (unstablepkg/libcore.so): uses"),
        ("abi3", "abi3", "  badabi3: [abi3] abi3-tagged-violations (badabi3/badabi3.abi3.so): "),
        ("metadata", "metadata", "  floorless: [metadata] torch-floor-missing: needs torch>="),
        ("clean", "load", "  cleanpkg: [load] needs-newer-torch (cleanpkg/libops.so): cleanpkg/"),
    ],
)
def test_each_gate_fails_on_its_codes_only(
    capsys: pytest.CaptureFixture[str], wheels: dict[str, Path], wheel: str, gate: str, line: str
) -> None:
    extra = ["--torch-version", "2.10"] if gate == "load" else []
    code, _, err = run(capsys, str(wheels[wheel]), "--check", gate, *extra)
    assert code == 1
    assert any(row.startswith(line) for row in err.splitlines()), err
    others = [g for g in ("torch", "abi3", "metadata", "load") if g != gate]
    assert run(capsys, str(wheels[wheel]), "--check", ",".join(others), *extra)[0] == 0
    assert run(capsys, str(wheels["clean"]), "--check", "all")[0] == 0


def test_comma_lists_and_repeats_are_one_policy(
    capsys: pytest.CaptureFixture[str], wheels: dict[str, Path]
) -> None:
    targets = [str(wheels["torch"]), str(wheels["abi3"]), str(wheels["metadata"])]
    comma = run(capsys, *targets, "--check", "torch,abi3")
    repeated = run(capsys, *targets, "--check", "torch", "--check", "abi3")
    assert comma[0] == repeated[0] == 1
    assert comma[2].splitlines()[1:] == repeated[2].splitlines()[1:]
    assert comma[2].startswith("FAIL: --check torch,abi3 found 2 non-compliant package(s):")
    assert "[metadata]" not in comma[2]
    with pytest.raises(SystemExit) as exc:
        main([*targets, "--check", "torch,abi4"])
    assert exc.value.code == 2
    assert "invalid choice: 'abi4'" in capsys.readouterr().err


def test_gate_results_in_table_and_json(
    capsys: pytest.CaptureFixture[str], wheels: dict[str, Path]
) -> None:
    code, out, _ = run(capsys, str(wheels["torch"]), str(wheels["clean"]), "--check", "both")
    assert code == 1
    lines = out.splitlines()
    assert "Gates: torch, abi3: FAILED (1 failed, 0 allowed, 0 ignored)" in lines
    assert "  [failed ] torch     unstablepkg  unstablepkg/libcore.so  torch-unstable" in lines
    code, document, _ = run_json(capsys, str(wheels["torch"]), "--check", "both")
    assert code == 1
    gates = document["gates"]
    assert (gates["checked"], gates["passed"]) == (["torch", "abi3"], False)
    assert gates["results"] == [
        {
            "gate": "torch",
            "package": "unstablepkg",
            "library": "unstablepkg/libcore.so",
            "code": "torch-unstable",
            "status": "failed",
            "message": gates["results"][0]["message"],
            "allowed_by": None,
        }
    ]
    # A package that could not be read leaves the gates incomplete, whatever else passed.
    broken = wheels["clean"].parent / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    code, document, _ = run_json(capsys, str(wheels["clean"]), str(broken), "--check", "all")
    assert code == 2 and not document["gates"]["passed"]
    assert [u["target"] for u in document["gates"]["unaudited"]] == ["broken"]
    # Without --check the key is there, and null.
    assert run_json(capsys, str(wheels["torch"]))[1]["gates"] is None


# -- --ignore --------------------------------------------------------------------------------


def test_ignore_keeps_the_violation_visible(
    capsys: pytest.CaptureFixture[str], wheels: dict[str, Path]
) -> None:
    argv = [str(wheels["metadata"]), "--check", "metadata", "--ignore", "torch-floor-missing"]
    code, out, err = run(capsys, *argv)
    assert code == 0 and "FAIL" not in err
    assert "    [warning] torch-floor-missing: needs torch>=2.11.0" in out  # still a finding
    assert "  [ignored] metadata  floorless  -  torch-floor-missing  (--ignore)" in out.splitlines()
    code, document, _ = run_json(capsys, *argv)
    assert code == 0 and document["gates"]["passed"]
    assert [r["status"] for r in document["gates"]["results"]] == ["ignored"]
    # Ignoring one code leaves the others gated.
    code, _, err = run(
        capsys, str(wheels["torch"]), "--check", "torch", "--ignore", "deprecated-shim"
    )
    assert code == 1 and "[torch] torch-unstable" in err


def test_ignore_takes_only_finding_codes(
    capsys: pytest.CaptureFixture[str], wheels: dict[str, Path]
) -> None:
    code, _, err = run(capsys, str(wheels["clean"]), "--check", "all", "--ignore", "torch-unstabel")
    assert code == 2
    assert "'torch-unstabel' is not a finding code (did you mean 'torch-unstable'?)" in err
    code, _, err = run(capsys, str(wheels["clean"]), "--ignore", "torch-unstable")
    assert code == 2 and "--ignore go with --check" in err


# -- baselines -------------------------------------------------------------------------------


def test_baseline_entries_are_validated(
    capsys: pytest.CaptureFixture[str], wheels: dict[str, Path], tmp_path: Path
) -> None:
    target = str(wheels["torch"])
    cases = {
        'library = "x.so"\ncheck = "torch"': "entry 1: reason is required",
        'library = "x.so"\ncheck = "torch"\nreason = " "': "reason must be a non-empty string",
        'check = "torch"\nreason = "r"': "entry 1: give library (a glob), package, or both",
        'library = "x.so"\nreason = "r"': "check is required",
        'library = "x.so"\ncheck = "tourch"\nreason = "r"': "'tourch' is neither a gate",
        'library = "x.so"\ncheck = "torch"\nreason = "r"\nexpire = 2027-01-01': (
            "unknown key 'expire' (did you mean 'expires'?)"
        ),
        'library = "x.so"\ncheck = "torch"\nreason = "r"\nexpires = "soon"': (
            "expires must be a date"
        ),
        'library = "x.so"\ncheck = "torch"\nreason = "r"\nexpires = 2027-13-01': "not valid TOML",
    }
    for entry, message in cases.items():
        baseline = allow_file(tmp_path, entry)
        code, _, err = run(capsys, target, "--check", "torch", "--baseline", str(baseline))
        assert code == 2, entry
        assert message in err, (entry, err)
        assert "Traceback" not in err
    code, _, err = run(capsys, target, "--check", "torch", "--baseline", str(tmp_path / "no.toml"))
    assert code == 2 and "no.toml" in err


def test_baseline_globs_package_entries_and_unchecked_gates(
    capsys: pytest.CaptureFixture[str], wheels: dict[str, Path], tmp_path: Path
) -> None:
    baseline = allow_file(
        tmp_path,
        'library = "unstablepkg/*.so"\ncheck = "torch"\nreason = "porting in 2.0"',
        'package = "Badabi3"\ncheck = "abi3-tagged-violations"\nreason = "legacy module"',
        'package = "floorless"\ncheck = "metadata"\nreason = "not this run"',
    )
    argv = [str(wheels["torch"]), str(wheels["abi3"]), "--check", "both"]
    code, document, err = run_json(capsys, *argv, "--baseline", str(baseline))
    assert code == 0, err
    gates = document["gates"]
    assert [(r["package"], r["status"]) for r in gates["results"]] == [
        ("unstablepkg", "allowed"),
        ("badabi3", "allowed"),
    ]
    assert gates["results"][0]["allowed_by"]["reason"] == "porting in 2.0"
    assert gates["results"][0]["allowed_by"]["index"] == 1
    # The metadata entry concerns a gate this run does not check: not judged, not stale.
    assert [e["package"] for e in gates["unchecked"]] == ["floorless"]
    assert gates["stale"] == []
    # A glob does not cross directories with *, does with **.
    deeper = allow_file(tmp_path, 'library = "*.so"\ncheck = "torch"\nreason = "r"')
    code, _, err = run(capsys, str(wheels["torch"]), "--check", "torch", "--baseline", str(deeper))
    assert code == 1 and "stale baseline entry baseline.toml, entry 1" in err
    deeper = allow_file(tmp_path, 'library = "**/lib*.so"\ncheck = "torch"\nreason = "r"')
    assert run(capsys, str(wheels["torch"]), "--check", "torch", "--baseline", str(deeper))[0] == 0


@pytest.mark.network
def test_baseline_matched_in_the_wheel_and_in_an_installed_copy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wheel = real_wheel(TORCHAUDIO)
    code, _, err = run(capsys, str(wheel), "--check", "torch")
    assert code == 1
    assert f"  torchaudio: [torch] torch-unstable ({LIBTORCHAUDIO}): uses libtorch internals" in err
    baseline = allow_file(
        tmp_path,
        f'library = "{LIBTORCHAUDIO}"\ncheck = "torch"\nreason = "not yet ported"\n'
        "expires = 2999-01-01",
    )
    code, out, err = run(capsys, str(wheel), "--check", "torch", "--baseline", str(baseline))
    assert code == 0, err
    assert (
        f"  [allowed] torch     torchaudio  {LIBTORCHAUDIO}  torch-unstable  (baseline.toml, "
        "entry 1: not yet ported; expires 2999-01-01)"
    ) in out.splitlines()
    # The same entry covers an installed copy: paths are those inside the distribution.
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.startswith("torchaudio-2.9.1.dist-info/")]
        archive.extractall(site, [LIBTORCHAUDIO, *members])
    # A partial install: its RECORD lists what was installed (a RECORD that lists libraries
    # that are not there is a problem of the installation, exit 2).
    record = site / "torchaudio-2.9.1.dist-info" / "RECORD"
    kept = {LIBTORCHAUDIO, *members}
    lines = record.read_text().splitlines()
    record.write_text("".join(f"{line}\n" for line in lines if line.split(",")[0] in kept))
    argv = ["--site-packages", str(site), "--check", "torch", "--no-load-prediction"]
    code, document, err = run_json(capsys, *argv, "--baseline", str(baseline))
    assert code == 0, err
    [result] = document["gates"]["results"]
    assert (result["library"], result["status"]) == (LIBTORCHAUDIO, "allowed")
    [package] = document["packages"]
    assert package["bundled_libs"][0]["distribution_path"] == LIBTORCHAUDIO


@pytest.mark.network
def test_stale_entries_fail_the_gate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # torchaudio 2.11.0 ported libtorchaudio to the stable ABI: the 2.9.1 exception is stale.
    wheel = real_wheel("torchaudio-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl")
    baseline = allow_file(
        tmp_path,
        'library = "torchaudio/lib/libtorchaudio*.so"\ncheck = "torch"\nreason = "not ported"',
        'library = "torchaudio/lib/libgone.so"\ncheck = "torch-unstable"\nreason = "removed"',
    )
    code, document, err = run_json(
        capsys, str(wheel), "--check", "torch", "--baseline", str(baseline)
    )
    assert code == 1
    assert err.splitlines()[0] == "FAIL: --check torch: the baseline is out of date:"
    assert (
        '  stale baseline entry baseline.toml, entry 1 (library "torchaudio/lib/libtorchaudio*.so",'
        ' check "torch"): it matches no current violation (fixed, or the library is gone): '
        "remove it"
    ) in err.splitlines()
    assert 'entry 2 (library "torchaudio/lib/libgone.so"' in err
    assert [e["index"] for e in document["gates"]["stale"]] == [1, 2]
    assert document["gates"]["results"] == [] and not document["gates"]["passed"]


@pytest.mark.network
def test_expired_entries_fail_the_gate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    wheel = real_wheel(TORCHAUDIO)
    baseline = allow_file(
        tmp_path,
        f'library = "{LIBTORCHAUDIO}"\ncheck = "torch"\nreason = "not yet ported"\n'
        "expires = 2020-01-01",
    )
    code, document, err = run_json(
        capsys, str(wheel), "--check", "torch", "--baseline", str(baseline)
    )
    assert code == 1
    assert (
        '  expired baseline entry baseline.toml, entry 1 (library "torchaudio/lib/libtorchaudio.so"'
        ', check "torch"): expired on 2020-01-01 (reason: not yet ported): fix the violation, or '
        "renew the entry with a new date"
    ) in err.splitlines()
    # An expired entry allows nothing: the violation fails again, and the entry is listed.
    assert f"  torchaudio: [torch] torch-unstable ({LIBTORCHAUDIO}): uses" in err
    assert [r["status"] for r in document["gates"]["results"]] == ["failed"]
    assert document["gates"]["expired"][0]["expires"] == "2020-01-01"
    assert document["gates"]["stale"] == []


@pytest.mark.network
def test_write_baseline_adopts_the_gate_in_one_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wheel = real_wheel(TORCHAUDIO)
    written = tmp_path / "abi-baseline.toml"
    code, out, err = run(capsys, str(wheel), "--check", "all", "--write-baseline", str(written))
    assert code == 0, err
    assert f"wrote {written}: 3 entries (3 newly recorded" in err
    entries = tomllib.loads(written.read_text())["allow"]
    assert entries == [
        {
            "library": "torchaudio/lib/_torchaudio.so",
            "check": "not-abi3-compliant",
            "reason": "TODO",
        },
        {"library": LIBTORCHAUDIO, "check": "torch-unstable", "reason": "TODO"},
        {
            "library": "torchaudio/lib/pybind11_prefixctc.so",
            "check": "not-abi3-compliant",
            "reason": "TODO",
        },
    ]
    # The report written with it shows them allowed, with their TODO.
    assert "Gates: torch, abi3, metadata, load: passed (0 failed, 3 allowed, 0 ignored)" in out
    assert run(capsys, str(wheel), "--check", "all", "--baseline", str(written))[0] == 0
    # Rewriting keeps the reasons given, and drops what no longer matches.
    text = written.read_text().replace('reason = "TODO"', 'reason = "known"', 1)
    text += '\n[[allow]]\nlibrary = "torchaudio/lib/libgone.so"\ncheck = "torch"\nreason = "x"\n'
    written.write_text(text)
    assert run(capsys, str(wheel), "--check", "all", "--baseline", str(written))[0] == 1
    argv = ["--check", "all", "--baseline", str(written), "--write-baseline", str(written)]
    assert run(capsys, str(wheel), *argv)[0] == 0
    rewritten = tomllib.loads(written.read_text())["allow"]
    assert len(rewritten) == 3 and "libgone" not in written.read_text()
    assert sorted(e["reason"] for e in rewritten) == ["TODO", "TODO", "known"]


def test_write_baseline_needs_a_gate_and_a_writable_file(
    capsys: pytest.CaptureFixture[str], wheels: dict[str, Path], tmp_path: Path
) -> None:
    code, _, err = run(capsys, str(wheels["torch"]), "--write-baseline", str(tmp_path / "b.toml"))
    assert code == 2 and "--write-baseline go with --check" in err
    unwritable = tmp_path / "missing-dir" / "b.toml"
    code, _, err = run(
        capsys, str(wheels["torch"]), "--check", "torch", "--write-baseline", str(unwritable)
    )
    assert code == 2 and "cannot write" in err


def test_written_baseline_escapes_glob_characters(
    capsys: pytest.CaptureFixture[str], built: Fixtures, tmp_path: Path
) -> None:
    odd = write_wheel(
        tmp_path, "oddpkg", "1.0", [TAG], {"oddpkg/lib[v1]*.so": built.unstable_lib.read_bytes()},
        requires=["torch==2.13.*"],
    )  # fmt: skip
    written = tmp_path / "b.toml"
    assert run(capsys, str(odd), "--check", "torch", "--write-baseline", str(written))[0] == 0
    [entry] = tomllib.loads(written.read_text())["allow"]
    assert entry["library"] == "oddpkg/lib[[]v1][*].so"
    assert run(capsys, str(odd), "--check", "torch", "--baseline", str(written))[0] == 0


def test_every_format_shows_allowed_and_ignored_violations(
    capsys: pytest.CaptureFixture[str], wheels: dict[str, Path], tmp_path: Path
) -> None:
    baseline = allow_file(
        tmp_path,
        'library = "unstablepkg/libcore.so"\ncheck = "torch"\nreason = "porting in 2.0"',
        'library = "unstablepkg/libgone.so"\ncheck = "torch"\nreason = "ported"',
    )
    argv = [str(wheels["torch"]), str(wheels["metadata"]), "--check", "torch,metadata"]
    argv += ["--baseline", str(baseline), "--ignore", "torch-floor-missing"]
    outputs = {}
    for output in ("table", "json", "markdown", "github", "sarif"):
        code, out, err = run(capsys, *argv, "--format", output)
        assert code == 1, output  # the stale entry fails the gate, in every format
        assert "stale baseline entry baseline.toml, entry 2" in err
        outputs[output] = out
    assert "(baseline.toml, entry 1: porting in 2.0)" in outputs["table"]
    assert "  [ignored] metadata  floorless" in outputs["table"]
    assert "[stale  ] stale baseline entry baseline.toml, entry 2" in outputs["table"]
    gates = json.loads(outputs["json"])["gates"]
    assert [r["status"] for r in gates["results"]] == ["allowed", "ignored"]
    assert "| torch | allowed |" in outputs["markdown"]
    assert "| metadata | ignored |" in outputs["markdown"]
    assert "**stale** stale baseline entry" in outputs["markdown"]
    assert "title=torch-abi-audit%3A torch-unstable torch gate allowed::" in outputs["github"]
    assert "title=torch-abi-audit%3A baseline::stale baseline entry" in outputs["github"]
    results = json.loads(outputs["sarif"])["runs"][0]["results"]
    suppressed = {r["ruleId"]: r["suppressions"] for r in results if "suppressions" in r}
    assert (
        suppressed["torch-unstable"][0]["justification"] == "baseline.toml, entry 1: porting in 2.0"
    )
    assert suppressed["torch-floor-missing"][0]["justification"] == "--ignore"
