"""PyTorch's stable-ABI notes in scripts/generate_replacements.py: how they are had and read.

The notes are not kept in this repository. The parser is tested on a synthetic document of our
own words with the notes' shape (``tests/fixtures/synthetic_stable_abi_notes.md``); how the
generator obtains the pinned file (``--docs``, the cache, a download checked by its SHA-256) on
a local HTTP server. The tests that read PyTorch's real file run only where it can be had (in
the cache, or downloaded into it: ``python scripts/generate_replacements.py`` does that) and
skip with the reason otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from helpers.scripts import load_script
from helpers.stable_abi_notes import real_notes_or_skip

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "src" / "torch_abi_audit" / "data" / "torch_replacements.json"
SYNTHETIC = REPO / "tests" / "fixtures" / "synthetic_stable_abi_notes.md"

HEADERS = load_script("cxx_headers")
STATEMENTS = load_script("replacement_statements")
GEN = load_script("generate_replacements")


def _line(text: str, start: str) -> int:
    """The 1-based number of the first line of ``text`` starting with ``start``."""
    lines = text.split("\n")
    return next(n for n, line in enumerate(lines, start=1) if line.startswith(start))


# -- the parser, on our synthetic notes -------------------------------------------------------


def test_docs_statements_read_the_synthetic_notes() -> None:
    text = SYNTHETIC.read_text(encoding="utf-8")
    statements, _ = STATEMENTS.docs_statements(text, "pytorch@test")
    found = {(s.libtorch, s.stable, s.relation, s.source.line) for s in statements}
    table_row = _line(text, "| torch::stable::Tensor |")
    helpers = _line(text, "Nothing here links to libtorch.")
    porting = _line(text, "- all uses of `at::Tensor`")
    assert found == {
        ("c10::Layout", "torch::headeronly::Layout", "lives in torch/headeronly as", helpers),
        ("TORCH_CHECK", "STD_TORCH_CHECK", "libtorch-independent version", helpers + 1),
        (
            "c10::Widget",
            "torch::stable::Widget",
            "stable version of",
            _line(text, "- torch/csrc/stable/widget.h"),
        ),
        ("TORCH_LIBRARY", "STABLE_TORCH_LIBRARY", "instead of", _line(text, "Step one:")),
        ("at::Tensor", "torch::stable::Tensor", "replaced with", porting),
        ("at::kCPU", "torch::headeronly::kCPU", "replaced with", porting + 1),
        ("at::Tensor", "torch::stable::Tensor", "StableIValue table", table_row),
        ("c10::Widget", "torch::stable::Widget", "StableIValue table", table_row + 2),
        ("ivalue::ConstantString", "std::string", "StableIValue table", table_row + 3),
        ("ivalue::ConstantString", "std::string_view", "StableIValue table", table_row + 3),
        ("c10::SymInt", None, "no stable type in the StableIValue table", table_row + 4),
        ("at::Scalar", None, "no stable type in the StableIValue table", table_row + 5),
        ("c10::Scalar", None, "no stable type in the StableIValue table", table_row + 5),
    }
    # std:: types on the libtorch side, a row after the table, code blocks: no statement.
    assert not any("OutsideTheTable" in s.libtorch for s in statements)
    first = statements[0].source
    assert (first.file, first.origin) == (
        "docs/source/notes/libtorch_stable_abi.md",
        "pytorch@test",
    )


def test_docs_rules_are_found_by_names_and_shape() -> None:
    text = SYNTHETIC.read_text(encoding="utf-8")
    _, rules = STATEMENTS.docs_statements(text, "pytorch@test")
    assert set(rules) == set(STATEMENTS.RULES)
    lines = {rule: source.line for rule, source in rules.items()}
    assert lines == {
        "similar-macros": _line(text, "- torch/csrc/stable/library.h:"),
        "aten-c-shim": _line(text, "- [torch/csrc/inductor/aoti_torch/generated/c_shim_aten.h]"),
        "aten-function": _line(text, "- a call of the operator `at::narrow`"),
        "tensor-method": _line(text, "- a method call such as `Tensor.narrow`"),
        # The first text under the numbered item, past the blank line.
        "dispatcher": _line(text, "    Runs any registered operator"),
    }
    assert text.split("\n")[lines["dispatcher"] - 3] == "2. `torch_call_dispatcher`"


def test_docs_rules_need_their_names() -> None:
    """A list item for another header, an ATen function whose stable namesake differs, the
    dispatcher named in prose or as the last line: no rule, or the item itself."""
    text = "\n".join(
        [
            "- torch/csrc/stable/library.h: registration helpers.",
            "- `at::narrow` becomes `torch::stable::slice`",
            "- `Tensor.narrow` becomes `torch::headeronly::narrow`",
            "- torch/csrc/stable/c/shim.h: C functions.",
            "Call `torch_call_dispatcher` for anything else.",
            "3. `torch_call_dispatcher`",
        ]
    )
    _, rules = STATEMENTS.docs_statements(text, "pytorch@test")
    assert {rule: source.line for rule, source in rules.items()} == {"dispatcher": 6}


# -- the notes' statements in the table -------------------------------------------------------

STABLE = {
    "torch/csrc/stable/widget.h": """
