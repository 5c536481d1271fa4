"""Files shipped inside the package (``data/``, ``schema/``), read without ``importlib.resources``.

``importlib.resources`` costs an audit ~6 ms of start-up (it imports ``tempfile``, ``shutil``
and more) to read a few files that lie next to this module. They are read from the package's
directory, and through ``importlib.resources`` only when the package does not lie in one (a
zip archive on ``sys.path``).
"""

from __future__ import annotations

from pathlib import Path


def read_bytes(*parts: str) -> bytes:
    """The bytes of the shipped file ``parts`` (``"data", "torch_stable_abi.json"``).

    Raises :class:`OSError` when there is no such file.
    """
    try:
        return Path(__file__).parent.joinpath(*parts).read_bytes()
    except OSError:
        from importlib.resources import files

        return files("torch_abi_audit").joinpath(*parts).read_bytes()


def read_text(*parts: str) -> str:
    """The shipped file ``parts`` as UTF-8 text. Raises :class:`OSError` (missing) and
    :class:`UnicodeDecodeError`."""
    return read_bytes(*parts).decode("utf-8")
