"""Regenerate every output the README and the documentation site show, from real runs.

Builds the demo wheels of ``tests/helpers/demo_wheels.py`` (libraries compiled from
``tests/fixtures/src``), the macOS and Windows wheels of ``tests/helpers/platform_wheels.py``
(Mach-O and PE built byte by byte), a site-packages where pip installed the demo wheels next to
a fake torch, and a local package index (a directory pip is pointed at), then runs
``python -m torch_abi_audit`` for each of :data:`EXAMPLES` and writes its output:

* into every Markdown file of the README and ``docs/`` between ``<!-- golden: NAME -->`` and
  ``<!-- end golden -->`` (one fenced block, with the command line for terminal examples);
* for the report formats, also into ``tests/golden/demo.<suffix>``.

It also writes the reference pages generated from the code (``docs/generated/``: the command
line from the argument parsers, the JSON fields from the shipped schema; see
``scripts/docs_reference.py``). The only edits made to what the tool printed: the temporary
directories become ``/work/demo`` and ``/work/env``, the wheel cache ``~/.cache/torch-abi-audit``,
and the tool's version ``<version>``, so that nothing changes with the machine or a version bump.

With ``--network`` it also runs :data:`RELEASE_EXAMPLES`, the examples on real releases (the
migration guide's): the wheels they name are fetched by the project's downloader into the wheel
cache, the command runs in a directory holding them, and what it printed is written between
``<!-- release: NAME -->`` and ``<!-- end release -->``, cut to the lines the example keeps
(every skipped stretch becomes one ``…`` line). Without ``--network`` those blocks are left as
they are (``tests/test_migration_examples.py``, marked ``network``, checks them).

    python scripts/generate_golden_outputs.py             # rewrite everything that is stale
    python scripts/generate_golden_outputs.py --check     # exit 1 if anything is stale
    python scripts/generate_golden_outputs.py --network   # the real-release examples too

``tests/test_golden.py`` runs the check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

from docs_reference import all_pages  # noqa: E402
from helpers.build import build_fixtures  # noqa: E402
from helpers.demo_wheels import build_demo, build_port_next  # noqa: E402
from helpers.fake_torch import write_torch  # noqa: E402
from helpers.platform_wheels import write_mac_wheel, write_windows_wheel  # noqa: E402
from torch_abi_audit import __version__  # noqa: E402
from torch_abi_audit.sources.index import fetch_wheel  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"
README = ROOT / "README.md"
DOCS = ROOT / "docs"
GENERATED = DOCS / "generated"
#: Where the demo wheels, the demo environment and the wheel cache appear to live.
SHOWN = {"demo": "/work/demo", "env": "/work/env", "cache": "~/.cache/torch-abi-audit"}
PORT_WHEEL = "portpkg-1.0-cp311-abi3-manylinux_2_28_x86_64.whl"
PORT_NEXT_WHEEL = "portpkg-1.1-cp311-abi3-manylinux_2_28_x86_64.whl"
#: The baseline the gate examples write, then read back against the next build of the port.
BASELINE = "abi-baseline.toml"
BASELINE_WRITTEN = ("--check", "torch,abi3", "--write-baseline", BASELINE)
BASELINE_READ = ("--check", "torch,abi3", "--baseline", BASELINE)
#: Names the explain example asks about: an Itanium-mangled libtorch function (old string ABI),
#: an MSVC-decorated ATen operator, a macro.
EXPLAINED = (
    "_ZN3c106detail14torchCheckFailEPKcS2_jRKSs",
    "?call@cat@_ops@at@@SA?AVTensor@3@AEBV?$IListRef@VTensor@at@@@c10@@_J@Z",
    "TORCH_WARN",
)
STABLE_WHEEL = "stablepkg-2.0-cp311-abi3-manylinux_2_28_x86_64.whl"
#: The shims the fake torch of the demo environment exports: everything stablepkg imports.
FAKE_TORCH_SHIMS = (
    "aoti_torch_delete_tensor_object",
    "aoti_torch_get_dim",
    "torch_dtype_float8_e8m0fnu",
)


@dataclass(frozen=True)
class Example:
    """One run of the tool whose output a page shows.

    ``cwd`` is the directory it runs in (``demo``: the wheels; ``env``: the directory holding
    ``site-packages``); ``suffix`` names its ``tests/golden/demo.<suffix>`` file (the report
    formats); ``language`` is the fence's, and terminal examples (``console``) show the command.
    ``terminal`` examples show standard error too, interleaved as a terminal shows it (notes,
    the ``FAIL:`` summary); the report formats show the report alone. An example that
    ``shows`` a file shows that file as the run left it instead of what it printed (the
    baseline ``--write-baseline`` writes). Examples run in the order :data:`EXAMPLES` lists
    them, in the same directories: a baseline written by one is there for the next.
    """

    name: str
    args: tuple[str, ...]
    exit_code: int
    language: str = "console"
    cwd: str = "demo"
    suffix: str | None = None
    terminal: bool = True
    shows: str | None = None


def _format(fmt: str, suffix: str, language: str, *extra: str) -> Example:
    args = (PORT_WHEEL, STABLE_WHEEL, "--check", "all", "--format", fmt, *extra)
    return Example(fmt, args, 1, language, suffix=suffix, terminal=False)


#: Every example, by the name its markers use.
EXAMPLES = {
    example.name: example
    for example in (
        _format("table", "txt", "console", "-v"),
        _format("json", "json", "json"),
        _format("markdown", "md", "markdown"),
        _format("github", "github.txt", "console"),
        _format("sarif", "sarif", "json"),
        Example("wheel", (PORT_WHEEL,), 0),
        Example("environment", ("--site-packages", "site-packages"), 0, cwd="env"),
        Example(
            "environment-verbose",
            ("--site-packages", "site-packages", "-v", "portpkg"),
            0,
            cwd="env",
        ),
        Example(
            "download",
            ("--download", "portpkg==1.0", "--platform", "manylinux_2_28_x86_64"),
            0,
        ),
        Example("release", (STABLE_WHEEL, "--torch-version", "2.10"), 0),
        Example("release-unstable", (PORT_WHEEL, "--torch-version", "2.13", "-v"), 0),
        Example("release-variant", (PORT_WHEEL, "--torch-version", "2.13+cu126"), 0),
        Example("explain-plan", (PORT_WHEEL, "--explain"), 0),
        Example("explain", ("explain", *EXPLAINED), 0),
        Example("diff", ("diff", PORT_WHEEL, PORT_NEXT_WHEEL), 0),
        Example("diff-regression", ("diff", PORT_NEXT_WHEEL, PORT_WHEEL, "--check", "torch"), 1),
        Example(
            "diff-markdown",
            ("diff", PORT_WHEEL, PORT_NEXT_WHEEL, "--format", "markdown"),
            0,
            "markdown",
            terminal=False,
        ),
        Example(
            "target-version", (STABLE_WHEEL, "--target-version", "2.10", "--check", "torch"), 1
        ),
        Example("gates", (PORT_WHEEL, "--check", "torch,abi3"), 1),
        Example("write-baseline", (PORT_WHEEL, *BASELINE_WRITTEN), 0),
        Example("baseline-written", (PORT_WHEEL, *BASELINE_WRITTEN), 0, "toml", shows=BASELINE),
        Example("baseline-stale", (PORT_NEXT_WHEEL, *BASELINE_READ), 1),
        Example("windows", ("winpkg-1.0-cp311-abi3-win_amd64.whl", "-v"), 0),
        Example("macos", ("macpkg-1.0-cp311-abi3-macosx_10_9_universal2.whl",), 0),
        Example("release-gate", (STABLE_WHEEL, "--torch-version", "2.10", "--check", "load"), 1),
    )
}


@dataclass(frozen=True)
class ReleaseExample:
    """One run of the tool on real releases, as a page shows it.

    ``wheels`` are the wheel files its command names (fetched by their name, for their
    platform, into the cache, and linked into the directory the command runs in); a command
    that names a requirement (``torchaudio==2.9.1``) fetches it itself. ``keep`` selects what
    the page shows: each ``(pattern, count)`` keeps the first line matching the regular
    expression ``pattern`` (searched at or after the previous kept line) and the ``count - 1``
    lines after it (``count`` 0: every line to the end); none keeps everything.
    """

    name: str
    args: tuple[str, ...]
    exit_code: int
    wheels: tuple[str, ...] = ()
    keep: tuple[tuple[str, int], ...] = ()


TORCHCODEC_081 = "torchcodec-0.8.1-cp311-cp311-manylinux_2_28_x86_64.whl"
TORCHAUDIO_2110 = "torchaudio-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl"
#: The examples on real releases, by the name their markers use.
RELEASE_EXAMPLES = {
    example.name: example
    for example in (
        ReleaseExample(
            "explain-torchcodec",
            (TORCHCODEC_081, "--explain"),
            0,
            wheels=(TORCHCODEC_081,),
            keep=(
                (r"^  -- migration: ", 1),
                (r"  c10::detail::torchCheckFail ", 2),
                (r"  at::Tensor \(in signatures\)$", 2),
                (r"  c10::MessageLogger ", 2),
                (r"  at::TensorBase::mutable_data_ptr$", 2),
                (r"  aten::cat$", 2),
                (r"  aten::narrow$", 2),
                (r"^    min torch after the port: ", 1),
            ),
        ),
        ReleaseExample(
            "diff-torchaudio",
            (
                *("diff", "torchaudio==2.9.1", "torchaudio==2.11.0"),
                *("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11"),
                *("--check", "torch"),
            ),
            0,
            keep=((r"^Diff: ", 19),),
        ),
        ReleaseExample(
            "target-torchaudio",
            (TORCHAUDIO_2110, "--target-version", "2.10", "--check", "torch"),
            1,
            wheels=(TORCHAUDIO_2110,),
            keep=((r"^  Findings:$", 3), (r"^Gates: ", 0)),
        ),
    )
}


def kept_lines(text: str, keep: Sequence[tuple[str, int]]) -> str:
    """``text`` cut to the lines ``keep`` selects (see :class:`ReleaseExample`), every skipped
    stretch shown as one ``…`` line indented like the line after it (at the start: not at all;
    at the end: like the line before it).
    Raises ValueError when a pattern matches nothing."""
    lines = text.splitlines()
    if not keep:
        return text
    chosen: list[int] = []
    start = 0
    for pattern, count in keep:
        found = next((i for i in range(start, len(lines)) if re.search(pattern, lines[i])), None)
        if found is None:
            raise ValueError(f"no line matches {pattern!r} after line {start + 1}")
        end = len(lines) if count == 0 else min(found + count, len(lines))
        chosen.extend(i for i in range(found, end) if not chosen or i > chosen[-1])
        start = end
    shown: list[str] = []
    previous = -1
    for index in chosen:
        if index > previous + 1:
            shown.append((_indent(lines[index]) if shown else "") + "…")
        shown.append(lines[index])
        previous = index
    if previous < len(lines) - 1 and any(line.strip() for line in lines[previous + 1 :]):
        shown.append(_indent(lines[previous]) + "…")
    return "\n".join(shown) + "\n"


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" "))]


def run_release_example(example: ReleaseExample, work: Path) -> str:
    """The release example's output as its page shows it; raises RuntimeError on an
    unexpected exit code, ValueError when its output lacks a line it keeps."""
    for filename in example.wheels:
        target = work / filename
        if not target.exists():
            target.symlink_to(_fetched(filename))
    env = {key: value for key, value in os.environ.items() if key != "TORCH_ABI_AUDIT_TORCH_DIR"}
    completed = subprocess.run(
        [sys.executable, "-m", "torch_abi_audit", *example.args],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    if completed.returncode != example.exit_code:
        raise RuntimeError(
            f"{example.name}: exit {completed.returncode}, expected {example.exit_code}: "
            f"{completed.stdout}"
        )
    text = completed.stdout.replace(str(work), ".").replace(__version__, "<version>")
    return kept_lines(text, example.keep)


def _fetched(filename: str) -> Path:
    """The wheel named ``filename``, fetched with pip for the platforms its tags name."""
    name, version, _build, tags = parse_wheel_filename(filename)
    platforms = sorted({tag.platform for tag in tags})
    fetched = fetch_wheel(str(name), str(version), platforms=platforms, python_version="3.11")
    if fetched.name != filename:
        raise RuntimeError(f"asked pip for {filename}, it saved {fetched.name}")
    return fetched


def release_outputs() -> dict[str, str]:
    """Every release example's output (fetching the wheels it needs)."""
    with tempfile.TemporaryDirectory() as work:
        return {
            name: run_release_example(example, Path(work))
            for name, example in RELEASE_EXAMPLES.items()
        }


