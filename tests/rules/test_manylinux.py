"""``manylinux-tag-too-low``: the symbol versions a wheel's libraries need against what its
manylinux / musllinux tag allows, as auditwheel's published policy (shipped as data) says.

Fixtures are compiled at test time, with ``.symver`` pinning an import to one glibc version so
that the result does not depend on the build machine's glibc; the real case is torchaudio 2.2.2,
tagged ``manylinux1`` (glibc 2.5) but needing glibc 2.14 and the libstdc++ of manylinux2014.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from importlib.resources import files
from pathlib import Path

import pytest

from helpers.fake_torch import build_library
from helpers.real_wheels import real_wheel
from helpers.scripts import load_script
from helpers.wheel_builder import write_wheel
from torch_abi_audit import inspect_package
from torch_abi_audit.model import VersionNeed
from torch_abi_audit.rules.findings import Finding
from torch_abi_audit.rules.manylinux import (
    GLIBC,
    LinuxLibrary,
    load_policies,
    lowest_glibc_policy,
    manylinux_findings,
    promises,
)

GETRANDOM = """
#include <stddef.h>
#include <sys/types.h>
__asm__(".symver getrandom,getrandom@GLIBC_2.25");
ssize_t getrandom(void*, size_t, unsigned int);
int seed(void) { char b[4]; return (int)getrandom(b, 4, 0); }
"""
CXX11_STRING = """
#include <string>
std::string greet(const std::string& who) { return "hello " + who; }
"""


# -- the shipped data -----------------------------------------------------------------------------


def test_policy_data_says_where_it_comes_from_and_is_cumulative() -> None:
    document = json.loads(
        files("torch_abi_audit").joinpath("data", "manylinux_policy.json").read_text()
    )
    assert document["generated_by"] == "scripts/generate_manylinux_policy.py"
    assert document["source"]["wheel"].startswith("auditwheel-")
    assert set(document["source"]["sha256"]) == {
        "auditwheel/policy/manylinux-policy.json",
        "auditwheel/policy/musllinux-policy.json",
    }
    table = load_policies()
    names = {p.name: p for p in table.policies}
    assert names["manylinux_2_5"].aliases == ("manylinux1",)
    assert names["manylinux_2_12"].aliases == ("manylinux2010",)
    assert names["manylinux_2_17"].aliases == ("manylinux2014",)
    assert {"musllinux_1_1", "musllinux_1_2"} <= set(names)
    assert "GLIBC_2.17" not in names["manylinux_2_17"].symbol_versions["x86_64"]["GLIBC"]
    assert "2.17" in names["manylinux_2_17"].symbol_versions["x86_64"]["GLIBC"]
    # PEP 600: a newer policy allows everything an older one does, architecture by architecture.
    glibc = table.glibc()
    assert [p.libc_version for p in glibc] == sorted(p.libc_version for p in glibc)
    for older, newer in itertools.pairwise(glibc):
        for arch, families in older.symbol_versions.items():
            if arch not in newer.symbol_versions:
                continue  # big-endian ppc64 has no policy after manylinux2014
            for family, versions in families.items():
                assert versions <= newer.symbol_versions[arch][family], (newer.name, arch, family)
        # No glibc newer than its own (a release may add no symbol version: 2.37 did not).
        allowed = newer.symbol_versions["x86_64"]["GLIBC"]
        numbered = [v for v in allowed if v[0].isdigit()]  # not ABI_DT_RELR and friends
        newest = max(tuple(int(part) for part in v.split(".")) for v in numbered)
        assert newest[:2] <= newer.libc_version, newer.name


@pytest.mark.network
def test_policy_data_is_what_the_generator_makes(capsys: pytest.CaptureFixture[str]) -> None:
    """Regenerated from the auditwheel release it names (a ~0.5 MB wheel), the file is unchanged."""
    assert load_script("generate_manylinux_policy").main(["--check"]) == 0, capsys.readouterr().err


def test_generator_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    script = load_script("generate_manylinux_policy")
    with pytest.raises(script.PolicyError, match="unexpected policy name"):
        script._policy({"name": "manylinux_x", "symbol_versions": {}}, "glibc")
    with pytest.raises(script.PolicyError, match="unexpected policy name"):
        script._policy({"name": "musllinux_1_1", "symbol_versions": {}}, "glibc")
    document = {"format_version": 1, "policies": []}
    assert json.loads(script.render(document)) == document
    assert hashlib.sha256(b"").hexdigest()  # the provenance hashes are SHA-256 hex digests


# -- what a tag promises ---------------------------------------------------------------------------


def test_the_weakest_tag_is_the_promise() -> None:
    table = load_policies()
    tags = [
        "cp311-cp311-manylinux_2_28_x86_64",
        "cp311-cp311-manylinux2014_x86_64",
        "cp311-cp311-manylinux_2_17_aarch64",
        "cp311-cp311-musllinux_1_2_x86_64",
        "cp311-cp311-macosx_11_0_arm64",
        "cp311-cp311-linux_x86_64",
    ]
    found = {(p.libc, p.arch): p for p in promises(tags, table)}
    assert set(found) == {("glibc", "x86_64"), ("glibc", "aarch64"), ("musl", "x86_64")}
    x86 = found[("glibc", "x86_64")]
    assert x86.tag == "manylinux2014_x86_64" and x86.policy is not None
    assert x86.policy.name == "manylinux_2_17"
    # A glibc release without a policy of its own allows its own GLIBC versions...
    [between] = promises(["py3-none-manylinux_2_29_x86_64"], table)
    assert between.policy is not None and between.policy.libc_version == (2, 29)
    assert not between.policy.rejects("x86_64", "GLIBC_2.29")
    assert between.policy.rejects("x86_64", "GLIBC_2.30")
    # ...and one newer than every policy known says nothing.
    [future] = promises(["py3-none-manylinux_2_99_x86_64"], table)
    assert future.policy is None
    needs = (VersionNeed("libc.so.6", "GLIBC_2.98", symbol="f"),)
    assert (
        manylinux_findings(
            ["py3-none-manylinux_2_99_x86_64"], [LinuxLibrary("a.so", "x86_64", (), needs)]
        )
        == []
    )


def test_weak_needs_and_the_dynamic_linker_are_not_judged() -> None:
    needs = (
        VersionNeed("libc.so.6", "GLIBC_2.34", weak=True, symbol="new_fn"),
        VersionNeed("ld-linux-x86-64.so.2", "GLIBC_2.35", symbol="__tls_get_addr"),
        VersionNeed("libz.so.1", "ZLIB_1.2.9", symbol="inflateReset2"),  # the policy knows ZLIB
        VersionNeed("libfoo.so.1", "FOO_9.9", symbol="foo"),  # a family no policy names
    )
    lib = LinuxLibrary("ext.so", "x86_64", (), needs)
    [finding] = manylinux_findings(["cp311-cp311-manylinux_2_17_x86_64"], [lib])
    assert finding.evidence["libraries"] == ["ext.so: ZLIB_1.2.9 (inflateReset2)"]
    policy = lowest_glibc_policy("x86_64", needs, load_policies())
    assert policy is not None and policy.libc == GLIBC


# -- compiled fixtures in wheels ---------------------------------------------------------------


@pytest.fixture(scope="module")
def libraries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    work = tmp_path_factory.mktemp("manylinux")
    build_library(
        work,
        "libc.musl-x86_64.so.1",
        "int m(void){return 0;}\n",
        "-Wl,-soname,libc.musl-x86_64.so.1",
    )
    return {
        "pkg/librandom.so": build_library(work, "librandom.so", GETRANDOM).read_bytes(),
        "pkg/libstring.so": build_library(
            work, "libstring.so", CXX11_STRING, cxx=True
        ).read_bytes(),
        "pkg/libmusl.so": build_library(
            work,
            "libmusl.so",
            "int g(void){return 1;}\n",
            "-L",
            str(work),
            "-nostdlib",  # what a musl toolchain links: no glibc
            "-Wl,--no-as-needed",
            "-l:libc.musl-x86_64.so.1",
        ).read_bytes(),
    }


def finding_for(tmp_path: Path, tags: list[str], files: dict[str, bytes]) -> Finding | None:
    wheel = write_wheel(tmp_path, "pkg", "1.0", tags, files)
    found = [
        f for f in inspect_package(wheel, jobs=1).findings if f.code == "manylinux-tag-too-low"
    ]
    assert len(found) <= 1
    return found[0] if found else None


def test_a_glibc_symbol_newer_than_the_tag(tmp_path: Path, libraries: dict[str, bytes]) -> None:
    member = {"pkg/librandom.so": libraries["pkg/librandom.so"]}
    finding = finding_for(
        tmp_path, ["cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"], member
    )
    assert finding is not None and finding.severity == "error"
    assert finding.evidence["libraries"] == ["pkg/librandom.so: GLIBC_2.25 (getrandom)"]
    assert finding.evidence["lowest_honest_tag"] == "manylinux_2_26_x86_64"  # no 2_25 policy
    assert finding.message == (
        "tagged manylinux2014_x86_64, so pip installs it on glibc systems where it cannot load: "
        "pkg/librandom.so needs GLIBC_2.25 (getrandom); the lowest honest tag is "
        "manylinux_2_26_x86_64"
    )
    assert finding_for(tmp_path, ["cp311-cp311-manylinux_2_28_x86_64"], member) is None


def test_a_libstdcxx_symbol_newer_than_the_tag(tmp_path: Path, libraries: dict[str, bytes]) -> None:
    """The C++11 std::string (GLIBCXX_3.4.21, GCC 5) is newer than manylinux2014's libstdc++."""
    member = {"pkg/libstring.so": libraries["pkg/libstring.so"]}
    finding = finding_for(tmp_path, ["cp311-cp311-manylinux2014_x86_64"], member)
    assert finding is not None
    [offence] = [o for o in finding.evidence["libraries"] or () if "GLIBCXX_" in o]
    assert offence.startswith("pkg/libstring.so: GLIBCXX_3.4.")
    assert finding.evidence["lowest_honest_tag"] in {
        "manylinux_2_24_x86_64",
        "manylinux_2_26_x86_64",
        "manylinux_2_27_x86_64",
        "manylinux_2_28_x86_64",
        "manylinux_2_31_x86_64",
        "manylinux_2_34_x86_64",
    }


