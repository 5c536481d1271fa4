"""The two ``RECORD`` readers agree: the whole-file fast path keeps exactly what the line
stream keeps (top-level entries in order, libraries, programs, problems), on every real
``RECORD`` at hand and on odd and hostile ones, and leaves to the stream what it cannot
read the same way."""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path

import pytest

from torch_abi_audit.files import open_regular
from torch_abi_audit.sources import distributions
from torch_abi_audit.sources.distributions import _RecordReader
from torch_abi_audit.sources.index import cache_root
from torch_abi_audit.sources.torch_install import locate_installed_torch

Kept = tuple[list[str], set[str], set[str], list[str]]


def _kept(reader: _RecordReader) -> Kept:
    return list(reader.top_level), reader.libraries, reader.scripts, reader.problems


def _stream(record: Path) -> Kept:
    reader = _RecordReader()
    with open_regular(record) as handle:
        reader.read_lines(handle)
    return _kept(reader)


def _whole(data: bytes) -> Kept | None:
    """What the fast path keeps, or ``None`` when it leaves ``data`` to the stream (having
    kept nothing)."""
    reader = _RecordReader()
    if not reader.read_whole(data):
        assert _kept(reader) == ([], set(), set(), [])
        return None
    return _kept(reader)


def _read(record: Path) -> Kept:
    reader = _RecordReader()
    with open_regular(record) as handle:
        reader.read(handle)
    return _kept(reader)


def _agree(record: Path) -> bool:
    """Assert that both readers (and :meth:`_RecordReader.read`) keep the same from
    ``record``; return whether the fast path read it."""
    expected = _stream(record)
    fast = _whole(record.read_bytes()[: distributions.MAX_RECORD_SIZE + 1])
    assert fast is None or fast == expected, record
    assert _read(record) == expected, record
    return fast is not None


def _real_records() -> list[Path]:
    paths = sysconfig.get_paths()
    sites = {Path(paths["purelib"]), Path(paths["platlib"])}
    torch = locate_installed_torch().package
    if torch is not None:
        sites.add(torch.parent)
    sites.update((cache_root() / "bench" / "env").glob("lib/python3*/site-packages"))
    return sorted(record for site in sites for record in site.glob("*.dist-info/RECORD"))


def test_real_records_take_the_fast_path_and_agree() -> None:
    records = _real_records()
    assert records  # at least this interpreter's own packages (pytest...)
    for record in records:
        assert _agree(record), f"{record}: an ordinary RECORD should not need the stream"


def _write(tmp_path: Path, data: bytes) -> Path:
    record = tmp_path / "RECORD"
    record.write_bytes(data)
    return record


_ORDINARY = (
    b"pkg/__init__.py,sha256=abc,10\r\n"
    b"pkg/_ext.cpython-311-x86_64-linux-gnu.so,sha256=abc,10\r\n"
    b"pkg.libs/libgomp-a34b3233.so.1.0.0,,\r\n"
    b"pkg/.dylibs/libz.1.dylib,,\r\n"
    b"other/x.PYD,,\r\n"
    b"pkg-1.0.dist-info/RECORD,,\r\n"
    b"../../../bin/tool,sha256=abc,10\r\n"
    b"../../../bin/tool.py,,\r\n"
    b"../../../share/man/tool.1,,\r\n"
    b"../../../Scripts/tool.exe,,\r\n"
    b"pkg/a/../b.so,,\r\n"
    b"pkg//c.so,,\r\n"
    b"/abs/lib.so,,\r\n"
    b"..hidden/x.so,,\r\n"
    b".hidden/y.so,,\r\n"
    b"pkg/...,,\r\n"
    b"pkg/x.sort.py,,\r\n"
    b",,\r\n"
    b"\r\n"
    b"torch/lib/libtorch.so\r\n"
    b"late/top.py,,"
)


