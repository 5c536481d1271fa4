#!/usr/bin/env python3
"""Generate ``src/torch_abi_audit/data/torch_replacements.json``: what replaces a libtorch entity.

The file maps libtorch entities (a class, a method, a function, an ATen operator, what a macro
such as ``TORCH_CHECK`` expands to) to their stable-ABI replacement, the first release that has
it, and the source line the mapping was read from. It is never edited by hand: re-run this script.

    python scripts/generate_replacements.py            # the releases of torch_stable_abi.json
    python scripts/generate_replacements.py --check    # exit 1 if the shipped file differs
    python scripts/generate_replacements.py --torch /path/to/torch --output /tmp/r.json
    python scripts/generate_replacements.py --docs libtorch_stable_abi.md   # notes at hand

Every mapping is a sentence PyTorch wrote, never a guess from similar names:

* **the stable-ABI notes** (``docs/source/notes/libtorch_stable_abi.md`` at commit
  :data:`DOCS_COMMIT`, checked by its SHA-256; not kept in this repository: ``--docs FILE``, else
  the project's cache, else downloaded into the cache from GitHub — see :func:`obtain_docs`):
  its migration examples (``at::Tensor`` -> ``torch::stable::Tensor``, ``TORCH_LIBRARY`` ->
  ``STABLE_TORCH_LIBRARY``), its list of the stable C++ headers with the libtorch type each
  stands in for (``c10::Device`` -> ``torch::stable::Device``), the StableIValue table (a ``?``
  in its first column documents a libtorch type without a stable counterpart yet), and the
  rules it states for ATen functions and Tensor methods (``torch::stable::<op>``) and for
  ``torch_call_dispatcher`` (:mod:`replacement_statements` lists the forms it recognises);
* **comments in the stable headers** of the newest release (``torch/csrc/stable``,
  ``torch/headeronly``), tied to the declaration they document: a stable version of, a stable
  interface to, modeled after or the same as a libtorch name (``c10::Device``,
  ``at::parallel_for``, ``at::Generator``, ``AT_DISPATCH_SWITCH``), one name used instead of
  another (``STD_TORCH_CHECK`` for ``TORCH_CHECK_INDEX``), the stable version of an operator
  (``select.int``), and a block of ``torch::stable::Tensor`` methods that mirror those of
  ``TensorBase.h``;
* **libtorch's own headers** of every release read (``c10``, ``ATen`` without the generated
  operators, ``torch/library.h``, autograd, the C++ frontend): which names exist (a statement
  naming something libtorch does not declare is dropped and reported), what each macro expands
  to (``TORCH_CHECK`` -> ``c10::detail::torchCheckFail``), and the ATen operators
  (``ATen/ops/*_ops.h``: ``at::_ops::select_int`` is ``aten::select.int``).

Where nothing PyTorch wrote names a replacement, the entity has none ("no stable replacement
yet"). A replacement's ``since`` is the first release read whose stable headers declare it (and
not older than the ``TORCH_FEATURE_VERSION`` guard around it); for a shim, its ``since`` in
``torch_stable_abi.json``. The releases are those of ``torch_stable_abi.json`` (the same macOS
arm64 wheels, read in place from the shared cache; ``generate_stable_abi_data.py`` fetches them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(SCRIPTS))

from cxx_headers import Header, Macro, qualified_names, read_header  # noqa: E402
from generate_stable_abi_data import (  # noqa: E402
    TorchTree,
    TorchWheel,
    check_or_write,
    fetch_release_wheel,
    open_release,
    render,
)
from replacement_statements import (  # noqa: E402
    DOCS_PATH,
    Source,
    Statement,
    docs_statements,
    header_statements,
)
from torch_abi_audit.sources.index import cache_root, default_cache  # noqa: E402

OUTPUT = REPO / "src" / "torch_abi_audit" / "data" / "torch_replacements.json"
STABLE_TABLE = REPO / "src" / "torch_abi_audit" / "data" / "torch_stable_abi.json"
FORMAT_VERSION = 1
GENERATED_BY = "scripts/generate_replacements.py"
#: The PyTorch commit the notes are read at, and the SHA-256 of the file at that commit.
DOCS_COMMIT = "0431c5b7403fc3a3b1a66ee1d2760aacd4d4d6ab"
DOCS_SHA256 = "80c25c08654eacd3749673844ceb6c1903a5b3b5bad60fb17054a5bcb4406e57"
#: Where the notes are downloaded from when neither ``--docs`` nor the cache has them.
DOCS_URL = f"https://raw.githubusercontent.com/pytorch/pytorch/{DOCS_COMMIT}/{DOCS_PATH}"
_DOWNLOAD_TIMEOUT = 60

# Headers read, relative to torch/include.
STABLE_DIRS = ("torch/csrc/stable", "torch/headeronly")
# The stable C shim's main header: its comments name libtorch counterparts (the
# ``torch::Library`` method each ``aoti_torch_library_*`` function corresponds to).
STABLE_FILES = ("torch/csrc/inductor/aoti_torch/c/shim.h",)
LIBTORCH_DIRS = (
    "c10",
    "ATen",
    "torch/csrc/api/include",
    "torch/csrc/autograd",
    "torch/csrc/jit/api",
    "torch/csrc/jit/frontend",
)
LIBTORCH_FILES = ("torch/library.h", "torch/custom_class.h", "torch/extension.h")
# Generated per-operator headers: only the *_ops.h ones are read (for operator names).
_GENERATED_DIRS = ("ATen/ops/", "ATen/native/")
_OPERATOR = re.compile(
    r"struct\s+TORCH_API\s+(\w+)\s*\{.*?name\s*=\s*\"aten::(\w+)\";"
    r".*?overload_name\s*=\s*\"(\w*)\";",
    re.S,
)
#: How many levels of nested macros an expansion follows.
MACRO_DEPTH = 6
#: How many macros an entity lists as emitting it.
VIA_LIMIT = 6


# -- one release's headers --------------------------------------------------------------------


def _header_members(files: object, prefixes: Sequence[str], names: Sequence[str]) -> list[str]:
    """Paths (relative to ``torch/include``) of the headers under ``prefixes`` or in ``names``."""
    if isinstance(files, TorchWheel):
        members = [m.removeprefix("torch/include/") for m in files._members]
    elif isinstance(files, TorchTree):
        base = files.root / "include"
        members = [p.relative_to(base).as_posix() for p in base.rglob("*.h")]
    else:
        raise SystemExit(f"cannot list the headers of {files!r}")
    chosen = [
        m
        for m in members
        if m.endswith(".h")
        and (m in names or any(m.startswith(p.rstrip("/") + "/") for p in prefixes))
        and not m.startswith(_GENERATED_DIRS)
    ]
    return sorted(chosen)


@dataclass
class ReleaseHeaders:
    """What one release's headers declare: the stable surface and libtorch."""

    version: str
    wheel: str
    sha256: str | None
    stable: dict[str, Header] = field(default_factory=dict)
    libtorch: dict[str, Header] = field(default_factory=dict)
    #: ``at::_ops`` struct -> ``name.overload`` (``select_int`` -> ``select.int``).
    operators: dict[str, str] = field(default_factory=dict)