def command_line(example: Example | ReleaseExample) -> str:
    """The command as a page shows it (quoted for a POSIX shell, so that it can be pasted)."""
    return shlex.join(("torch-abi-audit", *example.args))


_TOKEN = re.compile(r"torch-abi-audit-[0-9a-f]{32}")


def _normalised(text: str, places: dict[str, Path]) -> str:
    for name, path in places.items():
        if SHOWN[name].startswith("/"):
            text = text.replace(path.as_uri(), Path(SHOWN[name]).as_uri())
        text = text.replace(str(path), SHOWN[name])
    text = text.replace(__version__, "<version>")
    # The github format's stop-commands token is a hash of the table, paths included.
    return _TOKEN.sub("torch-abi-audit-<token>", text)


def _environment(work: Path, wheels: Sequence[Path]) -> Path:
    """``work/env/site-packages``: the demo wheels installed by pip, and a fake torch 2.11.0
    exporting every shim stablepkg imports (portpkg's libtorch internals it does not)."""
    site = work / "env" / "site-packages"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    subprocess.run(
        [*pip, "--target", str(site), *map(str, wheels)],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )
    shims = "\n".join(f"void {name}(void) {{}}" for name in FAKE_TORCH_SHIMS)
    write_torch(site, "2.11.0", shims, "namespace c10 { void placeholder() {} }\n")
    return site.parent


