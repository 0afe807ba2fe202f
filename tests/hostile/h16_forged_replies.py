"""Hostile: makes its worker send crafted replies that are cheap to send but huge to decode: a tensor
announcing 2**32 elements with 8 bytes of data (what a stride-0 view would be), a list claiming 10**8
items, nesting 10**5 deep, a frame header announcing 1 TiB. Expect: each refused as garbage before
anything is allocated, the grader unharmed, 0 points."""
# %%
import struct

import tfmcourse.grading.wire as wire

_dumps, _header, sent = wire.dumps, wire._HEADER, [0]
CRAFTED = [b"X\x00\x01" + struct.pack(">q", 2**32) + b"\0" * 8,  # 32 GiB announced, 8 bytes sent
           b"l" + struct.pack(">I", 10**8) + b"N" * 16,  # a list claiming 10**8 items
           b"l\0\0\0\1" * 10**5 + b"N",  # nested 10**5 deep
           None]  # the real reply, behind a frame header announcing 1 TiB


def is_reply(obj):
    return isinstance(obj, dict) and "id" in obj and not (isinstance(obj.get("value"), dict) and "kinds" in obj["value"])


def forged_dumps(obj):
    if not is_reply(obj):
        return _dumps(obj)
    sent[0] += 1
    crafted = CRAFTED[sent[0] % len(CRAFTED)]
    if crafted is None:
        return _dumps(obj)
    return (b"d" + struct.pack(">I", 3) + _dumps("id") + _dumps(obj["id"]) + _dumps("ok") + _dumps(True)
            + _dumps("value") + crafted)


class OneTebibyteHeader:
    size = _header.size

    def pack(self, n):
        return _header.pack(2**40 if sent[0] % len(CRAFTED) == len(CRAFTED) - 1 else n)

    def unpack(self, b):
        return _header.unpack(b)


wire.dumps, wire._HEADER = forged_dumps, OneTebibyteHeader()