def read_release_headers(files: object, *, with_libtorch: bool) -> ReleaseHeaders:
    """The stable headers of a release, and (``with_libtorch``) libtorch's and its operators."""
    version: str = files.version()  # type: ignore[attr-defined]
    release = ReleaseHeaders(version, files.source, files.sha256)  # type: ignore[attr-defined]
    read = files.read_text  # type: ignore[attr-defined]
    for path in _header_members(files, STABLE_DIRS, STABLE_FILES):
        release.stable[path] = read_header(path, read(f"include/{path}") or "")
    if not with_libtorch:
        return release
    for path in _header_members(files, LIBTORCH_DIRS, LIBTORCH_FILES):
        release.libtorch[path] = read_header(path, read(f"include/{path}") or "")
    for path in _operator_headers(files):
        for struct, name, overload in _OPERATOR.findall(read(f"include/{path}") or ""):
            release.operators[struct] = f"{name}.{overload}" if overload else name
    return release


def _operator_headers(files: object) -> list[str]:
    if isinstance(files, TorchWheel):
        members = [m.removeprefix("torch/include/") for m in files._members]
    else:
        base = files.root / "include"  # type: ignore[attr-defined]
        members = [p.relative_to(base).as_posix() for p in (base / "ATen/ops").glob("*_ops.h")]
    return sorted(m for m in members if m.startswith("ATen/ops/") and m.endswith("_ops.h"))


