"""Which Python an environment runs, read from the environment itself (nothing is executed).

For the running interpreter that is ``sys.version_info`` and ``Py_GIL_DISABLED``; for another
site-packages it is what its path says (``lib/python3.13t/site-packages``: CPython's layout), or
else the ``pyvenv.cfg`` of the virtual environment holding it (``version = 3.11.7``).
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

from torch_abi_audit.files import MAX_CONFIG_SIZE, read_regular
from torch_abi_audit.python_model import Interpreter

#: The name of CPython's ``lib/python3.X[t]`` directory (to ``fullmatch``): version, ``t``.
LIB_DIR_NAME = re.compile(r"python(3\.\d+)(t?)")
_PYVENV_VERSION = re.compile(r"^\s*version(?:_info)?\s*=\s*(3\.\d+)", re.MULTILINE)


def running_interpreter() -> Interpreter:
    """The interpreter running this process."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Interpreter(version, bool(sysconfig.get_config_var("Py_GIL_DISABLED")))


def site_packages_interpreter(site: Path) -> Interpreter | None:
    """The interpreter a site-packages directory belongs to, if its path or ``pyvenv.cfg``
    says; ``None`` otherwise (no guessing)."""
    for part in reversed(site.parts):
        match = LIB_DIR_NAME.fullmatch(part)
        if match:
            return Interpreter(match.group(1), match.group(2) == "t")
    for parent in list(site.parents)[:3]:
        config = parent / "pyvenv.cfg"
        try:
            text = read_regular(config, MAX_CONFIG_SIZE).decode("utf-8", errors="replace")
        except OSError:  # missing, not a regular file (a FIFO would block), too large
            continue
        match = _PYVENV_VERSION.search(text)
        if match:
            return Interpreter(match.group(1))
    return None
