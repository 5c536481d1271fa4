"""Names from audited input reach the terminal escaped: one function, every line of the table
and every message on stderr (issue 15, item 4)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers.build import Fixtures
from helpers.elf_builder import Sym, build_elf
from helpers.wheel_builder import (
    RawEntry,
    metadata_text,
    wheel_entries,
    wheel_filename,
    write_raw_zip,
)
from torch_abi_audit.cli import main
from torch_abi_audit.renderers.escape import terminal_lines, terminal_text
from torch_abi_audit.renderers.json_report import dumps

TAG = "cp311-abi3-manylinux_2_28_x86_64"
#: What no line of text output may hold: C0 controls, DEL, C1 controls, bidi and other format
#: characters, line/paragraph separators, lone surrogates.
UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff"
    "\u2028\u2029\ud800-\udfff]"
)
FORGED_ROW = "    [STABLE  ] [abi3-ok               ] forged.so"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain-name_1.0", "plain-name_1.0"),
        ("café 名前 ✓", "café 名前 ✓"),
        ("a\nb", "a\\nb"),
        ("a\rb\tc", "a\\rb\\tc"),
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),
        ("\x1b[2J\x00\x7f", "\\x1b[2J\\x00\\x7f"),
        ("csi\x9b31m", "csi\\x9b31m"),
        ("nel\x85", "nel\\x85"),
        ("trojan\u202esource\u2066", "trojan\\u202esource\\u2066"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("bytes\udcff\udc80", "bytes\\xff\\x80"),  # PEP 383: undecodable file-name bytes
        ("lone\ud800", "lone\\ud800"),
        ("back\\x1b", "back\\x1b"),  # a backslash is text: it stays
    ],
)
def test_terminal_text_escapes_what_a_terminal_acts_on(raw: str, shown: str) -> None:
    assert terminal_text(raw) == shown
    assert terminal_text(shown) == shown  # applying it again changes nothing
    assert not UNSAFE.search(shown)


def test_every_control_and_format_character_is_escaped() -> None:
    import unicodedata

    # Every plane that assigns controls, format characters or separators: 0 (BMP), 1, 14.
    for code in [*range(0x20000), *range(0xE0000, 0xE1000)]:
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        unsafe = unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")
        assert (terminal_text(char) != char) == unsafe, hex(code)


def test_lines_cannot_be_split_by_a_name() -> None:
    assert terminal_lines(["one", "two\nthree"]).split("\n") == ["one", "two\\nthree"]


def test_json_is_valid_utf8_and_reads_back_to_the_same_names() -> None:
    names = {"path": "pkg\udcff/lib\x1b\x9b\u2028.so", "plain": "café"}
    for pretty in (True, False):
        text = dumps(names, pretty=pretty)
        text.encode("utf-8")  # strict: no surrogate left
        assert not re.search("[\x7f-\x9f\u2028\u2029\ud800-\udfff]", text)
        assert json.loads(text) == names


def _hostile_wheel(directory: Path, built: Fixtures) -> Path:
    """A wheel whose METADATA name and version, and one member name, carry escapes and a line
    feed that would forge a row of the table."""
    name, version = "evil", "1.0"
    library = built.stable_plugin.read_bytes()
    entries = wheel_entries(name, version, [TAG], {"evil/libok.so": library})
    metadata = metadata_text("evil\x1b]0;owned\x07\x9bName", "1.0\x1b[2J", ["torch>=2.11"])
    entries = [
        RawEntry(e.name, metadata.encode(), method=e.method) if e.name.endswith("METADATA") else e
        for e in entries
    ]
    forged = f"evil/lib.so\n{FORGED_ROW}\n    x.so"
    entries.append(RawEntry(forged, b"not a library", method=entries[0].method))
    path = directory / wheel_filename(name, version, [TAG])
    write_raw_zip(path, entries)
    return path


def test_table_and_stderr_escape_names_from_a_hostile_wheel(
    built: Fixtures, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = _hostile_wheel(tmp_path, built)
    code = main([str(wheel), "-v", "--no-load-prediction"])
    out, err = capsys.readouterr()
    assert code == 2  # the member that is not a library
    for text in (out, err):
        assert not UNSAFE.search(text.replace("\n", ""))
    lines = out.splitlines()
    assert FORGED_ROW not in lines
    assert "Package: evil\\x1b]0;owned\\x07\\x9bName" in lines
    assert "  Distribution: evil\\x1b]0;owned\\x07\\x9bName 1.0\\x1b[2J" in lines
    row = next(line for line in lines if "lib.so" in line)
    assert row.startswith("    [ERROR   ] [n/a                   ] evil/lib.so\\n    [STABLE")
    assert "error: inspection failed for evil\\x1b]0;owned\\x07\\x9bName" in err.splitlines()


def test_symbol_names_and_needed_libraries_are_escaped_with_v(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = build_elf(
        [
            Sym("PyInit_x"),
            Sym("_Py_\x1b]0;evil\x07", defined=False),
            Sym("_ZN3c10\x1b[2J6detail14torchCheckFailEv", defined=False),
        ]
    )
    library = image.write(tmp_path / "x.abi3.so")
    code = main([str(library), "-v"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert not UNSAFE.search(out.replace("\n", ""))
    assert "        cpython violation: _Py_\\x1b]0;evil\\x07" in out.splitlines()
    assert "        torch unstable: _ZN3c10\\x1b[2J6detail14torchCheckFailEv" in out.splitlines()


def test_environment_columns_stay_aligned_around_escaped_names(
    built: Fixtures, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site-packages"
    for name, version in [("calm", "1.0"), ("loud\x1b[5m", "2.0\x07")]:
        package = site / name.split("\x1b")[0]
        package.mkdir(parents=True)
        (package / "libx.so").write_bytes(built.unstable_lib.read_bytes())
        dist_info = site / f"{package.name}-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(metadata_text(name, version))
        (dist_info / "RECORD").write_text(f"{package.name}/libx.so,,\n")
    code = main(["--site-packages", str(site), "--no-load-prediction"])
    out, _ = capsys.readouterr()
    assert code == 0
    rows = [line for line in out.splitlines() if "UNSTABLE" in line]
    assert len(rows) == 2
    assert rows[1].startswith("  loud\\x1b[5m ")
    assert "2.0\\x07" in rows[1]
    assert rows[0].index("UNSTABLE") == rows[1].index("UNSTABLE")


def _printed(package: Path, encoding: str) -> tuple[str, dict[str, Any]]:
    """The table and the JSON document the command prints for ``package`` on a standard output
    of ``encoding`` (``PYTHONIOENCODING``), each read as strict UTF-8."""
    environment = {**os.environ, "PYTHONIOENCODING": encoding}
    printed = []
    for extra in ([], ["--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "torch_abi_audit", str(package), *extra],
            capture_output=True,
            env=environment,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        printed.append(result.stdout.decode("utf-8"))  # strict: valid UTF-8
    table, document = printed
    return table, json.loads(document)


def test_undecodable_directory_names_print_on_a_strict_utf8_stream(
    built: Fixtures, tmp_path: Path
) -> None:
    package = tmp_path / os.fsdecode(b"pkg\xff\x1b[2J")
    package.mkdir()
    (package / os.fsdecode(b"lib\xfe.so")).write_bytes(built.stable_plugin.read_bytes())
    table, document = _printed(package, "utf-8:strict")
    assert os.fsencode(document["bundled_libs"][0]["path"]).endswith(b"lib\xfe.so")
    assert "Package: pkg\\xff\\x1b[2J" in table.splitlines()
    assert "lib\\xfe.so" in table


def test_a_name_the_output_encoding_cannot_spell_goes_out_in_utf8(
    built: Fixtures, tmp_path: Path
) -> None:
    # An ASCII standard output (PYTHONIOENCODING=ascii, a legacy locale) and a package whose
    # path is not ASCII: the report is written in UTF-8, as -o writes it, not an internal error.
    package = tmp_path / "pkg-ünï"
    package.mkdir()
    (package / "libé.so").write_bytes(built.unstable_lib.read_bytes())
    table, document = _printed(package, "ascii")
    assert document["root"] == str(package)
    assert table.startswith("Package: pkg-ünï\n") and "libé.so" in table