# -- name indexes -----------------------------------------------------------------------------


@dataclass
class NameIndex:
    """Declared names and macros of one side (stable or libtorch) over the releases read."""

    #: qualified name -> (first release declaring it, kind, file, line, guard in that release).
    names: dict[str, tuple[str, str, str, int, str | None]] = field(default_factory=dict)
    #: macro -> (first release defining it, file, line)
    macros: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    #: every definition of each macro in the newest release that has it (bodies differ by branch).
    definitions: dict[str, list[Macro]] = field(default_factory=dict)
    #: last component -> qualified names with it.
    by_last: dict[str, set[str]] = field(default_factory=dict)

    def add(self, version: str, headers: dict[str, Header]) -> None:
        fresh: dict[str, list[Macro]] = {}
        # Where a name is declared, not where a member is defined out of line, when a release
        # has both (tensor_struct.h, not tensor_inl.h): declarations first.
        ordered = sorted(
            ((path, d) for path, header in headers.items() for d in header.declarations),
            key=lambda item: item[1].out_of_line,
        )
        for path, declaration in ordered:
            if declaration.qualified not in self.names:
                self.names[declaration.qualified] = (
                    version,
                    declaration.kind,
                    path,
                    declaration.line,
                    declaration.guard,
                )
                self.by_last.setdefault(declaration.name, set()).add(declaration.qualified)
        for path, header in headers.items():
            for macro in header.macros:
                self.macros.setdefault(macro.name, (version, path, macro.line))
                fresh.setdefault(macro.name, []).append(macro)
        self.definitions.update(fresh)

    def resolve(self, text: str) -> str | None:
        """The declared name or macro ``text`` means (qualified, partly qualified such as
        ``ivalue::ConstantString``, or bare when only one declaration ends with it)."""
        text = text.strip().strip("`").removeprefix("::")
        text = re.sub(r"\(\)$|<.*>$|\\$", "", text)
        if text in self.names or text in self.macros:
            return text
        last = text.rsplit("::", 1)[-1]
        candidates = {q for q in self.by_last.get(last, set()) if q.endswith("::" + text)}
        candidates = {q for q in candidates if not q.startswith("(anonymous")}
        # A bare type name means a type (not the constructor that shares it), the least nested.
        types = {q for q in candidates if self.names[q][1] in ("class", "alias", "enum")}
        candidates = types or candidates
        if candidates:
            shallowest = min(q.count("::") for q in candidates)
            candidates = {q for q in candidates if q.count("::") == shallowest}
        if len(candidates) == 1:
            return candidates.pop()
        return None


# -- macro expansions -------------------------------------------------------------------------


def macro_references(index: NameIndex) -> dict[str, dict[str, int]]:
    """libtorch entity -> {macro emitting it: nesting depth} (0: named in the macro's body)."""
    direct: dict[str, set[str]] = {}
    nested: dict[str, set[str]] = {}
    for name, definitions in index.definitions.items():
        for definition in definitions:
            parameters = set(definition.parameters or ())
            for reference in qualified_names(definition.body, used_only=True):
                if not parameters.intersection(reference.split("::")):
                    direct.setdefault(name, set()).add(_entity(reference, index))
            tokens = set(re.findall(r"[A-Za-z_]\w*", definition.body)) - {name}
            nested.setdefault(name, set()).update(t for t in tokens if t in index.definitions)
    emitted: dict[str, dict[str, int]] = {}
    for name in index.definitions:
        frontier, seen = {name}, {name}
        for depth in range(MACRO_DEPTH):
            for current in frontier:
                for entity in direct.get(current, ()):
                    emitted.setdefault(entity, {}).setdefault(name, depth)
            frontier = {n for m in frontier for n in nested.get(m, ())} - seen
            seen |= frontier
            if not frontier:
                break
    return emitted


def _entity(reference: str, index: NameIndex) -> str:
    """The declared entity a qualified reference in a macro body names: the longest declared
    prefix that is not a namespace (``c10::Warning::warn`` when declared, else
    ``c10::Warning``), else the reference as written."""
    parts = reference.split("::")
    for length in range(len(parts), 1, -1):
        candidate = "::".join(parts[:length])
        found = index.names.get(candidate)
        if found is not None:
            return reference if found[1] == "namespace" else candidate
    return reference