def run_example(example: Example, places: dict[str, Path]) -> str:
    """The example's output, normalised; raises RuntimeError on an unexpected exit code."""
    env = {
        **os.environ,
        # --download fetches from the directory of demo wheels, as from an index.
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(places["demo"]),
        "PIP_CONFIG_FILE": os.devnull,
        "TORCH_ABI_AUDIT_CACHE": str(places["cache"]),
        # Standard error interleaved with the report in the order they were written.
        "PYTHONUNBUFFERED": "1",
    }
    # --format json/sarif are indented on a terminal only: take them as a pipe gets them, then
    # indent them here (the goldens are read by people).
    completed = subprocess.run(
        [sys.executable, "-m", "torch_abi_audit", *example.args],
        cwd=places[example.cwd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if example.terminal else subprocess.PIPE,
        text=True,
        check=False,
        env=env,
    )
    if completed.returncode != example.exit_code:
        raise RuntimeError(
            f"{example.name}: exit {completed.returncode}, expected {example.exit_code}: "
            f"{completed.stderr or completed.stdout}"
        )
    text = completed.stdout
    if example.shows is not None:
        text = (places[example.cwd] / example.shows).read_text(encoding="utf-8")
    if example.language == "json":
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
    return _normalised(text, places)


def generate(work: Path) -> dict[str, str]:
    """Every example's output, from the demo built under ``work``."""
    demo = work / "demo"
    built = build_fixtures(work / "compiled")
    wheels = build_demo(demo, built)
    build_port_next(demo, built)
    write_windows_wheel(demo)
    write_mac_wheel(demo)
    places = {
        "demo": demo,
        "env": _environment(work, [wheels.port, wheels.stable]),
        "cache": work / "cache",
    }
    return {name: run_example(example, places) for name, example in EXAMPLES.items()}


_MARKER = re.compile(
    r"^(?P<indent>[ ]*)<!-- golden: (?P<name>[a-z0-9-]+) -->\n"
    r"(?P=indent)```(?P<lang>\w+)\n(?P<body>.*?)"
    r"(?P<end>(?P=indent)```\n(?P=indent)<!-- end golden -->)",
    re.S | re.M,
)


class UnknownExample(ValueError):
    """A page names an example :data:`EXAMPLES` does not define."""


def with_outputs(outputs: dict[str, str], page: str, name: str = "page") -> str:
    """``page`` with every golden block replaced by the output it names (indented like its
    markers, so that a block may sit inside an admonition or a list)."""

    def block(match: re.Match[str]) -> str:
        example = EXAMPLES.get(match["name"])
        if example is None:
            raise UnknownExample(f"{name}: no example named {match['name']!r}")
        shown = f"$ {command_line(example)}\n" if example.language == "console" else ""
        indent = match["indent"]
        body = "".join(
            indent + line if line.strip() else line
            for line in (shown + outputs[example.name]).splitlines(keepends=True)
        )
        fence = f"{indent}<!-- golden: {example.name} -->\n{indent}```{example.language}\n"
        return f"{fence}{body}{match['end']}"

    return _MARKER.sub(block, page)


_RELEASE_MARKER = re.compile(
    r"^(?P<indent>[ ]*)<!-- release: (?P<name>[a-z0-9-]+) -->\n"
    r"(?P=indent)```console\n(?P<body>.*?)"
    r"(?P<end>(?P=indent)```\n(?P=indent)<!-- end release -->)",
    re.S | re.M,
)


def with_release_outputs(outputs: dict[str, str], page: str, name: str = "page") -> str:
    """``page`` with every release block replaced by the output it names."""

    def block(match: re.Match[str]) -> str:
        example = RELEASE_EXAMPLES.get(match["name"])
        if example is None:
            raise UnknownExample(f"{name}: no release example named {match['name']!r}")
        indent = match["indent"]
        body = "".join(
            indent + line if line.strip() else line
            for line in (f"$ {command_line(example)}\n" + outputs[example.name]).splitlines(
                keepends=True
            )
        )
        fence = f"{indent}<!-- release: {example.name} -->\n{indent}```console\n"
        return f"{fence}{body}{match['end']}"

    return _RELEASE_MARKER.sub(block, page)


def release_blocks(page: str) -> dict[str, str]:
    """The release blocks of ``page``: name -> the output shown (without the command)."""
    blocks = {}
    for match in _RELEASE_MARKER.finditer(page):
        indent = match["indent"]
        lines = [line.removeprefix(indent) for line in match["body"].splitlines(keepends=True)]
        blocks[match["name"]] = "".join(lines[1:])
    return blocks


def pages() -> list[Path]:
    """The Markdown files that may hold golden blocks (generated pages excepted)."""
    found = [README, *sorted(DOCS.rglob("*.md"))] if DOCS.is_dir() else [README]
    return [p for p in found if GENERATED not in p.parents]


def wanted_files(
    outputs: dict[str, str], releases: dict[str, str] | None = None
) -> dict[Path, str]:
    """Every file this script writes, with the content it should have (the release blocks
    as they are, without ``releases``)."""
    wanted = {
        GOLDEN / f"demo.{example.suffix}": outputs[name]
        for name, example in EXAMPLES.items()
        if example.suffix is not None
    }
    for page in pages():
        text = with_outputs(outputs, page.read_text(encoding="utf-8"), page.name)
        wanted[page] = text if releases is None else with_release_outputs(releases, text, page.name)
    for name, text in all_pages().items():
        wanted[GENERATED / name] = text
    return wanted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if anything is stale")
    parser.add_argument(
        "--network",
        action="store_true",
        help="also run the examples on real releases (fetches their wheels with pip)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        outputs = generate(Path(work))
    wanted = wanted_files(outputs, release_outputs() if args.network else None)
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text("utf-8") != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)}")
        if stale:
            print("run: python scripts/generate_golden_outputs.py")
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