@pytest.mark.parametrize(
    ("name", "data", "fast"),
    [
        ("ordinary, CRLF", _ORDINARY, True),
        ("ordinary, LF", _ORDINARY.replace(b"\r\n", b"\n"), True),
        ("empty", b"", True),
        ("only line breaks", b"\n\r\n\n", True),
        ("non-ASCII (long s folds to s)", "pkg/é.so,,\nñ/x.py,,\npkg/x.\u017fo,,\n".encode(), True),
        ("a lone carriage return", b"a/x.so,,\rb/y.so,,\n", False),
        ("a carriage return at the end", b"a/x.so,,\nb/y.so,,\r", False),
        ("CR CR LF", b"a/x.so,,\r\r\nb/y.so,,\r\n", False),
        ("a quoted path", b'"a,b/x.so",sha,1\nc/y.so,,\n', False),
        ("a stray quote", b'a"b/x.so,,\n', False),
        ("backslashes", b"pkg\\x.so,,\n..\\..\\Scripts\\tool.exe,,\n", False),
        ("a ./ path", b"./pkg/x.so,,\nother/y.py,,\n", False),
        ("a . path", b".,,\nother/y.py,,\n", False),
        ("not UTF-8", b"pkg/\xff.so,,\nother/y.py,,\n", False),
        ("a surrogate", b"pkg/\xed\xa0\x80.so,,\n", False),
        ("a NUL byte", b"pkg/\x00.so,,\nother/\x00/y.py,,\n", True),
        ("a form feed and a line separator", "a/x\x0c.so,,\nb\u2028c/y.so,,\n".encode(), True),
    ],
)
def test_crafted_records_agree(tmp_path: Path, name: str, data: bytes, fast: bool) -> None:
    assert _agree(_write(tmp_path, data)) is fast, name


@pytest.mark.parametrize("length_delta", [-3, -2, -1, 0, 1, 2])
@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""])
def test_lines_near_the_line_limit(tmp_path: Path, length_delta: int, ending: bytes) -> None:
    """A line about ``_MAX_LINE`` long (which ``readline`` may cut) is left to the stream;
    those around it read the same either way."""
    long_path = b"big/" + b"x" * (distributions._MAX_LINE + length_delta - 7) + b".so"
    data = b"a/x.so,,\n" + long_path + b"," + ending + b"b/y.so,,\n" + long_path + ending
    _agree(_write(tmp_path, data))


def test_a_record_longer_than_the_size_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(distributions, "MAX_RECORD_SIZE", 1000)
    data = b"".join(b"pkg%d/lib%d.so,,\n" % (i, i) for i in range(200))
    record = _write(tmp_path, data)
    assert not _agree(record)
    assert _read(record)[3] == ["RECORD is larger than 0 MiB: the rest is not read"]


def test_a_record_with_too_many_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributions, "MAX_RECORD_NAMES", 50)
    within = b"".join(b"pkg/lib%d.so,,\n" % i for i in range(49))  # and the top-level pkg
    assert _agree(_write(tmp_path, within))
    beyond = within + b"pkg/one-more.so,,\n"
    assert not _agree(_write(tmp_path, beyond))
    assert _read(_write(tmp_path, beyond))[3] == [
        "RECORD lists more than 50 libraries and top-level entries: the rest is not read"
    ]


_PIECES = [
    b"a", b"b", b"pkg", b"x", b"/", b"/", b"/", b",", b",", b".", b"..", b"../", b"./",
    b".so", b".SO", b".so.1", b".dylib", b".pyd", b".dll", b".py", b".dist-info", b"bin/",
    b"Scripts/", b"../../bin/tool", b"tool.exe", b"\n", b"\n", b"\n", b"\r\n", b"\r\n", b"\r",
    b'"', b"\\", b"\xff", "é".encode(), "\u017f".encode(), b"", b" ",
]  # fmt: skip


def test_random_records_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many small random RECORDs, under small budgets so that each is reached now and then;
    the fast path must read a good share of them."""
    monkeypatch.setattr(distributions, "MAX_RECORD_SIZE", 300)
    monkeypatch.setattr(distributions, "MAX_RECORD_NAMES", 20)
    monkeypatch.setattr(distributions, "_MAX_LINE", 40)
    rng = random.Random(20261207)
    odd = (b'"', b"\\", b"\r", b"\xff", b"./", b".")
    usual = [p for p in _PIECES if p not in odd] + [b"\n", b"\r\n"] * 4
    read_fast = 0
    for attempt in range(1500):
        pieces = usual if attempt % 2 else _PIECES
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 120)))
        read_fast += _agree(_write(tmp_path, data))
    assert read_fast > 250, read_fast