# -- the table --------------------------------------------------------------------------------


@dataclass
class Replacement:
    """One entry: the libtorch entity, what replaces it (``None``: nothing yet), and why."""

    entity: str
    replacement: str | None
    source: Source
    relation: str
    via: list[str] = field(default_factory=list)


def _stable_since(name: str, stable: NameIndex, shims: dict[str, dict[str, object]]) -> str | None:
    """The first release that has the stable ``name``: a shim's table ``since``, else the first
    release whose stable headers declare it, not older than its guard; ``None`` for ``std::``."""
    if name in shims:
        return str(shims[name]["since"])
    if name.startswith("std::"):
        return None
    found = stable.names.get(name) or (
        (*stable.macros[name][:1], "macro", *stable.macros[name][1:], None)
        if name in stable.macros
        else None
    )
    if found is None:
        return None
    first, guard = str(found[0]), found[4]
    if guard and _key(guard) > _key(first):
        return str(guard)
    return first


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def resolve_statements(
    statements: Iterable[Statement], stable: NameIndex, libtorch: NameIndex
) -> tuple[list[Replacement], list[str]]:
    """Statements whose libtorch side names something libtorch declares (and whose stable side,
    if any, names something the stable headers declare); the others, described, as rejected."""
    resolved: list[Replacement] = []
    rejected: list[str] = []
    for statement in statements:
        entity = libtorch.resolve(statement.libtorch)
        namespace = entity in libtorch.names and libtorch.names[entity][1] == "namespace"
        if entity is None or namespace or entity in stable.names or entity in stable.macros:
            rejected.append(f"{statement.source}: libtorch name {statement.libtorch!r}")
            continue
        replacement = None
        if statement.stable is not None:
            replacement = (
                statement.stable
                if statement.stable.startswith("std::")
                else stable.resolve(statement.stable)
            )
            if replacement is None:
                rejected.append(f"{statement.source}: stable name {statement.stable!r}")
                continue
        resolved.append(Replacement(entity, replacement, statement.source, statement.relation))
    return resolved, rejected


def similar_macro_statements(
    rules: dict[str, Source], stable: NameIndex, libtorch: NameIndex
) -> list[Statement]:
    """The notes' list item for ``torch/csrc/stable/library.h`` (stable counterparts of
    ``TORCH_LIBRARY`` and the macros like it): each ``STABLE_<X>`` macro that header defines
    replaces libtorch's ``<X>`` (``STABLE_TORCH_LIBRARY_IMPL`` for ``TORCH_LIBRARY_IMPL``)."""
    source = rules.get("similar-macros")
    if source is None:
        return []
    found = []
    for name, (_, path, _) in sorted(stable.macros.items()):
        libtorch_name = name.removeprefix("STABLE_")
        if (
            path == "torch/csrc/stable/library.h"
            and name != libtorch_name
            and libtorch_name in libtorch.macros
        ):
            found.append(Statement(libtorch_name, name, "stable version of", source))
    return found


def _replacement_json(
    name: str | None, stable: NameIndex, shims: dict[str, dict[str, object]]
) -> dict[str, object]:
    if name is None:
        return {"replacement": None, "since": None, "declared_in": None}
    declared = stable.names.get(name)
    macro = stable.macros.get(name)
    where = declared[2] if declared else macro[1] if macro else None
    return {
        "replacement": name,
        "since": _stable_since(name, stable, shims),
        "declared_in": f"torch/include/{where}" if where else None,
    }


