"""--format sarif, validated against the SARIF 2.1.0 JSON Schema as OASIS publishes it
(``tests/fixtures/sarif``, with its source)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from helpers.build import Fixtures
from helpers.demo_wheels import DemoWheels
from helpers.reports import unstable_package
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.base import RenderOptions
from torch_abi_audit.renderers.sarif import render
from torch_abi_audit.report import AuditResult, GateResult, GateStatus
from torch_abi_audit.rules.registry import FINDING_CODES

SCHEMA_FILE = Path(__file__).parent.parent / "fixtures" / "sarif" / "sarif-schema-2.1.0.json"
VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


def sarif_of(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--format", "sarif"])
    log = json.loads(capsys.readouterr().out)
    VALIDATOR.validate(log)
    return code, log


def test_the_schema_is_the_published_one() -> None:
    data = SCHEMA_FILE.read_bytes()
    assert len(data) == 112_785
    digest = "ad389db5a66fad5c131178b0e1f18600ac625616cd5ea20a00ee8ee246dc7069"
    assert hashlib.sha256(data).hexdigest() == digest
    # It does reject what is not SARIF.
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate({"version": "2.1.0", "runs": [{"results": []}]})


def test_demo_log(capsys: pytest.CaptureFixture[str], demo: DemoWheels, in_demo: Path) -> None:
    code, log = sarif_of(capsys, demo.port.name, demo.stable.name, "--check", "all")
    assert code == 1
    (run,) = log["runs"]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert set(rules) == {
        "torch-unpinned-unstable",
        "abi3-not-free-threaded",
        "torch-unstable",
        "abi3-violation",
    }
    assert all(rule["shortDescription"]["text"] and rule["help"]["text"] for rule in rules.values())
    # A finding code's rule says what the registry declares: its description (plain text, and
    # the Markdown with code spans), its default severity and the gates that fail on it.
    unpinned = rules["torch-unpinned-unstable"]
    declared = FINDING_CODES["torch-unpinned-unstable"]
    plain = declared.description.replace("`", "")
    assert unpinned["fullDescription"]["text"].rstrip(".").lower() == plain.rstrip(".").lower()
    assert unpinned["fullDescription"]["markdown"].rstrip(".")[1:] == declared.description[1:]
    assert plain.lower().startswith(unpinned["shortDescription"]["text"].lower())
    assert unpinned["defaultConfiguration"]["level"] == "error"
    assert unpinned["properties"]["tags"] == ["torch-abi-audit", *map(str, declared.gates)]
    free_threaded = rules["abi3-not-free-threaded"]
    assert free_threaded["defaultConfiguration"]["level"] == "note"
    assert "finding abi3-not-free-threaded (info)" not in free_threaded["fullDescription"]["text"]
    results = {
        (
            r["ruleId"],
            r["locations"][0].get("logicalLocations", [{}])[0].get("fullyQualifiedName"),
        ): r
        for r in run["results"]
    }
    unstable = results["torch-unstable", "portpkg/lib/libcore.so"]
    assert unstable["level"] == "error"  # the torch gate failed for portpkg
    assert unstable["properties"] == {"package": "portpkg", "gates": ["torch"]}
    assert ("torch-unstable", "portpkg/lib/libcore_cuda.so") in results
    assert results["abi3-violation", "portpkg/_C.abi3.so"]["level"] == "error"
    # A finding about the package's metadata as a whole has no library to point at.
    assert results["torch-unpinned-unstable", None]["level"] == "error"
    assert results["abi3-not-free-threaded", "stablepkg/_ext.abi3.so"]["level"] == "note"
    # Locations: the wheel, relative to the working directory, at line 1 (binaries have none).
    location = unstable["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": demo.port.name, "uriBaseId": "%SRCROOT%"}
    assert location["region"]["startLine"] == 1
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == in_demo.as_uri() + "/"
    assert run["invocations"] == [
        {"executionSuccessful": True, "workingDirectory": {"uri": in_demo.as_uri() + "/"}}
    ]


def test_fingerprints_are_stable_and_distinct(
    capsys: pytest.CaptureFixture[str], demo: DemoWheels, in_demo: Path
) -> None:
    _, first = sarif_of(capsys, demo.port.name, "--check", "torch")
    _, second = sarif_of(capsys, demo.port.name, "--check", "torch")
    prints = [r["partialFingerprints"] for r in first["runs"][0]["results"]]
    assert prints == [r["partialFingerprints"] for r in second["runs"][0]["results"]]
    assert len({p["torchAbiAudit/v1"] for p in prints}) == len(prints)


def test_allowed_and_ignored_violations_are_suppressions(tmp_path: Path) -> None:
    package = unstable_package("pkg", tmp_path / "pkg", {"lib/a.so": ["c10::x"]})
    allowed = GateResult(
        "torch",
        "pkg",
        GateStatus.ALLOWED,
        "uses libtorch internals",
        library="lib/a.so",
        code="torch-unstable",
        justification="not ported yet (baseline.toml)",
    )
    ignored = GateResult(
        "metadata",
        "pkg",
        GateStatus.IGNORED,
        "declares no torch requirement",
        code="torch-unpinned-unstable",
        justification="--ignore torch-unpinned-unstable",
    )
    result = AuditResult((package,), checks=("torch", "metadata"), gate_results=(allowed, ignored))
    log = json.loads(render(result, RenderOptions(working_directory=tmp_path)))
    VALIDATOR.validate(log)
    by_rule = {r["ruleId"]: r for r in log["runs"][0]["results"]}
    assert by_rule["torch-unstable"]["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": "not ported yet (baseline.toml)",
        }
    ]
    assert by_rule["torch-unstable"]["level"] == "warning"  # not failed: allowed
    assert by_rule["torch-unpinned-unstable"]["suppressions"][0]["justification"] == (
        "--ignore torch-unpinned-unstable"
    )


def test_files_not_audited_are_results(
    capsys: pytest.CaptureFixture[str],
    built: Fixtures,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "libbad.so").write_text("not a library")
    monkeypatch.chdir(tmp_path)
    code, log = sarif_of(capsys, "libbad.so", "missing_dir/")
    assert code == 2
    (run,) = log["runs"]
    assert run["invocations"][0]["executionSuccessful"] is False
    not_audited = [r for r in run["results"] if r["ruleId"] == "not-audited"]
    assert len(not_audited) == 2
    bad, missing = not_audited
    assert bad["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "libbad.so"
    assert missing["locations"] == []  # a missing path is no file to point at
