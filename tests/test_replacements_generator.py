"""scripts/generate_replacements.py: the header reader, the statements, and real releases.

The parser of PyTorch's stable-ABI notes is tested on a synthetic document of our own
(``tests/fixtures/synthetic_stable_abi_notes.md``) and, where the pinned notes are in the
cache, on them (``test_replacements_notes.py``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers.scripts import load_script
from helpers.stable_abi_notes import real_notes_or_skip
from torch_abi_audit.rules.replacements import parse_replacements

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "src" / "torch_abi_audit" / "data" / "torch_replacements.json"


HEADERS = load_script("cxx_headers")
STATEMENTS = load_script("replacement_statements")
GEN = load_script("generate_replacements")

STABLE_HEADER = """
#pragma once
#include <torch/headeronly/macros/Macros.h>
HIDDEN_NAMESPACE_BEGIN(torch, stable)

/**
 * @brief Our test's stable version of c10::Device.
 */
class Device {
 public:
  // -----------------------------------------------------------------------
  // Methods from here on behave like their counterparts in TensorBase.h,
  // one for one.
  // -----------------------------------------------------------------------
  int64_t dim() const {
    return 1; // { not a scope }
  }
#if TORCH_FEATURE_VERSION >= TORCH_VERSION_2_12_0
  Device(int index) : index_{index}, other_([](int x) { return x; }(1)) {}
  bool newer_than_the_rest() const;
#else
  bool older_variant() const;
#endif
  // END of the mirrored methods
  int64_t after_the_block() const;

 private:
  int index_;
};

/// Calls the stable version of the select.int op.
inline Tensor select(const Tensor& self, int64_t dim, int64_t index) {
  return self;
}

/// Loops through a stable interface to at::parallel_for.
template <typename Fn, std::enable_if_t<std::is_invocable_v<Fn, int64_t>, bool> = true>
inline void parallel_for(int64_t first, int64_t last, const Fn& body) {}

HIDDEN_NAMESPACE_END(torch, stable)

// The stable corollary to torch::Library method m.impl(); a comment spread
// over two lines
AOTI_TORCH_EXPORT AOTITorchError aoti_torch_library_impl(TorchLibraryHandle lib, const char* op);
// The stable corollary to torch::Library when it defines operators
AOTI_TORCH_EXPORT AOTITorchError aoti_torch_library_init_def(const char* name);

// STD_CHECK is the same as TORCH_CHECK but raises std::runtime_error instead
// of c10::Error, e.g. in code that never links libtorch.
#define STD_CHECK(cond, ...) if (!(cond)) { throw std::runtime_error("x"); }
"""

LIBTORCH_HEADER = """
namespace c10 {
class C10_API Error : public std::exception {
 public:
  const char* what() const noexcept override;
};
namespace detail {
[[noreturn]] C10_API void torchCheckFail(const char* func, const char* msg);
} // namespace detail
}
namespace at {
class TORCH_API TensorBase {
 public:
  int64_t dim() const { return impl_->dim(); }
  int64_t after_the_block() const;
};
template <typename F>
void parallel_for(int64_t begin, int64_t end, const F& f);
}
#define TORCH_CHECK(cond, ...) \\
  if (!(cond)) { ::c10::detail::torchCheckFail(__func__, "x"); }
