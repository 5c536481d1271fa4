"""FIFOs, devices, sockets and unreadable files where the auditor expects regular files
(issue 15, item 1): nothing is opened before it is known to be a regular file, and what is
opened cannot block. Every run ends, names the file and the reason, and exits 2."""

from __future__ import annotations

import os
import shutil
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.build import Fixtures
from helpers.hostile import call_bounded, run_cli, snapshot
from helpers.wheel_builder import metadata_text, write_wheel
from torch_abi_audit import inspect_extension, inspect_package
from torch_abi_audit.report import ExtensionReport, PackageReport

TAG = "cp311-abi3-manylinux_2_28_x86_64"


def _install(site: Path, name: str, built: Fixtures) -> None:
    """Distribution ``name`` 1.0, owning one stable library ``name/lib<name>.so``."""
    (site / name).mkdir(parents=True)
    shutil.copyfile(built.stable_plugin, site / name / f"lib{name}.so")
    dist_info = site / f"{name}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(metadata_text(name, "1.0", ["torch>=2.11"]))
    (dist_info / "WHEEL").write_text(f"Wheel-Version: 1.0\nTag: {TAG}\n")
    (dist_info / "RECORD").write_text(f"{name}/lib{name}.so,,\n{name}-1.0.dist-info/RECORD,,\n")


def _site(root: Path, built: Fixtures, names: tuple[str, ...] = ("demo",)) -> Path:
    """A site-packages (its path names no Python version) with a distribution per name, and a
    ``pyvenv.cfg`` above it."""
    site = root / "venv" / "site-packages"
    for name in names:
        _install(site, name, built)
    (root / "venv" / "pyvenv.cfg").write_text("version = 3.11.7\n")
    return site


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _zero_device(path: Path) -> None:
    """``path`` becomes /dev/zero (a character device that never ends), as a device node if
    this process may make one, else as a symbolic link to it."""
    path.unlink(missing_ok=True)
    try:
        os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))
    except PermissionError:
        path.symlink_to("/dev/zero")


@pytest.fixture
def sockets() -> Iterator[Callable[[Path], None]]:
    opened: list[socket.socket] = []

    def make(path: Path) -> None:
        path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.listen()
        opened.append(server)

    yield make
    for server in opened:
        server.close()


SPECIALS = {"fifo": _fifo, "zero-device": _zero_device}

# Where in the site a special file goes: one distribution each.
PLACES = {
    "record": "record-1.0.dist-info/RECORD",
    "meta": "meta-1.0.dist-info/METADATA",
    "wheel": "wheel-1.0.dist-info/WHEEL",
    "lib": "lib/liblib.so",
}


@pytest.mark.parametrize("kind", sorted(SPECIALS))
def test_special_files_in_a_site_packages(kind: str, built: Fixtures, tmp_path: Path) -> None:
    """A RECORD, a METADATA, a WHEEL, a listed library and the pyvenv.cfg above the site are
    special files, each in its own distribution, next to a sound one."""
    site = _site(tmp_path / "tree", built, ("demo", *PLACES))
    for place in PLACES.values():
        SPECIALS[kind](site / place)
    SPECIALS[kind](site.parent / "pyvenv.cfg")  # a hint of the interpreter only: no problem
    before = snapshot(tmp_path / "tree")
    run = run_cli(["--site-packages", str(site), "--all", "-v"], tmp_path / "scratch")
    assert snapshot(tmp_path / "tree") == before
    assert run.code == 2, run.out
    # "unreadable RECORD: not a regular file (a FIFO)", "liblib.so: not a regular file (...)"
    for place in PLACES.values():
        name = Path(place).name
        assert any(f"{name}: not a regular file (a " in line for line in run.lines), run.out
    blocks = {block.split("\n", 1)[0]: block for block in run.out.split("\n\n")}
    assert "Problem" not in blocks.get("Package: demo", "Problem")
    assert "    [STABLE  ] [not-abi3              ] libdemo.so" in blocks["Package: demo"]


@pytest.mark.parametrize("kind", sorted(SPECIALS))
def test_special_wheel_target(kind: str, tmp_path: Path) -> None:
    wheel = tmp_path / "tree" / f"demo-1.0-{TAG}.whl"
    wheel.parent.mkdir()
    SPECIALS[kind](wheel)
    run = run_cli([str(wheel)], tmp_path / "scratch")
    assert run.code == 2
    assert any("not a regular file" in line for line in run.err.splitlines()), run.err


@pytest.mark.parametrize("kind", sorted(SPECIALS))
def test_special_wheel_in_a_directory_of_wheels(kind: str, built: Fixtures, tmp_path: Path) -> None:
    directory = tmp_path / "wheelhouse"
    directory.mkdir()
    write_wheel(
        directory, "good", "1.0", [TAG], {"good/libgood.so": built.stable_plugin.read_bytes()}
    )
    SPECIALS[kind](directory / f"bad-1.0-{TAG}.whl")
    run = run_cli([str(directory)], tmp_path / "scratch")
    assert run.code == 2
    assert "    [STABLE  ] [not-abi3              ] good/libgood.so" in "\n".join(run.lines)
    assert any(f"bad-1.0-{TAG}.whl" in line and "not a regular file" in line for line in run.lines)


