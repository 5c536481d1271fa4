#!/usr/bin/env python3
"""Time torch-abi-audit on wheels, read in place, against what people use today, in one run.

- ``abi3``: ``torch-abi-audit WHEEL --json`` against ``abi3audit WHEEL --report`` (0.0.26) on a
  large abi3 wheel (vllm 0.34.0, 239 MB, 480 MB unpacked; target: ours at least 20x faster)
  and on the abi3 wheels of the parity test (torchao 0.18.0; cryptography 50.0.2 manylinux and
  win_amd64, 48.0.1 universal2), which are informational.
- ``torch``: ``torch-abi-audit WHEEL --json`` against ``unzip -p WHEEL`` (decompressing every
  member, the least any tool that unpacks the wheel pays) on the torch 2.14.1 CUDA wheel
  (manylinux x86_64, 555 MB; targets: ours at least 8x faster, peak RSS at most 150 MB).

Wheels come from the project's downloader and cache; abi3audit from a venv in
``~/.cache/torch-abi-audit/bench``. Ours is this checkout, installed into a venv of its own.

    python benchmarks/bench_wheels.py                 # both, 3 rounds
    python benchmarks/bench_wheels.py --only torch --quick
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BenchError,
    Contender,
    Limit,
    Target,
    ensure_venv,
    finish,
    install_checkout,
    measure,
    parser,
    report,
    run,
    venv_bin,
)
from torch_abi_audit.sources.index import DownloadError, fetch_wheel

LINUX = "manylinux_2_28_x86_64"
LARGE_ABI3 = ("vllm", "0.34.0", LINUX)
SMALL_ABI3 = (
    ("torchao", "0.18.0", LINUX),
    ("cryptography", "50.0.2", LINUX),
    ("cryptography", "48.0.1", "macosx_10_9_universal2"),
    ("cryptography", "50.0.2", "win_amd64"),
)
TORCH = ("torch", "2.14.1", LINUX)
ABI3AUDIT = "abi3audit==0.0.26"
LARGE_TARGET = 20.0
UNZIP_TARGET = 8.0
RSS_LIMIT_MB = 150.0


def wheel(name: str, version: str, platform: str) -> Path:
    """A wheel from the project's cache, fetched with pip if missing."""
    try:
        return fetch_wheel(name, version, platforms=(platform,), python_version="3.11")
    except DownloadError as exc:
        raise BenchError(str(exc)) from exc


def abi3(ours: Path, args: argparse.Namespace) -> tuple[list[Contender], list[Target]]:
    """Ours against abi3audit, wheel by wheel."""
    env = ensure_venv(args.bench_dir / "abi3audit-0.0.26", [ABI3AUDIT], args.venv_python)
    theirs = venv_bin(env, "abi3audit")
    contenders: list[Contender] = []
    targets: list[Target] = []
    for spec in (LARGE_ABI3, *SMALL_ABI3):
        path = wheel(*spec)
        label = f"{spec[0]} {spec[1]} {spec[2]}"
        mine = Contender(f"ours {spec[0]}", [str(ours), str(path), "--json"])
        other = Contender(f"abi3audit {spec[0]}", [str(theirs), str(path), "--report"])
        contenders += [mine, other]
        size = f"{path.stat().st_size / 1e6:.0f} MB"
        target = LARGE_TARGET if spec == LARGE_ABI3 else None
        targets.append(Target(f"{label} ({size}), abi3audit / ours", other, mine, target))
    return contenders, targets


def torch(ours: Path) -> tuple[list[Contender], list[Target | Limit]]:
    """Ours against ``unzip -p`` on the torch CUDA wheel."""
    unzip = shutil.which("unzip")
    if unzip is None:
        raise BenchError("unzip is not installed (apt-get install unzip)")
    path = wheel(*TORCH)
    mine = Contender("ours torch", [str(ours), str(path), "--json"])
    other = Contender("unzip -p torch", [unzip, "-p", str(path)])
    label = f"torch 2.14.1 CUDA wheel ({path.stat().st_size / 1e6:.0f} MB), unzip -p / ours"
    return [mine, other], [Target(label, other, mine, UNZIP_TARGET), Limit(mine, RSS_LIMIT_MB)]


def main() -> int:
    """Set up, measure, print; the exit code."""
    options = parser(__doc__.split("\n\n")[0], rounds=3)
    options.add_argument("--only", choices=["abi3", "torch"], help="run one comparison")
    args = options.parse_args()
    rounds = 1 if args.quick else args.rounds
    ours = install_checkout(args.bench_dir / "ours", args.venv_python)
    contenders: list[Contender] = []
    checks: list[Target | Limit] = []
    if args.only in (None, "abi3"):
        mine, targets = abi3(ours, args)
        contenders += mine
        checks += targets
    if args.only in (None, "torch"):
        mine, limits = torch(ours)
        contenders += mine
        checks += limits
    measure(contenders, rounds)
    title = f"Wheels read in place ({rounds} rounds after a warm-up, order alternating)"
    print(report(title, contenders, checks))
    return finish(args, contenders, checks)


if __name__ == "__main__":
    run(main)