#define TORCH_CHECK_LIST(_) _(c10::Error, E)
#define LOCAL_HELPER(x) ::c10::detail::torchCheckFail(x, x)
#undef LOCAL_HELPER
"""


def test_header_reader_declarations_guards_and_macros() -> None:
    header = HEADERS.read_header("torch/csrc/stable/fake.h", STABLE_HEADER)
    declared = {d.qualified: d for d in header.declarations}
    assert declared["torch::stable::Device"].kind == "class"
    assert declared["torch::stable::Device::dim"].kind == "function"
    assert (
        declared["torch::stable::select"].line
        == STABLE_HEADER.split("\n").index(
            "inline Tensor select(const Tensor& self, int64_t dim, int64_t index) {"
        )
        + 1
    )
    assert "torch::stable::parallel_for" in declared
    # The guard around a declaration; the #else branch is not read.
    assert declared["torch::stable::Device::newer_than_the_rest"].guard == "2.12.0"
    assert declared["torch::stable::Device::dim"].guard is None
    assert "torch::stable::Device::older_variant" not in declared
    # A member initialiser with braces and a lambda is not a scope of its own.
    assert "torch::stable::Device::after_the_block" in declared
    assert not any(
        q.endswith(("::index_", "::other_")) and d.kind == "function" for q, d in declared.items()
    )
    assert [m.name for m in header.macros] == ["STD_CHECK"]


def test_libtorch_macro_expansions_keep_calls_not_listed_arguments() -> None:
    header = HEADERS.read_header("c10/util/Exception.h", LIBTORCH_HEADER)
    index = GEN.NameIndex()
    index.add("2.9.0", {"c10/util/Exception.h": header})
    assert "c10::detail::torchCheckFail" in index.names
    assert index.resolve("TensorBase") == "at::TensorBase"
    assert index.resolve("detail::torchCheckFail") == "c10::detail::torchCheckFail"
    assert index.resolve("Unknown") is None
    emitted = GEN.macro_references(index)
    assert emitted["c10::detail::torchCheckFail"] == {"TORCH_CHECK": 0}
    # An X-macro's argument list is not a use, and an #undef'd helper is not an API.
    assert "c10::Error" not in emitted
    assert "LOCAL_HELPER" not in index.macros


#: c10/cuda/CUDAException.h's shape: a comment ends a line of a multi-line macro with the line
#: splice inside it, and c10/../symbol.h's: members defined outside their class.
SPLICED_HEADER = """
#define C10_CUDA_CHECK(EXPR)                        \\
  do {                                              \\
    c10::cuda::c10_cuda_check_implementation(       \\
        __func__, /* not well-defined between       \\
                     compilers, so we cast */       \\
        true);                                      \\
  } while (0)

namespace c10 {
class Symbol {
 public:
  static Symbol cuda(const std::string& s);
};
inline Symbol Symbol::cuda(const std::string& s) { return Symbol(); }
} // namespace c10