def test_special_files_as_targets(
    built: Fixtures, tmp_path: Path, sockets: Callable[[Path], None]
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    _fifo(tree / "libfifo.so")
    _zero_device(tree / "libzero.so")
    sockets(tree / "libsocket.so")
    names = ("libfifo.so", "libzero.so", "libsocket.so")
    run = run_cli([str(tree / name) for name in names], tmp_path / "scratch-files")
    assert run.code == 2
    assert sum("not a regular file" in line for line in run.lines) == 3, run.out
    run = run_cli([str(tree)], tmp_path / "scratch-tree")
    assert run.code == 2
    problems = [line for line in run.lines if line.startswith("  Problem:")]
    assert len(problems) == 3 and all("not a regular file" in p for p in problems)


def _extension(path: str) -> ExtensionReport:
    return inspect_extension(path)


def _package(path: str) -> PackageReport:
    return inspect_package(path)


@pytest.mark.parametrize("name", ["libfifo.so", f"demo-1.0-{TAG}.whl", "plain"])
def test_api_on_a_fifo_returns_an_error_report(name: str, tmp_path: Path) -> None:
    fifo = tmp_path / name
    _fifo(fifo)
    extension = call_bounded(_extension, str(fifo))
    assert extension.error is not None and "not a regular file" in extension.error
    package = call_bounded(_package, str(fifo))
    assert package.has_error
    reasons = [package.error or "", *(p.reason for p in package.problems)]
    assert any("not a regular file" in reason for reason in reasons), reasons


def test_torch_to_predict_against_with_special_files(built: Fixtures, tmp_path: Path) -> None:
    """The environment's torch (its version.py and libraries) is read too."""
    site = _site(tmp_path / "tree", built)
    torch_lib = site / "torch" / "lib"
    torch_lib.mkdir(parents=True)
    shutil.copyfile(built.stable_plugin, torch_lib / "libtorch_cpu.so")
    _fifo(torch_lib / "libc10.so")
    _fifo(site / "torch" / "version.py")
    run = run_cli(["--site-packages", str(site)], tmp_path / "scratch")
    assert run.code == 2  # torch/lib/libc10.so: not a regular file
    fifo_wheel = tmp_path / "tree" / "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    _fifo(fifo_wheel)
    run = run_cli([str(built.stable_plugin), "--torch", str(fifo_wheel)], tmp_path / "scratch2")
    assert run.code == 2
    assert "not a regular file" in run.err


def test_unreadable_files_and_directories(built: Fixtures, tmp_path: Path) -> None:
    """As root too: the child loses the capabilities that let root ignore permissions."""
    import tempfile

    # The pytest temporary root is private to its owner; the child must reach the tree.
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        root.chmod(0o755)
        site = _site(root / "tree", built)
        (site / "demo-1.0.dist-info" / "METADATA").chmod(0)
        locked = site / "locked"
        locked.mkdir()
        shutil.copyfile(built.stable_plugin, locked / "liblocked.so")
        locked.chmod(0)
        secret = site / "demo" / "libsecret.so"
        shutil.copyfile(built.stable_plugin, secret)
        secret.chmod(0)
        try:
            run = run_cli(
                ["--site-packages", str(site), "--all", "-v"],
                root / "scratch",
                honour_permissions=True,
            )
        finally:
            locked.chmod(0o755)
        assert run.code == 2
        blocks = {block.split("\n", 1)[0]: block for block in run.out.split("\n\n")}
        demo = blocks["Package: demo"]
        assert "demo-1.0.dist-info: unreadable METADATA: Permission denied\n" in demo
        assert "libsecret.so  (error: cannot read file: Permission denied)" in demo
        assert "  Problem: permission denied" in blocks["Package: locked"]


def test_python_environment_with_a_fifo_for_pyvenv_cfg(built: Fixtures, tmp_path: Path) -> None:
    """``--python VENV`` reads the environment's ``pyvenv.cfg`` first."""
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "demo").mkdir(parents=True)
    shutil.copyfile(built.stable_plugin, site / "demo" / "libdemo.so")
    _fifo(venv / "pyvenv.cfg")
    run = run_cli(["--python", str(venv), "--all"], tmp_path / "scratch")
    assert run.code == 0, run.err
    assert "  demo " in run.out


def test_an_executable_fifo_named_like_a_program(tmp_path: Path) -> None:
    """Programs are found by name and execute bit, then their first bytes: a FIFO with an
    execute bit and no extension (``bin/tool``) is never opened."""
    tool = tmp_path / "tree" / "pkg" / "bin" / "tool"
    tool.parent.mkdir(parents=True)
    _fifo(tool)
    tool.chmod(0o755)
    run = run_cli([str(tmp_path / "tree" / "pkg")], tmp_path / "scratch")
    assert run.code == 0, run.err
