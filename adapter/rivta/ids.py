"""Random (version 4) UUIDs as text: the log id of every answer and fault, and correlation ids.

`uuid4()` is `str(uuid.uuid4())`, with the same randomness (os.urandom), read from the OS 4 KiB at a time instead
of 16 bytes per id: the producer makes two ids per call, and the system call and the `uuid.UUID` object cost more
than the rest of making them (bench/producer_throughput.py). Each thread has its own buffer; a forked child drops
what it inherited, so parent and child never hand out the same id.
"""

from __future__ import annotations

import os
import threading

_BUFFER_BYTES = 4096
_local = threading.local()
# The variant (RFC 4122: binary 10xx) in the first hex digit of the fourth group, as uuid.UUID(version=4) sets it.
_VARIANT = {f"{n:x}": f"{8 | (n & 3):x}" for n in range(16)}


def _drop_buffer() -> None:
    _local.__dict__.clear()


os.register_at_fork(after_in_child=_drop_buffer)


def uuid4() -> str:
    """A random UUID as `str(uuid.uuid4())` writes it: 8-4-4-4-12 lower-case hex, version 4, RFC 4122 variant."""
    buffer: bytes | None = getattr(_local, "buffer", None)
    at: int = getattr(_local, "at", _BUFFER_BYTES)
    if buffer is None or at >= _BUFFER_BYTES:
        buffer, at = os.urandom(_BUFFER_BYTES), 0
        _local.buffer = buffer
    _local.at = at + 16
    h = buffer[at:at + 16].hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