namespace torch::stable {
class Widget {};
class Tensor {};
}
""",
    "torch/csrc/stable/library.h": """
#define STABLE_TORCH_LIBRARY(ns, m) static int ns##m = 0;
#define STABLE_TORCH_LIBRARY_IMPL(ns, k, m) static int ns##k##m = 0;
""",
    "torch/headeronly/util/Exception.h": """
#define STD_TORCH_CHECK(cond, ...) if (!(cond)) { throw std::runtime_error("x"); }
namespace torch::headeronly { enum class Layout { Strided }; }
""",
}
LIBTORCH = {
    "c10/core/Widget.h": """
namespace c10 {
class C10_API Widget {};
class C10_API SymInt {};
enum class Layout { Strided };
namespace detail {
[[noreturn]] C10_API void torchCheckFail(const char* func, const char* msg);
}
}
namespace at { class TORCH_API Tensor {}; }
#define TORCH_CHECK(cond, ...) \\
  if (!(cond)) { ::c10::detail::torchCheckFail(__func__, "x"); }
""",
    "torch/library.h": """
#define TORCH_LIBRARY(ns, m) static int ns##m = 0;
#define TORCH_LIBRARY_IMPL(ns, k, m) static int ns##k##m = 0;
""",
}


def _release() -> Any:
    return GEN.ReleaseHeaders(
        "2.10.0",
        "torch-2.10.0-synthetic.whl",
        None,
        stable={path: HEADERS.read_header(path, text) for path, text in STABLE.items()},
        libtorch={path: HEADERS.read_header(path, text) for path, text in LIBTORCH.items()},
    )


def test_build_table_maps_what_the_notes_say() -> None:
    text = SYNTHETIC.read_text(encoding="utf-8")
    shims = {"torch_call_dispatcher": {"since": "2.10.0"}}
    table, rejected = GEN.build_table([_release()], text, shims)
    entities, macros, rules = table["entities"], table["macros"], table["rules"]
    notes = "docs/source/notes/libtorch_stable_abi.md"
    widget = entities["c10::Widget"]
    assert widget["replacement"] == "torch::stable::Widget"
    assert widget["declared_in"] == "torch/include/torch/csrc/stable/widget.h"
    assert widget["source"] == {
        "file": notes,
        "line": _line(text, "- torch/csrc/stable/widget.h"),
        "origin": f"pytorch@{GEN.DOCS_COMMIT[:12]}",
    }
    assert entities["at::Tensor"]["replacement"] == "torch::stable::Tensor"
    assert entities["c10::Layout"]["replacement"] == "torch::headeronly::Layout"
    assert entities["c10::SymInt"]["replacement"] is None
    assert macros["TORCH_CHECK"]["replacement"] == "STD_TORCH_CHECK"
    assert macros["TORCH_LIBRARY"]["replacement"] == "STABLE_TORCH_LIBRARY"
    # "library.h ... TORCH_LIBRARY and its relatives": every STABLE_<X> library.h defines.
    assert macros["TORCH_LIBRARY_IMPL"]["replacement"] == "STABLE_TORCH_LIBRARY_IMPL"
    # What a macro expands to inherits its replacement.
    check_fail = entities["c10::detail::torchCheckFail"]
    assert check_fail["replacement"] == "STD_TORCH_CHECK" and check_fail["via"] == ["TORCH_CHECK"]
    assert rules["dispatcher"]["replacement"] == "torch_call_dispatcher"
    assert rules["dispatcher"]["source"]["line"] == _line(text, "    Runs any registered")
    # Names the headers do not declare are dropped and reported, never guessed.
    assert any("at::kCPU" in line for line in rejected)
    assert "at::kCPU" not in entities and "c10::Scalar" not in entities
    assert table["sources"]["docs"] == {
        "file": notes,
        "commit": GEN.DOCS_COMMIT,
        "sha256": GEN.DOCS_SHA256,
    }


# -- obtaining the pinned file ----------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on loopback, and its URL (ending with ``/``)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def pinned_to_synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The generator pinned to the synthetic notes' digest, with its own empty cache."""
    data = SYNTHETIC.read_bytes()
    monkeypatch.setattr(GEN, "DOCS_SHA256", hashlib.sha256(data).hexdigest())
    monkeypatch.setenv("TORCH_ABI_AUDIT_CACHE", str(tmp_path / "cache"))
    return data


