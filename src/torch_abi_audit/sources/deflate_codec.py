"""The deflate decoder wheel members are read with: zlib-ng's where it is installed, else zlib's.

Inflating is most of the work of auditing a large wheel. zlib-ng (through the ``zlib-ng``
package, installed with this tool where it ships wheels: Linux, macOS and Windows on x86-64
and ARM64, CPython 3.11-3.14) inflates the same streams 1.1-1.6x faster than the standard
library's zlib (a CUDA library's fatbins and symbol tables: 1.1-1.3x; dense machine code
1.5-1.6x), and computes CRC-32 faster. Both are RFC 1951 decoders behind the same Python API
(``decompressobj`` with a preset dictionary, ``copy``, ``unconsumed_tail``, ``unused_data``,
``eof``, ``crc32``), produce the same bytes and refuse the same streams; the tests of
:mod:`torch_abi_audit.sources.deflate_seek` and of wheel reads run with each. Without the
package (another machine, another interpreter), the standard library's is used; a test runs
the command in an interpreter where ``zlib_ng`` cannot be imported and compares its report
(``tests/sources/test_deflate_codec.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same API: type-check against the standard library's
    import zlib
else:
    try:
        from zlib_ng import zlib_ng as zlib

        zlib.decompressobj().copy  # noqa: B018 - the seeker copies decoders (zlib-ng >= 1.0)
    except (ImportError, AttributeError):  # pragma: no cover - tested in a subprocess
        import zlib

#: Which decoder this process uses, for the record (``zlib-ng 2.3.3``, ``zlib 1.3.1``).
DECODER = (
    f"zlib-ng {getattr(zlib, 'ZLIBNG_VERSION', '')}".strip()
    if zlib.__name__ != "zlib"
    else f"zlib {zlib.ZLIB_RUNTIME_VERSION}"
)

__all__ = ["DECODER", "zlib"]
