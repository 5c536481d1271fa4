"""The deflate decoder falls back to the standard library's zlib where zlib-ng is absent.

zlib-ng is a dependency only where it ships wheels (pyproject's marker); everywhere else the
audit must run, and give the same report, with the standard library's decoder. The fallback is
chosen at import, so it is exercised in a fresh interpreter in which ``zlib_ng`` cannot be
imported, and compared with this process's report of the same wheel.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.wheel_builder import DEFLATED, RawEntry, wheel_entries, wheel_filename, write_raw_zip
from torch_abi_audit.cli import main
from torch_abi_audit.sources import deflate_codec

TAG = "py3-none-manylinux_2_28_x86_64"

#: Runs the command with ``zlib_ng`` unimportable (as on a machine without its wheel) and
#: prints, first, the decoder the readers chose.
WITHOUT_ZLIB_NG = """
import sys
sys.modules["zlib_ng"] = None  # `import zlib_ng` raises ImportError
from torch_abi_audit.sources import deflate_codec
print(deflate_codec.DECODER, flush=True)
from torch_abi_audit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _wheel(tmp_path: Path, library: bytes) -> Path:
    """A wheel with the library twice: deflated whole, and deflated with 20 MB of padding after
    it (read as a stream, cut short)."""
    path = tmp_path / wheel_filename("codec", "1.0", [TAG])
    entries = wheel_entries("codec", "1.0", [TAG], {})
    entries.append(RawEntry("codec/libwhole.so", library, method=DEFLATED))
    entries.append(RawEntry("codec/libpadded.so", library + bytes(20_000_000), method=DEFLATED))
    write_raw_zip(path, entries)
    return path


def test_without_zlib_ng_the_standard_library_decodes_the_same_report(
    built: Fixtures, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = _wheel(tmp_path, built.stable_plugin.read_bytes())
    argv = [str(wheel), "--json", "--no-load-prediction"]
    for verify in ([], ["--verify-archive"]):
        fallback = subprocess.run(
            [sys.executable, "-c", WITHOUT_ZLIB_NG, *argv, *verify],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert fallback.returncode == 0, fallback.stderr
        decoder, _, output = fallback.stdout.partition("\n")
        assert decoder.startswith("zlib "), decoder
        assert main([*argv, *verify]) == 0
        here = capsys.readouterr().out
        assert json.loads(output) == json.loads(here)


def test_the_decoder_is_named() -> None:
    """zlib-ng where its package is installed (this test environment installs it where it
    ships wheels), else zlib; with its version either way."""
    name, _, version = deflate_codec.DECODER.partition(" ")
    assert name in {"zlib-ng", "zlib"} and version
    try:
        import zlib_ng  # noqa: F401
    except ImportError:
        assert name == "zlib"
    else:
        assert name == "zlib-ng"