def test_docs_cache_path_is_under_the_project_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_ABI_AUDIT_CACHE", "/somewhere")
    assert GEN.docs_cache_path() == Path(
        f"/somewhere/pytorch/libtorch_stable_abi-{GEN.DOCS_COMMIT}.md"
    )
    url: str = GEN.DOCS_URL
    assert url == (
        f"https://raw.githubusercontent.com/pytorch/pytorch/{GEN.DOCS_COMMIT}/"
        "docs/source/notes/libtorch_stable_abi.md"
    )


def test_explicit_docs_are_checked(tmp_path: Path, pinned_to_synthetic: bytes) -> None:
    given = tmp_path / "notes.md"
    given.write_bytes(pinned_to_synthetic)
    assert GEN.obtain_docs(given) == given
    assert GEN.read_docs(given) == pinned_to_synthetic.decode()
    given.write_bytes(pinned_to_synthetic.replace(b"Widget", b"Gizmo", 1))
    with pytest.raises(SystemExit, match=re.escape(str(given)) + ": SHA-256 .* at PyTorch commit"):
        GEN.obtain_docs(given)
    with pytest.raises(SystemExit, match="cannot read the stable-ABI notes"):
        GEN.obtain_docs(tmp_path / "missing.md")


def test_download_fills_the_cache_once(
    served: tuple[Path, str], pinned_to_synthetic: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, url = served
    (root / "notes.md").write_bytes(pinned_to_synthetic)
    monkeypatch.setattr(GEN, "DOCS_URL", url + "notes.md")
    cached = GEN.docs_cache_path()
    assert GEN.obtain_docs() == cached
    assert cached.read_bytes() == pinned_to_synthetic
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no partial file left
    # Served no more: the cached copy is used, without asking.
    (root / "notes.md").unlink()
    assert GEN.obtain_docs() == cached
    # A cached copy that changed is refused, with what to do.
    cached.write_bytes(pinned_to_synthetic + b"\n")
    with pytest.raises(SystemExit, match="remove that file to download it again"):
        GEN.obtain_docs()


def test_download_of_another_file_caches_nothing(
    served: tuple[Path, str], pinned_to_synthetic: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, url = served
    (root / "notes.md").write_bytes(pinned_to_synthetic.replace(b"Widget", b"Gizmo"))
    monkeypatch.setattr(GEN, "DOCS_URL", url + "notes.md")
    with pytest.raises(SystemExit, match=r"SHA-256 .* is not that of"):
        GEN.obtain_docs()
    assert not GEN.docs_cache_path().parent.exists()
    monkeypatch.setattr(GEN, "DOCS_URL", url + "absent.md")
    with pytest.raises(SystemExit, match=r"cannot download .*: File not found"):
        GEN.obtain_docs()


def test_no_network_says_how_to_provide_the_notes(
    pinned_to_synthetic: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        monkeypatch.setattr(GEN, "DOCS_URL", f"http://127.0.0.1:{port}/notes.md")
        with pytest.raises(SystemExit) as raised:
            GEN.obtain_docs()
        message = str(raised.value)
        assert "cannot download PyTorch's stable-ABI notes" in message
        assert "--docs FILE" in message and str(GEN.docs_cache_path()) in message
        with pytest.raises(SystemExit, match="not in the cache"):
            GEN.obtain_docs(download=False)
        # The script stops before reading any release, with exit code 2 (not 1: out of date).
        assert GEN.main(["--check", "--releases", "0.0.0"]) == 2
    assert "--docs FILE" in capsys.readouterr().err


# -- PyTorch's real notes, where the cache has them (opt-in) ----------------------------------


@pytest.fixture(scope="module")
def real_notes() -> str:
    return str(GEN.read_docs(real_notes_or_skip(GEN)))


def test_real_notes_statements_and_rules(real_notes: str) -> None:
    statements, rules = STATEMENTS.docs_statements(real_notes, "pytorch@x")
    pairs = {(s.libtorch, s.stable) for s in statements}
    assert ("at::Tensor", "torch::stable::Tensor") in pairs
    assert ("TORCH_CHECK", "STD_TORCH_CHECK") in pairs
    assert ("TORCH_LIBRARY", "STABLE_TORCH_LIBRARY") in pairs
    assert ("c10::Device", "torch::stable::Device") in pairs
    # A "?" in the StableIValue table: documented as having no stable type yet.
    assert ("c10::SymInt", None) in pairs and ("at::Scalar", None) in pairs
    assert set(rules) == set(STATEMENTS.RULES)
    lines = real_notes.split("\n")
    # The dispatcher's rule is the text under the numbered `torch_call_dispatcher` item.
    above = [line for line in lines[: rules["dispatcher"].line - 1] if line.strip()]
    assert above[-1].strip().endswith("`torch_call_dispatcher`")


def test_shipped_table_points_at_lines_of_the_real_notes(real_notes: str) -> None:
    """Every line of the notes the shipped table cites names the entity it is cited for (or is
    the rule for ``STABLE_<X>`` macros, or the source of a macro that expands to the entity),
    and the family rules are where the parser finds them today."""
    lines = real_notes.split("\n")
    _, rules = STATEMENTS.docs_statements(real_notes, "pytorch@x")
    shipped = json.loads(DATA.read_text(encoding="utf-8"))
    cited = 0
    for name, entry in [*shipped["entities"].items(), *shipped["macros"].items()]:
        source = entry.get("source")
        if not source or source["file"] != "docs/source/notes/libtorch_stable_abi.md":
            continue
        assert source["origin"] == f"pytorch@{GEN.DOCS_COMMIT[:12]}"
        line = lines[source["line"] - 1].replace("\\<", "<")
        assert (
            name.rsplit("::", 1)[-1] in line
            or entry.get("via")
            or source["line"] == rules["similar-macros"].line
        ), name
        cited += 1
    assert cited >= 10
    for rule, entry in shipped["rules"].items():
        assert entry["source"]["line"] == rules[rule].line, rule
