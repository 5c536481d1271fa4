"""Seeds for the fuzz tests: small libraries of every structure the readers know.

ELF: the compiled fixtures (64-bit, 32-bit, symbol versions, SysV hash) and byte-built images
(big-endian 32- and 64-bit, section-less, both hash tables). Mach-O: thin arm64 with dylibs,
rpaths and a build version; 32-bit big-endian PowerPC with a minimum version; classic bind and
lazy-bind opcodes; chained fixups with addends and a flat-lookup import; universal 32- and 64-bit.
PE: PE32+ and PE32 with imports (by name and ordinal), delay-load imports (RVA- and VA-based) and
exports (by name, by ordinal, forwarded; in .rdata or their own .edata). Real wheel members:
:data:`REAL_SEEDS`.
"""

from __future__ import annotations

from helpers import macho_builder as mb
from helpers import pe_builder as pb
from helpers.build import Fixtures
from helpers.elf_builder import STB_WEAK, Sym, build_elf

#: Members of real wheels the other tests already download (one per kind of structure).
REAL_SEEDS = {
    "elf": [
        (
            "torchaudio-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl",
            "torchaudio/lib/_torchaudio.abi3.so",
        ),
    ],
    "mach-o": [
        (
            "torchaudio-2.11.0-cp311-cp311-macosx_11_0_arm64.whl",
            "torchaudio/lib/_torchaudio.abi3.so",
        ),
        (
            "torchcodec-0.17.0-cp311-cp311-macosx_14_0_arm64.whl",
            "torchcodec/libtorchcodec_core4.dylib",
        ),
    ],
    "pe": [("torchaudio-2.11.0-cp311-cp311-win_amd64.whl", "torchaudio/lib/_torchaudio.pyd")],
}


def elf_seeds(built: Fixtures) -> list[bytes]:
    compiled = [
        built.stable_plugin,
        built.unstable_lib,
        built.abi3_ext,
        built.versioned,
        built.sysv_hash,
        built.tiny32,
    ]
    symbols = [
        Sym("aoti_torch_empty_strided", defined=False),
        Sym("_ZN3c104HalfC1Ef", binding=STB_WEAK),
        Sym("PyInit_x"),
        Sym("_ZN2at6Tensor4add_Ev", defined=False, version="V1", library="libtorch_cpu.so"),
    ]
    built_images = [
        build_elf(symbols, bits=32, big_endian=True, needed=["libc10.so"]).data,
        build_elf(symbols, section_headers=False, hash_style="sysv", soname="libx.so").data,
        build_elf(symbols, big_endian=True, hash_style="both", runpath="$ORIGIN").data,
    ]
    return [path.read_bytes() for path in compiled] + built_images


def macho_seeds() -> list[bytes]:
    dylibs = [(mb.LC_LOAD_DYLIB, "@rpath/libtorch_cpu.dylib"), (mb.LC_LOAD_WEAK_DYLIB, "/x.dylib")]
    imports = [
        mb.undefined("_aoti_torch_empty_strided", 1),
        mb.undefined("__ZN3c104HalfC1Ef", 2, weak=True),
    ]
    exports = [mb.defined("_PyInit_x"), mb.defined("__ZN3c104HalfC1Ef", weak=True)]
    locals_ = [mb.local("_helper"), mb.stab("_debug")]
    thin = (
        mb.MachO(
            dylibs=dylibs,
            rpaths=["@loader_path/../lib"],
            id_dylib="@rpath/libx.dylib",
            build_version=(mb.PLATFORM_MACOS, mb.version(11)),
            imports=imports,
            exports=exports,
            locals=locals_,
        )
        .build()
        .data
    )
    old = (
        mb.MachO(
            bits=32,
            big_endian=True,
            cputype=mb.CPU_TYPE_POWERPC,
            dylibs=dylibs,
            version_min=mb.version(10, 5),
            imports=imports,
            exports=exports,
            locals=locals_,
        )
        .build()
        .data
    )
    binds = mb.bind_opcodes([("_aoti_torch_empty_strided", 1, False), ("_weak", 2, True)])
    lazy = mb.bind_opcodes([("_lazy", 1, False)], lazy=True)
    classic = (
        mb.MachO(dylibs=dylibs, bind=binds, lazy_bind=lazy, imports=imports, exports=exports)
        .build()
        .data
    )
    chained = (
        mb.MachO(
            dylibs=dylibs,
            exports=exports,
            symtab=True,
            chained=[
                mb.ChainedImport(1, "_aoti_torch_empty_strided"),
                mb.ChainedImport(2, "__ZN3c104HalfC1Ef", weak=True),
                mb.ChainedImport(-2, "_flat", addend=8),
            ],
            chained_format=mb.DYLD_CHAINED_IMPORT_ADDEND,
        )
        .build()
        .data
    )
    intel = (
        mb.MachO(cputype=mb.CPU_TYPE_X86_64, dylibs=dylibs, imports=imports, exports=exports)
        .build()
        .data
    )
    fat = mb.build_fat(
        [mb.FatSlice(mb.CPU_TYPE_X86_64, intel), mb.FatSlice(mb.CPU_TYPE_ARM64, chained)]
    )
    fat64 = mb.build_fat([mb.FatSlice(mb.CPU_TYPE_ARM64, thin)], fat64=True)
    return [thin, old, classic, chained, fat.data, fat64.data]


def pe_seeds() -> list[bytes]:
    imports = [
        pb.Import("torch_cpu.dll", ["aoti_torch_empty_strided", "?add_@Tensor@at@@QEAAXXZ"]),
        pb.Import("python3.dll", ["PyModule_Create2", 7]),
    ]
    delay = [pb.Import("c10.dll", ["?Half@c10@@QEAA@M@Z"])]
    exports = [pb.Export("PyInit_x"), pb.Export(None), pb.Export("fwd", forwarder="OTHER.func")]
    return [
        pb.build_pe(imports=imports, delay_imports=delay, exports=exports).data,
        pb.build_pe(bits=32, imports=imports, delay_imports=delay, delay_va_based=True).data,
        pb.build_pe(imports=imports, exports=exports, separate_edata=True).data,
    ]