def entity_entries(
    resolved: Sequence[Replacement],
    stable: NameIndex,
    libtorch: NameIndex,
    shims: dict[str, dict[str, object]],
) -> tuple[dict[str, dict[str, object]], dict[str, dict[str, object]]]:
    """(entities, macros): libtorch entity -> its entry; libtorch macro -> its replacement.

    An entity named by a statement gets that statement's replacement (the first statement
    naming a replacement wins; one naming none only stands when no other names one). An
    entity a macro expands to inherits the replacement of the best macro emitting it (one with
    a replacement, then the most direct, then the shortest name), or has none; ``via`` lists
    the macros that emit it.
    """
    entities: dict[str, dict[str, object]] = {}
    macros: dict[str, dict[str, object]] = {}
    # The notes first, then plain equivalences before those "with differences".
    ordered = sorted(
        resolved,
        key=lambda r: (not r.source.file.startswith("docs/"), "with differences" in r.relation),
    )
    for item in ordered:
        entry = {
            **_replacement_json(item.replacement, stable, shims),
            "relation": item.relation,
            "source": item.source.as_json(),
        }
        table = macros if item.entity in libtorch.macros else entities
        current = table.get(item.entity)
        if current is None or (current["replacement"] is None and item.replacement is not None):
            table[item.entity] = {**entry, "alternatives": []}
        elif item.replacement not in (None, current["replacement"]):
            alternatives = current["alternatives"]
            assert isinstance(alternatives, list)
            if item.replacement not in alternatives:
                alternatives.append(item.replacement)
    emitted = macro_references(libtorch)
    for entity, by_macro in sorted(emitted.items()):
        public = {m: d for m, d in by_macro.items() if not m.startswith("_")}
        if not public or not re.fullmatch(r"(?:at|c10|torch|caffe2)(?:::\w+)+", entity):
            continue
        # The most direct first; among equals, one with a replacement, then the shortest.
        ranked = sorted(public, key=lambda m: (public[m], m not in macros, len(m), m))
        via = ranked[:VIA_LIMIT]
        existing = entities.get(entity)
        best = next((m for m in ranked if m in macros), ranked[0])
        if existing is not None:
            existing["via"] = via
            _prefer_cxx(existing, macros.get(best), shims)
            continue
        definition = libtorch.macros[best]
        if best in macros:
            inherited = {k: v for k, v in macros[best].items() if k != "alternatives"}
            entities[entity] = {**inherited, "relation": f"emitted by {best}", "alternatives": []}
        else:
            entities[entity] = {
                **_replacement_json(None, stable, shims),
                "relation": f"emitted by {best}",
                "source": None,
                "alternatives": [],
            }
        entities[entity]["via"] = via
        entities[entity]["expansion"] = {
            "file": f"torch/include/{definition[1]}",
            "line": definition[2],
            "origin": f"torch {definition[0]}",
        }
    for entry in entities.values():
        entry.setdefault("via", [])
    return entities, macros


def _prefer_cxx(
    entry: dict[str, object], macro: dict[str, object] | None, shims: dict[str, dict[str, object]]
) -> None:
    """The notes recommend the C++ API of torch/csrc/stable over the C shims except where only
    a shim will do: an entity whose statement names a shim, while the macro that emits it has
    a C++ replacement, takes the macro's and keeps the shim as an alternative."""
    if macro is None or entry["replacement"] not in shims or macro["replacement"] in shims:
        return
    alternatives = entry["alternatives"]
    assert isinstance(alternatives, list)
    alternatives.insert(0, entry["replacement"])
    for key in ("replacement", "since", "declared_in", "relation", "source"):
        entry[key] = macro[key]


def operator_entries(
    releases: Sequence[ReleaseHeaders], operators: dict[str, str], stable: NameIndex
) -> dict[str, dict[str, object]]:
    """ATen operator (``select.int``) -> its ``torch::stable`` function, from the header
    comments calling a function the stable version of an operator — dated by the first
    release saying so."""
    known = set(operators.values())
    found: dict[str, dict[str, object]] = {}
    for release in releases:
        for statement in header_statements(release.stable, f"torch {release.version}"):
            if not statement.operator or statement.stable is None:
                continue
            operator = statement.libtorch.removesuffix(".default")
            if operator not in known or operator in found:
                continue
            declared = stable.names.get(statement.stable)
            guard = _guard_at(release, statement)
            since = release.version if not guard or _key(guard) <= _key(release.version) else guard
            found[operator] = {
                "function": statement.stable,
                "since": since,
                "declared_in": f"torch/include/{declared[2]}" if declared else None,
                "source": statement.source.as_json(),
            }
    return dict(sorted(found.items()))


def _guard_at(release: ReleaseHeaders, statement: Statement) -> str | None:
    """The guard around the declaration a statement documents, in that release's header."""
    header = release.stable.get(statement.source.file.removeprefix("torch/include/"))
    if header is None:
        return None
    below = [d for d in header.declarations if d.line > statement.source.line]
    return below[0].guard if below else None


