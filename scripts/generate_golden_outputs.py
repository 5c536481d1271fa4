"""Regenerate the golden outputs of every report format from real runs.

Builds the demo wheels of ``tests/helpers/demo_wheels.py`` (libraries compiled from
``tests/fixtures/src``), runs ``python -m torch_abi_audit`` on them once per format, in the
directory that holds them, and writes each output to ``tests/golden/demo.<format>`` and into
the README between its ``<!-- golden: FORMAT -->`` markers. The only edits made to what the tool
printed: the temporary directory's path becomes ``/work/demo``, and the tool's version
``<version>``, so that the files do not change with the machine or a version bump.

    python scripts/generate_golden_outputs.py           # rewrite tests/golden and the README
    python scripts/generate_golden_outputs.py --check   # exit 1 if they are stale

``tests/test_golden.py`` runs the check.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers.build import build_fixtures  # noqa: E402
from helpers.demo_wheels import build_demo  # noqa: E402
from torch_abi_audit import __version__  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"
README = ROOT / "README.md"
#: Where the demo appears to live in the goldens.
SHOWN_DIRECTORY = "/work/demo"
#: Format -> (file suffix, extra arguments, README code-fence language).
FORMATS = {
    "table": ("txt", ["-v"], "console"),
    "json": ("json", [], "json"),
    "markdown": ("md", [], "markdown"),
    "github": ("github.txt", [], "console"),
    "sarif": ("sarif", [], "json"),
}


def command(fmt: str) -> list[str]:
    """The command line each golden output comes from (as the README shows it)."""
    _, extra, _ = FORMATS[fmt]
    wheels = [
        "portpkg-1.0-cp311-abi3-manylinux_2_28_x86_64.whl",
        "stablepkg-2.0-cp311-abi3-manylinux_2_28_x86_64.whl",
    ]
    return [*wheels, "--check", "all", "--format", fmt, *extra]


_TOKEN = re.compile(r"torch-abi-audit-[0-9a-f]{32}")


def _normalised(text: str, directory: Path) -> str:
    text = text.replace(directory.as_uri(), Path(SHOWN_DIRECTORY).as_uri())
    text = text.replace(str(directory), SHOWN_DIRECTORY).replace(__version__, "<version>")
    # The github format's stop-commands token is a hash of the table, paths included.
    return _TOKEN.sub("torch-abi-audit-<token>", text)


def generate(work: Path) -> dict[str, str]:
    """Every format's output for the demo wheels built under ``work``."""
    demo = work / "demo"
    build_demo(demo, build_fixtures(work / "compiled"))
    outputs = {}
    for fmt in FORMATS:
        # --format json/sarif are indented on a terminal only: write them as a pipe gets them,
        # then indent them here (the goldens are read by people).
        completed = subprocess.run(
            [sys.executable, "-m", "torch_abi_audit", *command(fmt)],
            cwd=demo,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 1:  # the demo fails its gates, by design
            raise RuntimeError(f"{fmt}: exit {completed.returncode}: {completed.stderr}")
        text = completed.stdout
        if fmt in ("json", "sarif"):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
        outputs[fmt] = _normalised(text, demo)
    return outputs


_MARKER = re.compile(
    r"(<!-- golden: (?P<fmt>[a-z]+) -->\n```(?P<lang>\w+)\n)"
    r"(?P<body>.*?)(```\n<!-- end golden -->)",
    re.S,
)


def readme_with(outputs: dict[str, str], readme: str) -> str:
    """The README with every golden block replaced by the output it names."""

    def block(match: re.Match[str]) -> str:
        fmt = match["fmt"]
        shown = (
            f"$ torch-abi-audit {' '.join(command(fmt))}\n" if FORMATS[fmt][2] == "console" else ""
        )
        return f"{match.group(1)}{shown}{outputs[fmt]}{match.group(5)}"

    return _MARKER.sub(block, readme)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the goldens are stale")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        outputs = generate(Path(work))
    readme = README.read_text(encoding="utf-8")
    wanted = {GOLDEN / f"demo.{FORMATS[fmt][0]}": text for fmt, text in outputs.items()}
    wanted[README] = readme_with(outputs, readme)
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text("utf-8") != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)}")
        if stale:
            print("run: python scripts/generate_golden_outputs.py")
        return 1 if stale else 0
    GOLDEN.mkdir(exist_ok=True)
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
