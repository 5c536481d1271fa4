"""METADATA and WHEEL parsing: the fast header reader agrees with packaging's parser."""

from __future__ import annotations

import pytest
from packaging.metadata import parse_email

from torch_abi_audit.sources.metadata import _header_fields, parse_metadata, parse_wheel_file

SAMPLES = [
    b"Metadata-Version: 2.1\nName: torchaudio\nVersion: 2.9.1\nRequires-Dist: torch==2.9.1\n\nbody",
    b"Metadata-Version: 2.4\r\nName: Foo_Bar\r\nVersion: 1.0rc1\r\n"
    b"Requires-Dist: torch>=2.11; extra == 'gpu'\r\nRequires-Dist: numpy\r\n\r\nDescription",
    b"Metadata-Version: 2.1\nName: x\nVersion: 1\nSummary: folded\n  over two lines\n"
    b"Requires-Dist: torch (>=2.0)\n",
    b"Metadata-Version: 2.1\nName: caf\xc3\xa9\nVersion: 3\n",
]


@pytest.mark.parametrize("raw", SAMPLES)
def test_fast_reader_agrees_with_packaging(raw: bytes) -> None:
    ours = parse_metadata(raw)
    reference, _ = parse_email(raw.split(b"\n\n")[0].split(b"\r\n\r\n")[0])
    assert ours.name == reference["name"]
    assert ours.version == str(reference["version"])
    assert list(ours.requires_dist) == reference.get("requires_dist", [])


def test_unusual_input_falls_back_to_packaging() -> None:
    encoded = b"Metadata-Version: 2.1\nName: =?utf-8?q?caf=C3=A9?=\nVersion: 1\n"
    assert _header_fields(encoded) is None
    assert parse_metadata(encoded).version == "1"
    latin1 = b"Metadata-Version: 2.1\nName: caf\xe9\nVersion: 1\n"
    assert _header_fields(latin1) is None
    with pytest.raises(ValueError, match="Name or Version"):
        parse_metadata(b"Metadata-Version: 2.1\nSummary: nothing\n")


def test_torch_requirements_ignore_extras_and_other_names() -> None:
    metadata = parse_metadata(
        b"Name: p\nVersion: 1\nRequires-Dist: torch>=2.9\nRequires-Dist: torchvision\n"
        b"Requires-Dist: torch==2.10; extra == 'pin'\nRequires-Dist: Torch ; python_version>'3'\n"
    )
    assert metadata.torch_requirements == ("torch>=2.9", "Torch ; python_version>'3'")


@pytest.mark.parametrize(
    ("requires", "may"),
    [
        ((), False),
        (("numpy>=1.26", "torchvision", "pytorch-lightning"), False),
        (("torch>=2.9",), True),
        (("Torch ; python_version>'3'",), True),
        (("torch==2.10; extra == 'pin'",), True),  # names torch, with an extra: parsed to tell
        (("torch >= nonsense",), True),  # invalid: parsed to tell (invalid_torch_requirements)
    ],
)
def test_may_require_torch_whenever_the_parser_is_needed(
    requires: tuple[str, ...], may: bool
) -> None:
    """``may_require_torch`` says when judging needs the requirement parser (which is then
    loaded while the workers read libraries): it is true whenever an entry could be a torch
    requirement, valid or not."""
    raw = b"Name: p\nVersion: 1\n" + b"".join(
        b"Requires-Dist: " + r.encode() + b"\n" for r in requires
    )
    metadata = parse_metadata(raw)
    assert metadata.may_require_torch is may
    if metadata.torch_requirements or metadata.invalid_torch_requirements:
        assert metadata.may_require_torch


def test_wheel_file() -> None:
    tags, purelib = parse_wheel_file(
        b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n"
        b"Tag: cp311-cp311-manylinux_2_28_x86_64\n"
    )
    assert tags == ("cp311-cp311-linux_x86_64", "cp311-cp311-manylinux_2_28_x86_64")
    assert purelib is False
