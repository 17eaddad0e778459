"""A small Parquet writer in the standard library, for `multiplt score` in the sandbox image.

The `exec` extra (the image that executes and scores) carries no polars or pyarrow, yet score
writes its per-problem table as Parquet. Such a table is tiny and flat, so one row group with one
uncompressed, PLAIN-encoded data page per column is all it needs. Columns are nullable strings
(UTF-8), 64-bit integers or doubles. Layout and field numbers follow the Parquet format
specification (parquet.thrift), serialized with Thrift's compact protocol.
"""

from __future__ import annotations

import struct

MAGIC = b"PAR1"
# parquet.thrift enums
_TYPE = {"int64": 2, "double": 5, "string": 6}   # INT64, DOUBLE, BYTE_ARRAY
_OPTIONAL, _UTF8, _PLAIN, _RLE, _DATA_PAGE, _UNCOMPRESSED = 1, 0, 0, 3, 0, 0
# Thrift compact protocol field types
_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12


def write_table(columns: list[tuple[str, str, list]]) -> bytes:
    """Parquet bytes of a table given as [(name, "string"|"int64"|"double", values)], where a
    value may be None. All columns must have the same length."""
    rows = len(columns[0][2]) if columns else 0
    if any(len(values) != rows for _, _, values in columns):
        raise ValueError("all columns must have the same number of values")
    out = bytearray(MAGIC)
    chunks = []
    for name, kind, values in columns:
        page = _levels([v is not None for v in values]) + _plain(kind, [v for v in values if v is not None])
        header = _struct([(1, _I32, _DATA_PAGE), (2, _I32, len(page)), (3, _I32, len(page)),
                          (5, _STRUCT, [(1, _I32, rows), (2, _I32, _PLAIN), (3, _I32, _RLE),
                                        (4, _I32, _RLE)])])
        offset = len(out)
        out += header + page
        size = len(header) + len(page)
        chunks.append([(2, _I64, offset),
                       (3, _STRUCT, [(1, _I32, _TYPE[kind]), (2, _LIST, (_I32, [_PLAIN, _RLE])),
                                     (3, _LIST, (_BINARY, [name])), (4, _I32, _UNCOMPRESSED),
                                     (5, _I64, rows), (6, _I64, size), (7, _I64, size),
                                     (9, _I64, offset)])])
    schema = [[(4, _BINARY, "schema"), (5, _I32, len(columns))]]
    for name, kind, _ in columns:
        element = [(1, _I32, _TYPE[kind]), (3, _I32, _OPTIONAL), (4, _BINARY, name)]
        if kind == "string":
            element.append((6, _I32, _UTF8))
        schema.append(element)
    row_group = [(1, _LIST, (_STRUCT, chunks)), (2, _I64, len(out) - len(MAGIC)), (3, _I64, rows)]
    meta = _struct([(1, _I32, 1), (2, _LIST, (_STRUCT, schema)), (3, _I64, rows),
                    (4, _LIST, (_STRUCT, [row_group])), (6, _BINARY, "multiplt")])
    out += meta + struct.pack("<I", len(meta)) + MAGIC
    return bytes(out)


# ---- page contents -------------------------------------------------------------------------------
def _levels(present: list[bool]) -> bytes:
    """Definition levels (1 = value, 0 = null) in the RLE hybrid encoding, bit width 1, as runs,
    prefixed by their byte length."""
    body = bytearray()
    i = 0
    while i < len(present):
        j = i
        while j < len(present) and present[j] == present[i]:
            j += 1
        body += _uvarint((j - i) << 1) + bytes([int(present[i])])
        i = j
    return struct.pack("<I", len(body)) + body


def _plain(kind: str, values: list) -> bytes:
    if kind == "int64":
        return struct.pack(f"<{len(values)}q", *values)
    if kind == "double":
        return struct.pack(f"<{len(values)}d", *values)
    out = bytearray()
    for v in values:
        data = str(v).encode("utf-8")
        out += struct.pack("<I", len(data)) + data
    return bytes(out)


# ---- Thrift compact protocol ---------------------------------------------------------------------
def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _zigzag(n: int) -> bytes:
    return _uvarint((n << 1) ^ (n >> 63))


def _value(ftype: int, value) -> bytes:
    if ftype in (_I32, _I64):
        return _zigzag(value)
    if ftype == _BINARY:
        data = value.encode("utf-8") if isinstance(value, str) else value
        return _uvarint(len(data)) + data
    if ftype == _STRUCT:
        return _struct(value)
    if ftype == _LIST:
        etype, items = value
        head = bytes([(len(items) << 4) | etype]) if len(items) < 15 else \
            bytes([0xF0 | etype]) + _uvarint(len(items))
        return head + b"".join(_value(etype, item) for item in items)
    raise ValueError(f"unsupported thrift type {ftype}")


def _struct(fields: list[tuple[int, int, object]]) -> bytes:
    """Fields (id, type, value) in increasing id order, then the stop byte."""
    out = bytearray()
    last = 0
    for fid, ftype, value in fields:
        delta = fid - last
        out += bytes([(delta << 4) | ftype]) if 0 < delta <= 15 else bytes([ftype]) + _zigzag(fid)
        out += _value(ftype, value)
        last = fid
    out.append(0)
    return bytes(out)