def rule_entries(
    rules: dict[str, Source], shims: dict[str, dict[str, object]]
) -> dict[str, dict[str, object]]:
    """The family rules with their sources; the dispatcher's with its shim and release."""
    table: dict[str, dict[str, object]] = {}
    for rule in ("aten-function", "tensor-method", "aten-c-shim", "dispatcher"):
        source = rules.get(rule)
        if source is None:
            continue
        entry: dict[str, object] = {"source": source.as_json()}
        if rule == "dispatcher":
            for name in ("torch_call_dispatcher", "aoti_torch_call_dispatcher"):
                if name in shims:
                    entry.update({"replacement": name, "since": str(shims[name]["since"])})
                    break
        table[rule] = entry
    return table


# -- putting it together ----------------------------------------------------------------------


def docs_cache_path() -> Path:
    """Where the pinned notes are cached: ``<cache root>/pytorch/libtorch_stable_abi-<commit>.md``
    under the project's one cache (``$TORCH_ABI_AUDIT_CACHE`` or ``~/.cache/torch-abi-audit``)."""
    return cache_root() / "pytorch" / f"libtorch_stable_abi-{DOCS_COMMIT}.md"


def read_docs(path: Path, hint: str = "") -> str:
    """PyTorch's stable-ABI notes from ``path``; :class:`SystemExit` (ending with ``hint``) if
    the file cannot be read or is not the one at :data:`DOCS_COMMIT` (its SHA-256 differs)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SystemExit(
            f"{path}: cannot read the stable-ABI notes: {exc.strerror or exc}"
        ) from exc
    _verify_docs(data, str(path), hint)
    return data.decode("utf-8")


def _verify_docs(data: bytes, where: str, hint: str = "") -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != DOCS_SHA256:
        raise SystemExit(
            f"{where}: SHA-256 {digest} is not that of {DOCS_PATH} at PyTorch commit "
            f"{DOCS_COMMIT} ({DOCS_SHA256}){hint}"
        )


def obtain_docs(explicit: Path | None = None, *, download: bool = True) -> Path:
    """The file holding the pinned notes: ``explicit`` (``--docs``) if given, else the cached
    copy (:func:`docs_cache_path`), else (``download``) the file fetched from :data:`DOCS_URL`
    into the cache — written only once its SHA-256 is the pinned one. Every path returned has
    been checked; :class:`SystemExit` says what went wrong and how to provide the file."""
    if explicit is not None:
        read_docs(explicit)
        return explicit
    cached = docs_cache_path()
    if cached.is_file():
        read_docs(cached, "; remove that file to download it again")
        return cached
    if not download:
        raise SystemExit(f"the stable-ABI notes are not in the cache ({cached})")
    try:
        with urllib.request.urlopen(DOCS_URL, timeout=_DOWNLOAD_TIMEOUT) as response:
            data: bytes = response.read()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SystemExit(
            f"cannot download PyTorch's stable-ABI notes from {DOCS_URL}: {reason}\n"
            f"Fetch that file where there is network access and either pass it with "
            f"--docs FILE or copy it to {cached} (its SHA-256 must be {DOCS_SHA256})."
        ) from exc
    _verify_docs(data, DOCS_URL)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f"{cached.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(cached)
    return cached


def build_table(
    releases: Sequence[ReleaseHeaders],
    docs: str,
    shims: dict[str, dict[str, object]],
    header_only: Iterable[str] = (),
) -> tuple[dict[str, object], list[str]]:
    """The replacements table from the releases (oldest first, the last with libtorch headers
    read), the notes and the stable-ABI table's shims; and the statements dropped."""
    newest = releases[-1]
    stable, libtorch = NameIndex(), NameIndex()
    operators: dict[str, str] = {}
    for release in releases:
        stable.add(release.version, release.stable)
        libtorch.add(release.version, release.libtorch)
        operators.update(release.operators)
    statements, rules = docs_statements(docs, f"pytorch@{DOCS_COMMIT[:12]}")
    statements += header_statements(newest.stable, f"torch {newest.version}")
    statements += similar_macro_statements(rules, stable, libtorch)
    skip = set(header_only)
    named = [s for s in statements if not s.operator and s.libtorch.strip("`") not in skip]
    resolved, rejected = resolve_statements(named, stable, libtorch)
    resolved = [r for r in resolved if r.entity not in skip]
    entities, macros = entity_entries(resolved, stable, libtorch, shims)
    # Header-only names never make a library unstable: they need no entry.
    entities = {
        name: entry
        for name, entry in entities.items()
        if not any(name == h or name.startswith(h + "::") for h in skip)
    }
    table: dict[str, object] = {
        "format": FORMAT_VERSION,
        "generated_by": GENERATED_BY,
        "generated_on": dt.date.today().isoformat(),
        "notes": NOTES,
        "sources": {
            "docs": {"file": DOCS_PATH, "commit": DOCS_COMMIT, "sha256": DOCS_SHA256},
            "releases": [
                {"version": r.version, "wheel": r.wheel, "sha256": r.sha256} for r in releases
            ],
        },
        "rules": rule_entries(rules, shims),
        "entities": dict(sorted(entities.items())),
        "macros": dict(sorted(macros.items())),
        "operators": operator_entries(releases, operators, stable),
        "aten_operators": dict(sorted(operators.items())),
    }
    return table, rejected


