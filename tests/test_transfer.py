"""What a scan spends outside reading libraries: how workers send reports back, the collector
settings of a run, the parent's placing of libraries, the JSON fast path. Each shortcut must
give what the general path gives."""

from __future__ import annotations

import gc
import io
import pickle
from dataclasses import replace
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import pytest

from helpers.build import Fixtures
from torch_abi_audit import cli, engine
from torch_abi_audit.audit import _inside
from torch_abi_audit.cli import main
from torch_abi_audit.engine import _SENT_CLASSES, _plain_state, inspect_extension
from torch_abi_audit.renderers.json_report import dumps
from torch_abi_audit.report import ExtensionReport, SliceReport


def _reports(built: Fixtures) -> list[ExtensionReport]:
    paths = [built.unstable_lib, built.signature_lib, built.abi3_ext, built.stable_plugin]
    reports = [inspect_extension(path) for path in paths]
    part = reports[0]
    # A slice too (the fixtures are thin ELF files): the universal binary's part of a report.
    sliced = replace(part, slices=(SliceReport("arm64", "11.0", part.torch, part.cpython),))
    return [*reports, sliced]


def test_reports_pickle_to_the_same_bytes_as_by_default(built: Fixtures) -> None:
    reports = _reports(built)
    assert any(r.torch.unstable_details for r in reports)
    default = io.BytesIO()
    pickle.Pickler(default, pickle.DEFAULT_PROTOCOL).dump(reports)
    plain = io.BytesIO()
    pickler = pickle.Pickler(plain, pickle.DEFAULT_PROTOCOL)
    pickler.dispatch_table = dict.fromkeys(_SENT_CLASSES, _plain_state)
    pickler.dump(reports)
    assert plain.getvalue() == default.getvalue()
    assert pickle.loads(plain.getvalue()) == reports


def test_sent_classes_are_plain_dataclasses() -> None:
    # _plain_state sends __dict__: a class with __slots__ or derived state would lose it.
    for cls in _SENT_CLASSES:
        assert not hasattr(cls, "__slots__"), cls
        assert not hasattr(cls, "__post_init__"), cls


def test_a_worker_sends_reports_plainly(built: Fixtures) -> None:
    reducers: dict[type, object] = ForkingPickler._extra_reducers  # type: ignore[attr-defined]
    saved = dict(reducers)
    try:
        engine._send_reports_plainly()
        reports = _reports(built)
        assert bytes(ForkingPickler.dumps(reports)) == pickle.dumps(reports)
    finally:
        reducers.clear()
        reducers.update(saved)


@pytest.mark.parametrize(
    ("path", "base", "inside"),
    [
        ("/site/torch/lib/libc10.so", "/site", "torch/lib/libc10.so"),
        ("/site/pkg.data/platlib/pkg/_x.so", "/site", "pkg/_x.so"),
        ("/site-other/x.so", "/site", "x.so"),  # a sibling whose name starts alike
        ("/elsewhere/y.so", "/site", "y.so"),
        ("/z.so", "/", "z.so"),
        ("/site", "/site", "."),
    ],
)
def test_inside_is_relative_to(path: str, base: str, inside: str) -> None:
    assert _inside(Path(path), Path(base)) == inside
    try:
        expected = Path(path).relative_to(base).as_posix()
    except ValueError:
        expected = Path(path).name
    assert _inside(Path(path), Path(base)) == expected.replace("pkg.data/platlib/", "")


def test_json_without_anything_to_escape_is_the_encoder_output() -> None:
    document = {"path": "/site/lib.so", "n": [1, None, True]}
    assert dumps(document, pretty=False) == '{"path":"/site/lib.so","n":[1,null,true]}'
    # DEL is ASCII, but still escaped.
    assert dumps({"path": "lib\x7f.so"}, pretty=False) == '{"path":"lib\\u007f.so"}'


def test_a_run_restores_the_collector_thresholds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = gc.get_threshold()
    during: list[tuple[int, int, int]] = []

    def tune() -> tuple[int, int, int]:
        previous = engine.tune_collector()
        during.append(gc.get_threshold())
        return previous

    monkeypatch.setattr(cli, "tune_collector", tune)
    main([str(tmp_path / "missing"), "--json", "-q"])
    assert during == [(engine.COLLECTOR_THRESHOLD, 30, 30)]
    assert gc.get_threshold() == before
