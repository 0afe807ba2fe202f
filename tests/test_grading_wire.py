"""The wire format: data round-trips; every crafted reply is refused before anything big is allocated.

A worker is the student's process: it can send any bytes. Each generator below builds a class of
replies that are cheap to send but would be expensive to materialise (or to decode) if trusted.
"""
from __future__ import annotations

import os
import struct
import threading
import time
import tracemalloc

import pytest
import torch

from tfmcourse.grading.wire import Ref, WireLimits, dumps, loads, read_frame, write_frame

U32, I64 = struct.Struct(">I"), struct.Struct(">q")


def test_plain_data_round_trips():
    value = {"t": torch.ones(2, dtype=torch.bfloat16), "d": torch.float64, "x": [1, 2.5, None, True, 2**70, "é"],
             "r": Ref("cache"), "scalar": torch.tensor(3.0), "b": torch.tensor([True, False]), 3: (1, 2),
             "c": torch.randn(2, 3, dtype=torch.complex64), "empty": torch.empty(0, 3),
             "strided": torch.arange(20.0).reshape(4, 5).t(), "expanded": torch.zeros(1).expand(6)}
    back = loads(dumps(value))
    assert back["d"] is torch.float64 and back["r"] == Ref("cache") and back[3] == (1, 2) and back["x"][4] == 2**70
    for k in ("t", "scalar", "b", "c", "empty", "strided", "expanded"):
        assert back[k].dtype == value[k].dtype and torch.equal(back[k], value[k]), k
        assert back[k].is_contiguous()


def test_objects_that_are_not_data_become_notes():
    class Evil:
        def __reduce__(self):  # what a pickle-based format would run
            return (print, ("pwned",))
    back = loads(dumps({"e": Evil(), "sparse": torch.eye(3).to_sparse(), "meta": torch.empty(2, device="meta")}))
    assert back["e"] == {"__object__": "Evil"}
    assert "cannot be sent" in back["sparse"]["__object__"] and "cannot be sent" in back["meta"]["__object__"]
    deep: list = [1]
    for _ in range(30):
        deep = [deep]
    back = loads(dumps(deep))
    for _ in range(21):
        back = back[0]
    assert back == {"__object__": "too deeply nested"}


def _tensor_header(numel_shape: list[int], dtype_code: int = 0) -> bytes:
    return b"X" + bytes([dtype_code, len(numel_shape)]) + b"".join(I64.pack(s) for s in numel_shape)


# Each crafted message: (what it claims, bytes). None of them may decode.
CRAFTED = {
    "stride-0 style: 2**32 float64 elements announced, 8 bytes sent": _tensor_header([2**32]) + b"\0" * 8,
    "2**62 elements across dims (overflow bait)": _tensor_header([2**31, 2**31]) + b"\0" * 64,
    "negative size": _tensor_header([-1]),
    "17 dimensions": _tensor_header([1] * 17),
    "unknown dtype": _tensor_header([1], 200) + b"\0" * 8,
    "a list claiming 10**8 items": b"l" + U32.pack(10**8) + b"N" * 16,
    "a dict claiming 10**8 pairs": b"d" + U32.pack(10**8) + b"s" + U32.pack(1) + b"k" + b"N",
    "a string claiming 4 GiB": b"s" + U32.pack(2**32 - 1) + b"abc",
    "nested 10**5 deep": b"l\0\0\0\1" * 10**5 + b"N",
    "an integer of 10**5 digits": b"L" + U32.pack(10**5) + b"9" * 10**5,
    "a dict with a list as key": b"d" + U32.pack(1) + b"l" + U32.pack(0) + b"N",
    "trailing bytes": b"N" * 2,
    "unknown tag": b"Z",
    "truncated": b"i\0\0",
    "invalid UTF-8": b"s" + U32.pack(2) + b"\xff\xfe",
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_messages_are_refused_without_allocating(name):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            loads(CRAFTED[name])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20 + 4 * len(CRAFTED[name]), f"{name}: {peak} bytes allocated while refusing it"


def test_item_budget_counts_every_value():
    many = b"l" + U32.pack(2_000_000) + b"N" * 2_000_000  # 2 MB that would become 2 million Python objects
    with pytest.raises(ValueError, match="values in one message"):
        loads(many)
    assert loads(many, WireLimits(items=3_000_000)) == [None] * 2_000_000


def test_decoding_the_largest_message_is_fast():
    """Decoding is one linear pass: a maximal message of tiny values takes well under the request timeout."""
    worst = b"l" + U32.pack(999_999) + b"N" * 999_999
    t0 = time.process_time()
    loads(worst)
    assert time.process_time() - t0 < 5.0


def _pipe_frames(payload: bytes) -> bytes:
    return struct.pack(">Q", len(payload)) + payload


def test_read_frame_refuses_an_oversized_announcement_before_reading():
    r, w = os.pipe()
    try:
        os.write(w, struct.pack(">Q", 2**40))
        with pytest.raises(ValueError, match="more than"):
            read_frame(r, time.monotonic() + 5, WireLimits(frame_bytes=2**20))
    finally:
        os.close(r)
        os.close(w)


def test_read_frame_times_out_on_a_slow_trickle():
    r, w = os.pipe()
    try:
        os.write(w, _pipe_frames(dumps("hello"))[:5])  # half a header, then nothing
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            read_frame(r, time.monotonic() + 0.5)
        assert time.monotonic() - t0 < 3
    finally:
        os.close(r)
        os.close(w)


def test_write_frame_has_a_deadline_when_the_reader_stops_reading():
    r, w = os.pipe()
    try:
        big = {"state": torch.zeros(200_000)}  # 1.6 MB: far more than a pipe buffer
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            write_frame(w, big, time.monotonic() + 0.5)
        assert time.monotonic() - t0 < 3
    finally:
        os.close(r)
        os.close(w)


def test_write_and_read_frame_round_trip_through_a_pipe():
    r, w = os.pipe()
    value = {"x": torch.randn(300, 300), "ok": True}
    got: list = []
    reader = threading.Thread(target=lambda: got.append(read_frame(r, time.monotonic() + 10)))
    reader.start()
    write_frame(w, value, time.monotonic() + 10)
    reader.join(10)
    os.close(r)
    os.close(w)
    assert got and torch.equal(got[0]["x"], value["x"]) and got[0]["ok"] is True
