#!/usr/bin/env python3
"""Time torch-abi-audit against its predecessor (torch-abi-audit 0.3.0) in the same run, on an
environment and on a directory.

The environment is a venv with torch 2.13.0 (a CPU build) and about fifteen compiled packages,
built once in ``~/.cache/torch-abi-audit/bench``; so is the predecessor's venv. Contenders:

- the environment's site-packages directory, ``--site-packages SITE --all --json``: ours
  without load prediction (the predecessor's job; target: at least 30x faster than the
  predecessor), ours predicting loads on the environment's torch (the default; target: at most
  1.5x the scan without it), the predecessor;
- the same scan with every library's report made beforehand (``libraries_for_free.py``): the
  floor, what the scan would cost if reading and judging its libraries cost nothing
  (informational: the most any speed-up of the per-library work could give);
- one package directory given as a TARGET, ``SITE/torch --json`` (informational: the
  predecessor's package-directory mode looks at far less, see benchmarks/README.md).

    python benchmarks/bench_env.py                 # 5 rounds
    python benchmarks/bench_env.py --quick --json-out env.json
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    Contender,
    Target,
    ensure_venv,
    finish,
    install_checkout,
    measure,
    parser,
    report,
    run,
    setup_step,
    site_packages,
    venv_bin,
)

BENCH_REQUIREMENTS: tuple[str, ...] = (
    "torch==2.13.0",  # first, and pinned, so pip never resolves a CUDA build for a dependency
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "matplotlib",
    "pillow",
    "opencv-python-headless",
    "pyarrow",
    "grpcio",
    "lxml",
    "cryptography",
    "pydantic",
    "orjson",
    "psutil",
    "lief",
)
PREDECESSOR = "torch-abi-audit==0.3.0"
SPEED_TARGET = 30.0
LOAD_OVERHEAD_TARGET = 1.5


def main() -> int:
    """Set up, measure, print; the exit code."""
    args = parser(__doc__.split("\n\n")[0], rounds=5).parse_args()
    rounds = 1 if args.quick else args.rounds
    site = site_packages(ensure_venv(args.bench_dir / "env", BENCH_REQUIREMENTS, args.venv_python))
    predecessor_env = ensure_venv(args.bench_dir / "predecessor", [PREDECESSOR], args.venv_python)
    predecessor = str(venv_bin(predecessor_env, "torch-abi-audit"))
    ours = str(install_checkout(args.bench_dir / "ours", args.venv_python))
    scan = ["--site-packages", str(site), "--all", "--json"]
    # The floor: every library's report made now (untimed), looked up in the timed runs.
    ours_python = str(venv_bin(args.bench_dir / "ours", "python"))
    for_free = [ours_python, str(Path(__file__).with_name("libraries_for_free.py"))]
    reports = str(args.bench_dir / "libraries-for-free.pickle")
    setup_step([*for_free, "--collect", reports, "--", *scan, "--no-load-prediction"])
    torch_dir = str(site / "torch")
    env_bare = Contender("ours env --no-load-prediction", [ours, *scan, "--no-load-prediction"])
    env_loads = Contender("ours env", [ours, *scan])
    env_theirs = Contender("0.3.0 env", [predecessor, *scan])
    env_floor = Contender(
        "ours env, libraries for free", [*for_free, reports, "--", *scan, "--no-load-prediction"]
    )
    dir_ours = Contender("ours torch/", [ours, torch_dir, "--json", "--no-load-prediction"])
    dir_theirs = Contender("0.3.0 torch/", [predecessor, torch_dir, "--json"])
    contenders = [env_bare, env_loads, env_theirs, env_floor, dir_ours, dir_theirs]
    measure(contenders, rounds)
    checks = [
        Target("site-packages, 0.3.0 / ours (same job)", env_theirs, env_bare, SPEED_TARGET),
        Target("site-packages, 0.3.0 / ours predicting loads", env_theirs, env_loads),
        Target("site-packages, 0.3.0 / ours, libraries for free (floor)", env_theirs, env_floor),
        Target(
            "load prediction, ours / ours without",
            env_loads,
            env_bare,
            at_most=LOAD_OVERHEAD_TARGET,
        ),
        Target("torch package directory, 0.3.0 / ours", dir_theirs, dir_ours),
    ]
    title = f"{site} ({rounds} rounds after a warm-up, order alternating)"
    print(report(title, contenders, checks))
    return finish(args, contenders, checks)


if __name__ == "__main__":
    run(main)
