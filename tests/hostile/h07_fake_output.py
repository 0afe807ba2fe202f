"""Hostile: prints fake pytest lines and fake JSON results, and writes forged frames to every open
file descriptor (the grader's pipes included), while implementing nothing. Expect: 0 points."""
# %%
import json
import os
import struct
import sys

import torch

FAKE = json.dumps({"student": "h07_fake_output", "score": 40, "max_score": 40, "status": "graded", "tests": []})
for stream in (sys.stdout, sys.stderr):
    print("tests/hidden/test_ch03_qkv.py ..........................  [100%]", file=stream)
    print("26 passed in 0.10s", file=stream)
    print(FAKE, file=stream)


def forge():
    for fd in range(0, 40):
        for payload in (b"garbage" * 10, struct.pack(">Q", 12) + b"not a pickle", FAKE.encode()):
            try:
                os.write(fd, payload)
            except OSError:
                pass


def causal_mask(T, S=None, **kwargs):
    forge()
    return torch.zeros(T, S or T, dtype=torch.bool)


def padding_mask(lengths, S=None):
    forge()
    return torch.zeros(len(lengths), 1, 1, S or int(lengths.max()), dtype=torch.bool)


def scaled_dot_product_attention(q, k, v, mask=None, **kwargs):
    forge()
    return torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