NOTES = (
    "entities: libtorch entity (as the symbol rules read it from a mangled name) -> replacement "
    "(null: PyTorch documents none yet), since = the first release read whose stable headers "
    "declare the replacement (not older than its TORCH_FEATURE_VERSION guard; a shim's since in "
    "torch_stable_abi.json; null for std:: names), source = the line PyTorch says so on; via = "
    "the libtorch macros that expand to the entity (expansion: where the first is defined). "
    "macros: libtorch macro -> replacement. operators: ATen operator -> torch::stable function. "
    "aten_operators: at::_ops struct -> operator. rules: where the notes state the rules for "
    "ATen functions, Tensor methods, the C shims of ATen operators and torch_call_dispatcher. "
    "Do not edit: re-run scripts/generate_replacements.py."
)


def _summary(table: dict[str, object], rejected: Sequence[str]) -> str:
    entities = table["entities"]
    assert isinstance(entities, dict)
    replaced = sum(1 for e in entities.values() if e["replacement"])
    counts = {key: len(value) for key, value in table.items() if isinstance(value, dict)}
    lines = [
        f"{len(entities)} entities ({replaced} with a replacement), {counts['macros']} macros, "
        f"{counts['operators']} operators with a torch::stable function, "
        f"{counts['aten_operators']} ATen operators",
        f"{len(rejected)} statements name nothing the headers declare:",
        *(f"  {line}" for line in rejected),
    ]
    return "\n".join(lines)


def _release_sources(args: argparse.Namespace) -> list[Path]:
    if args.torch is not None:
        return [args.torch.resolve()]
    table = json.loads(STABLE_TABLE.read_text(encoding="utf-8"))
    versions = [r["version"] for r in table["releases"]]
    if args.releases:
        versions = args.releases.split(",")
    return [fetch_release_wheel(version, args.cache) for version in versions]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--torch", type=Path, help="one torch package directory or wheel")
    parser.add_argument(
        "--releases", help="comma-separated releases (default: those of torch_stable_abi.json)"
    )
    parser.add_argument("--cache", type=Path, default=default_cache(), help="wheel cache")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--docs",
        type=Path,
        help=f"PyTorch's {DOCS_PATH} at commit {DOCS_COMMIT[:12]} (default: the cached copy, "
        "downloaded into the cache when missing)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the output would change (2 if the notes cannot be had)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="list dropped statements")
    args = parser.parse_args(argv)
    try:
        docs = read_docs(obtain_docs(args.docs))
    except SystemExit as exc:  # an operational problem, not an out-of-date table
        print(exc, file=sys.stderr)
        return 2
    sources = _release_sources(args)
    releases = []
    for index, source in enumerate(sources):
        with open_release(source) as files:
            releases.append(read_release_headers(files, with_libtorch=True))
        print(f"read {releases[-1].version} ({index + 1}/{len(sources)})", file=sys.stderr)
    stable_table = json.loads(STABLE_TABLE.read_text(encoding="utf-8"))
    table, rejected = build_table(
        releases, docs, stable_table["shims"], stable_table["header_only"]
    )
    return check_or_write(
        args.output,
        render(table),
        check=args.check,
        versions=[r.version for r in releases],
        summary=_summary(table, rejected if args.verbose else []),
        script=Path(__file__).name,
    )


if __name__ == "__main__":
    raise SystemExit(main())