def test_the_wrong_libc(tmp_path: Path, libraries: dict[str, bytes]) -> None:
    glibc = {"pkg/librandom.so": libraries["pkg/librandom.so"]}
    finding = finding_for(tmp_path, ["cp311-cp311-musllinux_1_2_x86_64"], glibc)
    assert finding is not None
    assert finding.evidence["libraries"] == ["pkg/librandom.so: GLIBC_2.25 (getrandom)"]
    assert "pip installs it on musl systems" in finding.message
    assert finding.evidence["lowest_honest_tag"] == "manylinux_2_26_x86_64"
    musl = {"pkg/libmusl.so": libraries["pkg/libmusl.so"]}
    finding = finding_for(tmp_path, ["cp311-cp311-manylinux_2_28_x86_64"], musl)
    assert finding is not None
    assert finding.evidence["libraries"] == ["pkg/libmusl.so: libc.musl-x86_64.so.1"]
    assert finding.evidence["lowest_honest_tag"] == "musllinux_1_1_x86_64 or later"
    assert finding_for(tmp_path, ["cp311-cp311-musllinux_1_1_x86_64"], musl) is None


@pytest.mark.network
def test_a_real_wheel_tagged_too_low() -> None:
    """torchaudio 2.2.2 (3.3 MB) is tagged manylinux1 (glibc 2.5); it needs glibc 2.14
    (memcpy@GLIBC_2.14) and the libstdc++ of manylinux2014."""
    report = inspect_package(
        real_wheel("torchaudio-2.2.2-cp311-cp311-manylinux1_x86_64.whl"), jobs=1
    )
    [finding] = [f for f in report.findings if f.code == "manylinux-tag-too-low"]
    assert finding.evidence["tag"] == "manylinux1_x86_64"
    assert finding.evidence["lowest_honest_tag"] == "manylinux_2_17_x86_64"
    offences = finding.evidence["libraries"] or []
    assert "torchaudio/lib/libtorchaudio.so: GLIBC_2.14 (memcpy)" in offences
    assert any(o.startswith("torio/lib/libtorio_ffmpeg6.so: GLIBCXX_3.4.19") for o in offences)
