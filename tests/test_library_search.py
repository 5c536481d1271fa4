"""Predicting where the dynamic loader finds each needed library, checked against real builds.

ELF fixtures are compiled here with the system ``cc`` (RUNPATH vs RPATH, ``$ORIGIN``, sibling
and ``*.libs`` directories, missing dependencies); where the prediction says "missing" the real
loader is asked too, in a child process (so nothing is loaded into the test run), and its error
must be the predicted one word for word. Mach-O and PE use ``Library`` objects in wheel layouts.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from helpers.build import compiler
from torch_abi_audit.library_search import (
    FileSystemNamespace,
    LoadContext,
    LoadVia,
    Resolution,
    WheelNamespace,
    is_cuda_runtime,
    resolve_needed,
    site_packages_context,
    system_library_dirs,
)
from torch_abi_audit.model import BinaryFormat, Library
from torch_abi_audit.readers import read_library

ELF_MISSING = "{}: cannot open shared object file: No such file or directory"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF fixtures")


def _shared(output: Path, *flags: str, soname: str | None = None) -> Path:
    """Compile a one-function shared library at ``output`` (``flags`` go after the source)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    source = output.parent / f"{output.name}.c"
    symbol = "".join(c if c.isalnum() else "_" for c in output.name)
    source.write_text(f"int {symbol}_value(void) {{ return 1; }}\n")
    command = [compiler("c"), "-shared", "-fPIC", "-o", str(output), str(source)]
    if soname:
        command.append(f"-Wl,-soname,{soname}")
    command += ["-Wl,--no-as-needed", *flags]
    subprocess.run(command, check=True, capture_output=True, text=True)
    source.unlink()
    return output


def _loader_error(*paths: Path) -> str | None:
    """What the real loader says when a child process dlopens ``paths`` in turn (None: fine)."""
    script = (
        "import ctypes, sys\n"
        "try:\n"
        "    for p in sys.argv[1:]:\n"
        "        ctypes.CDLL(p, mode=ctypes.RTLD_GLOBAL)\n"
        "except OSError as e:\n"
        "    print(e, end='')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},  # no LD_LIBRARY_PATH: the prediction ignores it too
    ).stdout
    return out or None


def _at(path: Path) -> PurePosixPath:
    return PurePosixPath(path.as_posix())