namespace c10::cuda {
C10_CUDA_API void c10_cuda_check_implementation(const char* function_name, bool check);
} // namespace c10::cuda
"""


def test_a_comment_inside_a_macro_keeps_its_line_splice() -> None:
    """The line splice comes before comments are removed: a comment ending a macro's line
    does not end the macro, and what follows the macro is read (it was lost, and the
    macro's `while` read as a function)."""
    header = HEADERS.read_header("c10/cuda/CUDAException.h", SPLICED_HEADER)
    declared = {d.qualified: d for d in header.declarations}
    assert "while" not in declared
    assert declared["c10::cuda::c10_cuda_check_implementation"].kind == "function"
    [macro] = header.macros
    assert "} while (0)" in macro.body


def test_a_member_defined_out_of_line_is_its_class_member() -> None:
    """``Symbol Symbol::cuda(...)`` defines ``c10::Symbol::cuda``, not a ``c10::cuda`` that
    would swallow every ``c10::cuda::`` name; where a release also declares the member in
    its class, that declaration is where it is declared."""
    header = HEADERS.read_header("ATen/core/symbol.h", SPLICED_HEADER)
    found = sorted((d.qualified, d.out_of_line) for d in header.declarations if d.name == "cuda")
    assert found == [
        ("c10::Symbol::cuda", False),
        ("c10::Symbol::cuda", True),
        ("c10::cuda", False),
    ]
    index = GEN.NameIndex()
    definition = HEADERS.read_header("a_inl.h", "namespace c10 { inline Symbol Symbol::cuda() {} }")
    index.add("2.9.0", {"a_inl.h": definition, "symbol.h": header})
    assert index.names["c10::Symbol::cuda"][2] == "symbol.h"
    assert index.names["c10::cuda"][1] == "namespace"
    emitted = GEN.macro_references(index)
    assert emitted["c10::cuda::c10_cuda_check_implementation"] == {"C10_CUDA_CHECK": 0}
    assert "c10::cuda" not in emitted


def test_header_statements_tie_comments_to_declarations() -> None:
    header = HEADERS.read_header("torch/csrc/stable/fake.h", STABLE_HEADER)
    found = {
        (s.libtorch, s.stable, s.operator)
        for s in STATEMENTS.header_statements({"torch/csrc/stable/fake.h": header}, "torch 2.15.0")
    }
    assert ("c10::Device", "torch::stable::Device", False) in found
    assert ("select.int", "torch::stable::select", True) in found
    assert ("at::parallel_for", "torch::stable::parallel_for", False) in found
    assert ("TORCH_CHECK", "STD_CHECK", False) in found
    assert ("c10::Error", "std::runtime_error", False) in found
    assert ("torch::Library::impl", "aoti_torch_library_impl", False) in found
    assert ("torch::Library", "aoti_torch_library_init_def", False) in found
    assert not any(
        s[0].startswith("torch::Library")
        and s[1] == "aoti_torch_library_impl"
        and s[0] != "torch::Library::impl"
        for s in found
    )
    # The block of TensorBase counterparts ends at its "END of" comment.
    assert ("TensorBase::dim", "torch::stable::Device::dim", False) in found
    assert (
        "TensorBase::newer_than_the_rest",
        "torch::stable::Device::newer_than_the_rest",
        False,
    ) in found
    assert not any(s[0] == "TensorBase::after_the_block" for s in found)


def _shipped() -> dict[str, object]:
    data: dict[str, object] = json.loads(DATA.read_text(encoding="utf-8"))
    return data


def test_shipped_table_says_where_it_comes_from() -> None:
    data = _shipped()
    assert data["generated_by"] == "scripts/generate_replacements.py"
    stable_table = json.loads((DATA.parent / "torch_stable_abi.json").read_text("utf-8"))
    sources = data["sources"]
    assert isinstance(sources, dict)
    assert [r["version"] for r in sources["releases"]] == [
        r["version"] for r in stable_table["releases"]
    ]
    assert sources["docs"]["commit"] == GEN.DOCS_COMMIT
    parse_replacements(data)


@pytest.mark.skipif(
    not os.environ.get("TORCH_ABI_AUDIT_TORCH_DIR"), reason="needs TORCH_ABI_AUDIT_TORCH_DIR"
)
@pytest.mark.torch
def test_one_release_agrees_with_the_shipped_table(tmp_path: Path) -> None:
    """Generated from the installed torch alone, every mapping whose replacement that release
    has is the shipped one (the shipped table dates them over every release)."""
    real_notes_or_skip(GEN)
    torch_dir = Path(os.environ["TORCH_ABI_AUDIT_TORCH_DIR"])
    output = tmp_path / "one.json"
    assert GEN.main(["--torch", str(torch_dir), "--output", str(output)]) == 0
    one = json.loads(output.read_text("utf-8"))
    shipped = _shipped()["entities"]
    assert isinstance(shipped, dict)
    agreed = 0
    for entity, entry in one["entities"].items():
        if entry["replacement"] is None:
            continue
        assert shipped[entity]["replacement"] in [
            entry["replacement"],
            *entry["alternatives"],
        ], entity
        agreed += 1
    assert agreed >= 30
    assert one["operators"]["select.int"]["function"] == "torch::stable::select"


@pytest.mark.skipif(
    not os.environ.get("TORCH_ABI_AUDIT_FULL_REGENERATION"),
    reason="downloads every release's macOS wheel; set TORCH_ABI_AUDIT_FULL_REGENERATION=1",
)
def test_shipped_table_is_up_to_date() -> None:
    assert GEN.main(["--check"]) == 0
