"""The protobuf wire format for the bytes the server writes itself on hot paths (a receipt, a
receipt's log entry): a varint and a length-delimited field, exactly as the generated code writes
them (the tests of each writer compare its bytes with the generated code's)."""

from __future__ import annotations

_UINT64 = (1 << 64) - 1
_SMALL = tuple(bytes((value,)) for value in range(0x80))


def varint(value: int) -> bytes:
    """A varint; a negative ``int32`` or ``int64`` as its 64-bit two's complement (ten bytes)."""
    if 0 <= value < 0x80:
        return _SMALL[value]
    if 0 < value < 1 << 35:  # a time's seconds or nanoseconds, a length: five bytes at most, unrolled
        if value < 1 << 14:
            return bytes((value & 0x7F | 0x80, value >> 7))
        if value < 1 << 21:
            return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
        if value < 1 << 28:
            return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14 & 0x7F | 0x80, value >> 21))
        return bytes(
            (
                value & 0x7F | 0x80,
                value >> 7 & 0x7F | 0x80,
                value >> 14 & 0x7F | 0x80,
                value >> 21 & 0x7F | 0x80,
                value >> 28,
            )
        )
    value &= _UINT64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(key: int, data: bytes) -> bytes:
    """A length-delimited field (``key`` is the field's tag byte)."""
    return b"%c%b%b" % (key, varint(len(data)), data)