def _fs_context(**changes: object) -> LoadContext:
    context = LoadContext(
        format=BinaryFormat.ELF,
        preloaded=frozenset(),
        extra_dirs=(),
        system_dirs=system_library_dirs(),
        namespace=FileSystemNamespace(),
    )
    return dataclasses.replace(context, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# ELF: RUNPATH / RPATH with $ORIGIN, sibling dir, *.libs, missing


@dataclasses.dataclass(frozen=True)
class Tree:
    root: Path
    sibling: Path  # lib/libsib.so
    vendored: Path  # pkg.libs/libvend-1a2b3c4d.so
    runpath_ext: Path  # pkg/ext_runpath.so (--enable-new-dtags)
    rpath_ext: Path  # pkg/ext_rpath.so (--disable-new-dtags)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    root = tmp_path_factory.mktemp("search")
    sibling = _shared(root / "lib" / "libsib.so", soname="libsib.so")
    vendored = _shared(root / "pkg.libs" / "libvend-1a2b3c4d.so", soname="libvend-1a2b3c4d.so")
    gone = _shared(root / "scratch" / "libgone.so", soname="libgone.so")
    links = [
        f"-L{sibling.parent}",
        "-lsib",
        f"-L{vendored.parent}",
        "-l:libvend-1a2b3c4d.so",
        f"-L{gone.parent}",
        "-lgone",
        "-Wl,-rpath,$ORIGIN/../lib:$ORIGIN/../pkg.libs",
    ]
    runpath_ext = _shared(root / "pkg" / "ext_runpath.so", *links, "-Wl,--enable-new-dtags")
    rpath_ext = _shared(root / "pkg" / "ext_rpath.so", *links, "-Wl,--disable-new-dtags")
    shutil.rmtree(gone.parent)  # linked against, then gone: the loader cannot find it
    return Tree(root, sibling, vendored, runpath_ext, rpath_ext)


def test_runpath_origin_sibling_libs_and_missing(tree: Tree) -> None:
    library = read_library(tree.runpath_ext)
    assert library.runpath == ("$ORIGIN/../lib", "$ORIGIN/../pkg.libs")
    assert library.rpath == ()
    sib, vend, gone = resolve_needed(
        library, _at(tree.runpath_ext), _fs_context(), only=lambda n: n != "libc.so.6"
    )
    assert sib == Resolution(
        needed="libsib.so",
        found=_at(tree.sibling),
        how=LoadVia.RUNPATH,
        format=BinaryFormat.ELF,
        entry="$ORIGIN/../lib",
        tried=(_at(tree.sibling),),
    )
    assert (vend.found, vend.how, vend.entry) == (
        _at(tree.vendored),
        LoadVia.RUNPATH,
        "$ORIGIN/../pkg.libs",
    )
    assert vend.tried == (_at(tree.root / "lib" / vend.needed), _at(tree.vendored))
    assert not sib.missing and not vend.missing
    assert gone.missing and gone.found is None and gone.how is LoadVia.MISSING
    assert gone.tried[:2] == (
        _at(tree.root / "lib" / "libgone.so"),
        _at(tree.root / "pkg.libs" / "libgone.so"),
    )
    message = gone.error_message(str(tree.runpath_ext))
    assert message == "libgone.so: cannot open shared object file: No such file or directory"
    # The real loader agrees, word for word.
    assert _loader_error(tree.runpath_ext) == message


def test_rpath_is_searched_when_there_is_no_runpath(tree: Tree) -> None:
    library = read_library(tree.rpath_ext)
    assert library.rpath == ("$ORIGIN/../lib", "$ORIGIN/../pkg.libs")
    assert library.runpath == ()
    resolutions = resolve_needed(library, _at(tree.rpath_ext), _fs_context())
    assert [(r.needed, r.how) for r in resolutions] == [
        ("libsib.so", LoadVia.RPATH),
        ("libvend-1a2b3c4d.so", LoadVia.RPATH),
        ("libgone.so", LoadVia.MISSING),
        ("libc.so.6", LoadVia.SYSTEM_PATH),
    ]
    libc = resolutions[-1]
    assert libc.found is not None and libc.found.name == "libc.so.6"
    assert libc.entry is not None and libc.found.parent == PurePosixPath(libc.entry)
    assert _loader_error(tree.rpath_ext) == ELF_MISSING.format("libgone.so")


def test_rpath_is_ignored_when_runpath_is_present(tree: Tree) -> None:
    # ld.so(8): DT_RPATH only if there is no DT_RUNPATH. Only the RPATH reaches pkg.libs here.
    library = dataclasses.replace(
        read_library(tree.runpath_ext), rpath=("$ORIGIN/../pkg.libs",), runpath=("$ORIGIN/../lib",)
    )
    sib, vend, _gone, _libc = resolve_needed(library, _at(tree.runpath_ext), _fs_context())
    assert sib.how is LoadVia.RUNPATH
    assert vend.missing and vend.tried[0] == _at(tree.root / "lib" / "libvend-1a2b3c4d.so")


def test_preloaded_soname_wins_over_the_search_path(tree: Tree) -> None:
    library = read_library(tree.rpath_ext)
    context = _fs_context(preloaded=frozenset({"libgone.so", "libsib.so"}))
    sib, vend, gone, _libc = resolve_needed(library, _at(tree.rpath_ext), context)
    assert (sib.how, sib.found, gone.how, gone.found) == (
        LoadVia.PRELOADED,
        None,
        LoadVia.PRELOADED,
        None,
    )
    assert vend.how is LoadVia.RPATH
    # The real loader: once a library with soname libgone.so is loaded, the extension loads.
    stand_in = _shared(tree.root / "stand_in" / "whatever.so", soname="libgone.so")
    assert _loader_error(tree.rpath_ext) is not None
    assert _loader_error(stand_in, tree.rpath_ext) is None


def test_needed_path_with_a_slash(tmp_path: Path) -> None:
    # Linking a library that has no soname by its path records that path in DT_NEEDED.
    dep = _shared(tmp_path / "deps" / "libbypath.so")
    ext = _shared(tmp_path / "ext.so", str(dep))
    library = read_library(ext)
    assert str(dep) in library.needed
    (found,) = resolve_needed(library, _at(ext), _fs_context(), only=lambda n: "/" in n)
    assert (found.found, found.how) == (_at(dep), LoadVia.PATH)
    dep.unlink()
    (gone,) = resolve_needed(library, _at(ext), _fs_context(), only=lambda n: "/" in n)
    assert gone.missing and gone.tried == (_at(dep),)
    assert gone.error_message("ext.so") == ELF_MISSING.format(dep)
    assert _loader_error(ext) == ELF_MISSING.format(dep)
    # A relative path is opened from the working directory, which nobody can predict.
    relative = dataclasses.replace(library, needed=("sub/libx.so",))
    (unknown,) = resolve_needed(relative, _at(ext), _fs_context())
    assert (unknown.how, unknown.missing, unknown.found) == (LoadVia.UNKNOWN, False, None)


def test_dynamic_string_tokens_and_empty_entries(tmp_path: Path) -> None:
    lib_dir = tmp_path / "lib" / "x86_64-linux-gnu"
    _shared(lib_dir / "libviaLIB.so")
    _shared(tmp_path / "pkg" / "x86_64" / "libviaPLATFORM.so")
    _shared(tmp_path / "lib" / "libbraces.so")
    library = Library(
        path=tmp_path / "pkg" / "ext.so",
        format=BinaryFormat.ELF,
        machine="x86_64",
        bits=64,
        byte_order="little",
        needed=("libviaLIB.so", "libviaPLATFORM.so", "libbraces.so", "libnowhere.so"),
        runpath=(
            "",  # empty: the working directory, unknown: skipped
            f"{tmp_path}/$LIB",
            "relative/dir:$ORIGIN/$PLATFORM",  # ':'-joined entries are split
            "$ORIGINAL/x",  # not a token: relative to the working directory, skipped
            "${ORIGIN}/../lib",
        ),
    )
    via_lib, via_platform, braces, nowhere = resolve_needed(
        library, _at(library.path), _fs_context(system_dirs=())
    )
    assert (via_lib.found, via_lib.entry) == (_at(lib_dir / "libviaLIB.so"), f"{tmp_path}/$LIB")
    # $LIB: lib64 first (upstream glibc), then Debian's lib/<multiarch>.
    assert via_lib.tried == (
        _at(tmp_path / "lib64" / "libviaLIB.so"),
        _at(lib_dir / "libviaLIB.so"),
    )
    assert via_platform.found == _at(tmp_path / "pkg" / "x86_64" / "libviaPLATFORM.so")
    assert via_platform.entry == "$ORIGIN/$PLATFORM"
    assert braces.found == _at(tmp_path / "lib" / "libbraces.so")
    assert nowhere.missing
    assert all(p.is_absolute() for p in nowhere.tried)
    assert len(nowhere.tried) == 4  # lib64, lib/x86_64-linux-gnu, $PLATFORM, ${ORIGIN}/../lib
    # $PLATFORM on a machine without a known AT_PLATFORM string drops the entry.
    odd = dataclasses.replace(library, machine="sparc64", needed=("libviaPLATFORM.so",))
    (dropped,) = resolve_needed(odd, _at(library.path), _fs_context(system_dirs=()))
    assert dropped.missing
    assert _at(tmp_path / "pkg" / "x86_64" / "libviaPLATFORM.so") not in dropped.tried


def test_a_known_system_is_not_assumed_to_have_the_baseline(tmp_path: Path) -> None:
    system = tmp_path / "usr" / "lib"
    _shared(system / "libGL.so.1")
    library = Library(
        path=tmp_path / "ext.so",
        format=BinaryFormat.ELF,
        machine="x86_64",
        bits=64,
        byte_order="little",
        needed=("libGL.so.1", "libX11.so.6"),
    )
    context = _fs_context(system_dirs=(_at(system),))
    gl, x11 = resolve_needed(library, _at(library.path), context)
    assert (gl.how, gl.found, gl.entry) == (
        LoadVia.SYSTEM_PATH,
        _at(system / "libGL.so.1"),
        str(system),
    )
    assert x11.missing  # this system has a library directory, and no libX11 in it
    unknown = _fs_context(system_dirs=(_at(tmp_path / "absent"),))
    assert resolve_needed(library, _at(library.path), unknown)[1].how is LoadVia.SYSTEM


# ---------------------------------------------------------------------------------------------
# A fake site-packages: CPU torch, CUDA torch, nvidia wheels


@dataclasses.dataclass(frozen=True)
class Site:
    site: Path
    torch: Path
    cudart: Path
    cpu_ext: Path  # needs libtorch_cpu.so, libc10.so, libcudart.so.12; no RUNPATH
    cuda_ext: Path  # needs libc10.so, libtorch_cuda.so, libc10_cuda.so, libcudart.so.12
    runpath_ext: Path  # needs libcudart.so.12, RUNPATH $ORIGIN/../nvidia/cuda_runtime/lib


def _make_site(root: Path, *, cuda_torch: bool) -> Site:
    site = root / "site-packages"
    torch_lib = site / "torch" / "lib"
    for name in ("libtorch_cpu.so", "libc10.so"):
        _shared(torch_lib / name, soname=name)
    cuda_lib = root / "cuda-build"  # where the CUDA build's torch libraries were at link time
    for name in ("libtorch_cuda.so", "libc10_cuda.so"):
        _shared((torch_lib if cuda_torch else cuda_lib) / name, soname=name)
    nvidia = site / "nvidia" / "cuda_runtime" / "lib"
    cudart = _shared(nvidia / "libcudart.so.12", soname="libcudart.so.12")
    common = [f"-L{torch_lib}", f"-L{cuda_lib}", f"-L{nvidia}"]
    cpu_ext = _shared(
        site / "cpu_ext" / "_C.so", *common, "-ltorch_cpu", "-lc10", "-l:libcudart.so.12"
    )
    cuda_ext = _shared(
        site / "cuda_ext" / "_C.so",
        *common,
        "-lc10",
        "-ltorch_cuda",
        "-lc10_cuda",
        "-l:libcudart.so.12",
    )
    runpath_ext = _shared(
        site / "rp_ext" / "_C.so",
        *common,
        "-l:libcudart.so.12",
        "-Wl,-rpath,$ORIGIN/../nvidia/cuda_runtime/lib",
        "-Wl,--enable-new-dtags",
    )
    if not cuda_torch:
        shutil.rmtree(cuda_lib)
    return Site(site, site / "torch", cudart, cpu_ext, cuda_ext, runpath_ext)


@pytest.fixture(scope="module")
def cpu_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return _make_site(tmp_path_factory.mktemp("cpu"), cuda_torch=False)


@pytest.fixture(scope="module")
def cuda_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return _make_site(tmp_path_factory.mktemp("cuda"), cuda_torch=True)


def _torch_or_cuda(name: str) -> bool:
    return name.startswith(("libtorch", "libc10")) or is_cuda_runtime(name)


def _site_context(site: Site) -> LoadContext:
    context = site_packages_context(site.site, site.torch, BinaryFormat.ELF)
    # The machine's own CUDA toolkit must not change the answer.
    return dataclasses.replace(context, system_dirs=())


def test_site_context_for_a_cpu_torch(cpu_site: Site) -> None:
    context = site_packages_context(cpu_site.site, cpu_site.torch, BinaryFormat.ELF)
    assert context.preloaded == {"libtorch_cpu.so", "libc10.so"}
    assert context.extra_dirs == (
        _at(cpu_site.torch / "lib"),
        _at(cpu_site.site / "nvidia" / "cuda_runtime" / "lib"),
    )
    assert context.system_dirs == system_library_dirs()
    assert isinstance(context.namespace, FileSystemNamespace)
    assert site_packages_context(cpu_site.site, None, BinaryFormat.ELF).preloaded == frozenset()
    assert site_packages_context(cpu_site.site, cpu_site.torch, BinaryFormat.PE).system_dirs == ()


def test_cuda_extension_next_to_cpu_torch(cpu_site: Site) -> None:
    library = read_library(cpu_site.cuda_ext)
    resolutions = resolve_needed(
        library, _at(cpu_site.cuda_ext), _site_context(cpu_site), only=_torch_or_cuda
    )
    assert [(r.needed, r.how) for r in resolutions] == [
        ("libc10.so", LoadVia.PRELOADED),
        ("libtorch_cuda.so", LoadVia.MISSING),
        ("libc10_cuda.so", LoadVia.MISSING),
        # A CPU-only torch never loads libcudart, and nothing puts nvidia/*/lib on the path.
        ("libcudart.so.12", LoadVia.MISSING),
    ]
    first = next(r for r in resolutions if r.missing)
    expected = "libtorch_cuda.so: cannot open shared object file: No such file or directory"
    assert first.error_message("_C.so") == expected
    # The real loader, with torch's libraries loaded first, stops at the same place.
    torch_lib = cpu_site.torch / "lib"
    preload = [torch_lib / "libc10.so", torch_lib / "libtorch_cpu.so"]
    assert _loader_error(*preload, cpu_site.cuda_ext) == expected


def test_cpu_extension_next_to_cpu_torch(cpu_site: Site) -> None:
    library = read_library(cpu_site.cpu_ext)
    torch_cpu, c10, cudart = resolve_needed(
        library, _at(cpu_site.cpu_ext), _site_context(cpu_site), only=_torch_or_cuda
    )
    assert (torch_cpu.how, c10.how) == (LoadVia.PRELOADED, LoadVia.PRELOADED)
    assert cudart.missing
    assert cudart.error_message("_C") == ELF_MISSING.format("libcudart.so.12")
    # A RUNPATH into the nvidia wheel finds it.
    rp = read_library(cpu_site.runpath_ext)
    (found,) = resolve_needed(
        rp, _at(cpu_site.runpath_ext), _site_context(cpu_site), only=is_cuda_runtime
    )
    assert (found.found, found.how) == (_at(cpu_site.cudart), LoadVia.RUNPATH)
    assert found.entry == "$ORIGIN/../nvidia/cuda_runtime/lib"
    assert _loader_error(cpu_site.runpath_ext) is None


def test_extensions_next_to_cuda_torch(cuda_site: Site) -> None:
    context = _site_context(cuda_site)
    assert context.preloaded == {
        "libtorch_cpu.so",
        "libc10.so",
        "libtorch_cuda.so",
        "libc10_cuda.so",
        "libcudart.so.12",  # a CUDA torch links the nvidia wheels' libraries
    }
    for ext in (cuda_site.cpu_ext, cuda_site.cuda_ext):
        resolutions = resolve_needed(read_library(ext), _at(ext), context, only=_torch_or_cuda)
        assert resolutions
        assert all(r.how is LoadVia.PRELOADED for r in resolutions)


# ---------------------------------------------------------------------------------------------
# Wheels: ELF, Mach-O, PE


def test_elf_extension_inside_a_wheel(tree: Tree) -> None:
    wheel = WheelNamespace(
        [
            "pkg/ext_runpath.so",
            "pkg.libs/libvend-1a2b3c4d.so",
            "pkg-1.0.dist-info/RECORD",
            "pkg-1.0.data/platlib/lib/libsib.so",  # installed into site-packages/lib
        ]
    )
    assert wheel.exists(PurePosixPath("lib/libsib.so"))
    assert wheel.exists(PurePosixPath("pkg/../pkg.libs"))
    assert list(wheel.listdir(PurePosixPath("."))) == [
        "lib",
        "pkg",
        "pkg-1.0.dist-info",
        "pkg.libs",
    ]
    context = LoadContext(BinaryFormat.ELF, frozenset(), (), (), wheel)
    location = wheel.path("pkg/ext_runpath.so")
    assert location == PurePosixPath("pkg/ext_runpath.so")
    sib, vend, gone, libc = resolve_needed(read_library(tree.runpath_ext), location, context)
    assert (sib.found, sib.entry) == (PurePosixPath("lib/libsib.so"), "$ORIGIN/../lib")
    assert (vend.found, vend.entry) == (
        PurePosixPath("pkg.libs/libvend-1a2b3c4d.so"),
        "$ORIGIN/../pkg.libs",
    )
    assert gone.missing
    assert gone.tried == (PurePosixPath("lib/libgone.so"), PurePosixPath("pkg.libs/libgone.so"))
    # With no system to look at, the manylinux baseline is assumed present, also when the
    # context names the host's system directories (they are not in the wheel).
    assert (libc.how, libc.found) == (LoadVia.SYSTEM, None)
    host_dirs = dataclasses.replace(context, system_dirs=system_library_dirs())
    *_, libc_again = resolve_needed(read_library(tree.runpath_ext), location, host_dirs)
    assert (libc_again.how, libc_again.found) == (LoadVia.SYSTEM, None)
    assert libc_again.tried[-1] == system_library_dirs()[-1] / "libc.so.6"


def test_origin_cannot_escape_the_wheel() -> None:
    wheel = WheelNamespace(["pkg/sub/_C.so", "outside/libx.so"], prefix=PurePosixPath("site"))
    library = Library(
        path=Path("_C.so"),
        format=BinaryFormat.ELF,
        machine="x86_64",
        bits=64,
        byte_order="little",
        needed=("libx.so",),
        runpath=("$ORIGIN/../../../outside", "$ORIGIN/../../outside"),
    )
    (libx,) = resolve_needed(
        library,
        wheel.path("pkg/sub/_C.so"),
        LoadContext(BinaryFormat.ELF, frozenset(), (), (), wheel),
    )
    assert libx.tried[0] == PurePosixPath("outside/libx.so")  # above the site root: nowhere
    assert libx.found == PurePosixPath("site/outside/libx.so")
    assert libx.entry == "$ORIGIN/../../outside"


def _macho(needed: tuple[str, ...], rpath: tuple[str, ...]) -> Library:
    return Library(
        path=Path("torchaudio/lib/libtorchaudio.so"),
        format=BinaryFormat.MACHO,
        machine="arm64",
        bits=64,
        byte_order="little",
        needed=needed,
        rpath=rpath,
    )


MACOS_WHEEL = WheelNamespace(
    [
        "torchaudio/lib/libtorchaudio.so",
        "torchaudio/lib/libtorchaudio_sox.so",
        "torchaudio/.dylibs/libc++.1.0.dylib",
        "torchaudio/__init__.py",
    ]
)
MACOS_AFTER_TORCH = LoadContext(
    format=BinaryFormat.MACHO,
    preloaded=frozenset({"libc10.dylib", "libtorch_cpu.dylib", "libomp.dylib"}),
    extra_dirs=(),
    system_dirs=(),
    namespace=MACOS_WHEEL,
)


def test_macho_torchaudio_layout() -> None:
    library = _macho(
        needed=(
            "@rpath/libc10.dylib",
            "@rpath/libtorchaudio_sox.so",
            "@loader_path/../.dylibs/libc++.1.0.dylib",
            "/usr/lib/libSystem.B.dylib",
            "/System/Library/Frameworks/Accelerate.framework/Versions/A/Accelerate",
            "@rpath/libtorch_cuda.dylib",
        ),
        rpath=("@executable_path/../lib", "@loader_path", "@loader_path/../../torch/lib"),
    )
    location = MACOS_WHEEL.path("torchaudio/lib/libtorchaudio.so")
    c10, sox, cxx, system, framework, cuda = resolve_needed(library, location, MACOS_AFTER_TORCH)
    assert (c10.how, c10.found) == (LoadVia.PRELOADED, None)
    assert (sox.how, sox.found, sox.entry) == (
        LoadVia.RPATH,
        PurePosixPath("torchaudio/lib/libtorchaudio_sox.so"),
        "@loader_path",
    )
    assert (cxx.how, cxx.found) == (
        LoadVia.LOADER_PATH,
        PurePosixPath("torchaudio/.dylibs/libc++.1.0.dylib"),
    )
    assert (system.how, system.found, framework.how) == (LoadVia.SYSTEM, None, LoadVia.SYSTEM)
    assert cuda.missing
    assert cuda.tried == (
        PurePosixPath("torchaudio/lib/libtorch_cuda.dylib"),
        PurePosixPath("torch/lib/libtorch_cuda.dylib"),
    )
    assert cuda.error_message("/site/torchaudio/lib/libtorchaudio.so") == (
        "Library not loaded: @rpath/libtorch_cuda.dylib\n"
        "  Referenced from: /site/torchaudio/lib/libtorchaudio.so\n"
        "  Reason: tried: 'torchaudio/lib/libtorch_cuda.dylib' (no such file), "
        "'torch/lib/libtorch_cuda.dylib' (no such file)"
    )


def test_macho_without_rpaths_and_other_spellings() -> None:
    library = _macho(
        needed=(
            "@rpath/libsox.dylib",
            "/opt/homebrew/opt/libomp/lib/libomp.dylib",
            "@executable_path/../lib/libpython3.12.dylib",
            "libomp.dylib",
            "libfoo.dylib",
            "@loader_path/libgone.dylib",
        ),
        rpath=(),
    )
    sox, homebrew, executable, leaf_loaded, leaf, gone = resolve_needed(
        library, PurePosixPath("torchaudio/lib/libtorchaudio.so"), MACOS_AFTER_TORCH
    )
    assert sox.error_message("x.so") == (
        "Library not loaded: @rpath/libsox.dylib\n"
        "  Referenced from: x.so\n"
        "  Reason: no LC_RPATH's found"
    )
    assert homebrew.missing
    assert homebrew.error_message("x.so").endswith(
        "Reason: tried: '/opt/homebrew/opt/libomp/lib/libomp.dylib' (no such file)"
    )
    assert (executable.how, leaf_loaded.how, leaf.how) == (
        LoadVia.UNKNOWN,
        LoadVia.PRELOADED,
        LoadVia.UNKNOWN,
    )
    assert gone.missing and gone.tried == (PurePosixPath("torchaudio/lib/libgone.dylib"),)


PE_WHEEL = WheelNamespace(
    [
        "pkg/_C.cp312-win_amd64.pyd",
        "pkg/Helper.dll",
        "torch/lib/torch_cpu.dll",
        "torch/lib/extra_only.dll",
        "nvidia/cuda_runtime/bin/cudart64_12.dll",
    ]
)


def test_pe_extension_after_import_torch() -> None:
    library = Library(
        path=Path("pkg/_C.cp312-win_amd64.pyd"),
        format=BinaryFormat.PE,
        machine="x86_64",
        bits=64,
        byte_order="little",
        needed=(
            "torch_cpu.dll",
            "C10.dll",
            "KERNEL32.dll",
            "api-ms-win-crt-runtime-l1-1-0.dll",
            "VCRUNTIME140.dll",
            "MSVCP140.dll",
            "python312.dll",
            "HELPER.DLL",
            "EXTRA_ONLY.dll",
            "CUDART64_12.DLL",
            "c10_cuda.dll",
        ),
    )
    context = LoadContext(
        format=BinaryFormat.PE,
        preloaded=frozenset({"torch_cpu.dll", "c10.dll"}),
        extra_dirs=(PurePosixPath("torch/lib"), PurePosixPath("nvidia/cuda_runtime/bin")),
        system_dirs=(),
        namespace=PE_WHEEL,
    )
    location = PE_WHEEL.path("pkg/_C.cp312-win_amd64.pyd")
    results = resolve_needed(library, location, context)
    assert [r.how for r in results] == [
        LoadVia.PRELOADED,
        LoadVia.PRELOADED,  # case-insensitive
        LoadVia.SYSTEM,
        LoadVia.SYSTEM,
        LoadVia.SYSTEM,
        LoadVia.SYSTEM,
        LoadVia.SYSTEM,
        LoadVia.LOADER_PATH,
        LoadVia.ADDED_DIRECTORY,
        LoadVia.ADDED_DIRECTORY,
        LoadVia.MISSING,
    ]
    helper, extra, cudart, missing = results[7:]
    assert helper.found == PurePosixPath("pkg/Helper.dll")
    assert (extra.found, extra.entry) == (PurePosixPath("torch/lib/extra_only.dll"), "torch/lib")
    assert cudart.found == PurePosixPath("nvidia/cuda_runtime/bin/cudart64_12.dll")
    assert missing.tried == (
        PurePosixPath("pkg/c10_cuda.dll"),
        PurePosixPath("torch/lib/c10_cuda.dll"),
        PurePosixPath("nvidia/cuda_runtime/bin/c10_cuda.dll"),
    )
    expected = "DLL load failed while importing _C: The specified module could not be found."
    assert missing.error_message("pkg/_C.cp312-win_amd64.pyd") == expected
    assert missing.error_message("pkg._C") == expected
    only = resolve_needed(library, location, context, only=is_cuda_runtime)
    assert [r.needed for r in only] == ["CUDART64_12.DLL"]


def test_error_message_of_a_found_entry_raises() -> None:
    found = Resolution("libc10.so", None, LoadVia.PRELOADED, BinaryFormat.ELF)
    with pytest.raises(ValueError, match="not missing"):
        found.error_message("x.so")


# ---------------------------------------------------------------------------------------------
# CUDA runtime names


@pytest.mark.parametrize(
    "name",
    [
        "libcudart.so.13",
        "libcudart.so",
        "libcublas.so.12",
        "libcublasLt.so.12",
        "libcudnn.so.9",
        "libcudnn_ops.so.9",
        "libcufft.so.11",
        "libcurand.so.10",
        "libcusparse.so.12",
        "libcusparseLt.so.0",
        "libcusolver.so.11",
        "libnccl.so.2",
        "libnvrtc.so.12",
        "libnvJitLink.so.12",
        "libcupti.so.12",
        "libnvToolsExt.so.1",
        "@rpath/libcudart.12.dylib",
        "/usr/local/cuda/lib64/libcudart.so.12.4.127",
        "cudart64_12.dll",
        "cublas64_12.dll",
        "cublasLt64_12.dll",
        "cudnn64_9.dll",
        "nvrtc64_120_0.dll",
        "nvJitLink_120_0.dll",
        "CUDART64_110.DLL",
    ],
)
def test_cuda_runtime_names(name: str) -> None:
    assert is_cuda_runtime(name)


@pytest.mark.parametrize(
    "name",
    [
        "libcuda.so.1",  # the driver
        "libcuda.so",
        "nvcuda.dll",
        "libnvidia-ml.so.1",
        "libtorch_cuda.so",
        "libc10_cuda.so",
        "torch_cuda.dll",
        "libcudart_static.a",
        "libc.so.6",
        "libcudart.txt",
    ],
)
def test_not_cuda_runtime_names(name: str) -> None:
    assert not is_cuda_runtime(name)


# ---------------------------------------------------------------------------------------------
# System library path


def test_system_library_dirs_of_a_fake_root(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "ld.so.conf.d").mkdir(parents=True)
    (etc / "rel").mkdir()
    (etc / "ld.so.conf").write_text(
        "# comment line\n"
        "include /etc/ld.so.conf.d/*.conf\n"
        "/opt/one   # trailing comment\n"
        "hwcap 1 nosegneg\n"
        "/opt/missing\n"
        "\n"
        "include\trel/*.conf /etc/none/*.conf\n"
        "/opt/one\n"
    )
    (etc / "ld.so.conf.d" / "a.conf").write_text("/opt/two/\ninclude /etc/ld.so.conf\n")
    (etc / "ld.so.conf.d" / "b.conf").write_text("/opt/three=libc6\n")
    (etc / "ld.so.conf.d" / "c.conf").mkdir()  # unreadable as a file: skipped
    (etc / "ld.so.conf.d" / "d.conf").symlink_to(tmp_path / "nowhere.conf")  # dangling
    (etc / "rel" / "x.conf").write_text("include ../ld.so.conf.d/a.conf\n/opt/four\n")
    for directory in ("opt/one", "opt/two", "opt/three", "opt/four", "usr/lib", "lib64"):
        (tmp_path / directory).mkdir(parents=True)
    (tmp_path / "usr/lib/x86_64-linux-gnu").mkdir()
    assert system_library_dirs(tmp_path) == tuple(
        PurePosixPath(p)
        for p in (
            "/opt/two",
            "/opt/three",
            "/opt/one",
            "/opt/four",
            "/usr/lib/x86_64-linux-gnu",
            "/lib64",
            "/usr/lib",
        )
    )
    assert system_library_dirs(tmp_path) is system_library_dirs(tmp_path)  # cached


def test_system_library_dirs_without_a_configuration(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    assert system_library_dirs(tmp_path) == (PurePosixPath("/lib"),)


def test_system_library_dirs_of_this_machine() -> None:
    dirs = system_library_dirs()
    assert dirs
    assert all(d.is_absolute() and Path(d).is_dir() for d in dirs)
    assert len(set(dirs)) == len(dirs)
    expected = [
        PurePosixPath(p)
        for p in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64")
        if Path(p).is_dir()
    ]
    assert expected and set(expected) <= set(dirs)
    assert any((Path(d) / "libc.so.6").exists() for d in dirs)
