"""scripts/generate_stable_abi_data.py: header parsing, and regeneration against a real torch."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "src" / "torch_abi_audit" / "data" / "torch_stable_abi.json"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_stable_abi_data", REPO / "scripts" / "generate_stable_abi_data.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()

HEADER = """
#pragma once
// AOTI_TORCH_EXPORT AOTITorchError commented_out(int);
#ifdef __cplusplus
extern "C" {
#endif
AOTI_TORCH_EXPORT AOTITorchError old_shim(AtenTensorHandle self, int64_t* ret);
AOTI_TORCH_EXPORT AOTITorchError
split_over_lines(
    AtenTensorHandle self);
/* AOTI_TORCH_EXPORT int block_commented(void); */
#if TORCH_FEATURE_VERSION >= TORCH_VERSION_2_10_0
AOTI_TORCH_EXPORT int32_t new_in_2_10();
#ifdef USE_CUDA
AOTI_TORCH_EXPORT AOTITorchError cuda_in_2_10(void* stream);
#endif // USE_CUDA
#if TORCH_FEATURE_VERSION >= TORCH_VERSION_2_12_0
AOTI_TORCH_EXPORT int32_t nested_2_12();
#endif
#else
AOTI_TORCH_EXPORT int32_t older_variant();
#endif
[[deprecated(
    "old_way is deprecated "
    "use new_way")]]
AOTI_TORCH_EXPORT AOTITorchError old_way(int x);
#ifdef __cplusplus
}
#endif
"""


def test_parse_shim_header_guards_devices_and_deprecation() -> None:
    found = {d.name: d for d in GEN.parse_shim_header(HEADER, "x/shim.h", "cpu")}
    assert set(found) == {
        "old_shim",
        "split_over_lines",
        "new_in_2_10",
        "cuda_in_2_10",
        "nested_2_12",
        "older_variant",
        "old_way",
    }
    assert found["old_shim"].guard is None
    assert found["split_over_lines"].guard is None
    assert found["new_in_2_10"].guard == "2.10.0"
    assert found["cuda_in_2_10"].guard == "2.10.0"
    assert found["cuda_in_2_10"].device == "cuda"
    assert found["new_in_2_10"].device == "cpu"
    assert found["nested_2_12"].guard == "2.12.0"
    assert found["older_variant"].guard is None  # the #else branch of a version guard
    assert found["old_way"].deprecated
    assert found["old_way"].deprecation_message == "old_way is deprecated use new_way"
    assert not found["old_shim"].deprecated


def test_header_only_names() -> None:
    text = """
    namespace torch::headeronly {
    using c10::Half;
    using ::c10::BFloat16;
    using c10::detail::fp16_ieee_from_fp32_value;
    using c10::operator+;
    // using c10::IValue;
    }
    """
    assert GEN.parse_header_only_names([text]) == {
        "c10::Half",
        "c10::BFloat16",
        "c10::detail::fp16_ieee_from_fp32_value",
    }


def _torch_dir() -> Path | None:
    configured = os.environ.get("TORCH_ABI_AUDIT_TORCH_DIR")
    candidates = [Path(configured)] if configured else []
    candidates += [Path(sysconfig.get_paths()[k]) / "torch" for k in ("purelib", "platlib")]
    for candidate in candidates:
        if (candidate / "include").is_dir() and (candidate / "version.py").is_file():
            return candidate
    return None


@pytest.mark.torch
def test_shipped_table_matches_a_regeneration(tmp_path: Path) -> None:
    """Re-running the generator against the release the table was built from changes nothing."""
    torch_dir = _torch_dir()
    if torch_dir is None:
        pytest.skip("no torch installation (set TORCH_ABI_AUDIT_TORCH_DIR)")
    shipped = json.loads(DATA.read_text("utf-8"))
    version = GEN.TorchTree(torch_dir).version().split("+")[0]
    if version not in [r["version"] for r in shipped["releases"]]:
        pytest.skip(f"installed torch {version} is not a release the table was built from")
    assert GEN.main(["--torch", str(torch_dir), "--check"]) == 0
    out = tmp_path / "table.json"
    assert GEN.main(["--torch", str(torch_dir), "--output", str(out)]) == 0
    regenerated = json.loads(out.read_text("utf-8"))
    assert regenerated["shims"] == shipped["shims"]
    assert regenerated["header_only"] == shipped["header_only"]
    assert regenerated["internal_c_symbols"] == shipped["internal_c_symbols"]
