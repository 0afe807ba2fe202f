"""Chapter 6: character and byte tokenizers for the language model."""
import json
import random

import pytest
import torch

from tfmcourse.data import stdlib_corpus
from tfmcourse.tokenizer import ByteTokenizer, CharTokenizer, tokenizer_from_state_dict

pytestmark = pytest.mark.ch06

SAMPLES = ["hello world", "", "naïve café — ünïcödé ✓ 漢字 🙂", "tabs\tand\nnewlines\r\n", "a" * 1000]


def test_char_vocab_is_sorted_distinct_characters():
    tok = CharTokenizer.from_text("banana band")
    assert tok.chars == [" ", "a", "b", "d", "n"] and tok.vocab_size == 5
    assert tok.encode("band") == [2, 1, 4, 3]
    assert CharTokenizer.from_text("nab ad").chars == tok.chars  # depends on the set only


def test_char_round_trip_on_random_and_real_text():
    text = "".join(SAMPLES)
    tok = CharTokenizer.from_text(text)
    for s in SAMPLES:
        assert tok.decode(tok.encode(s)) == s
    rng = random.Random(0)
    for _ in range(50):
        s = "".join(rng.choices(tok.chars, k=rng.randint(0, 40)))
        assert tok.decode(tok.encode(s)) == s
    corpus = stdlib_corpus(50_000)
    tok = CharTokenizer.from_text(corpus)
    ids = tok.encode(corpus)
    assert max(ids) == tok.vocab_size - 1 and min(ids) == 0
    assert tok.decode(torch.tensor(ids)) == corpus


def test_char_unknown_character_is_a_clear_error():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"'z'.*position 2.*ByteTokenizer"):
        tok.encode("abzz")
    with pytest.raises(ValueError, match="outside"):
        tok.decode([3])
    with pytest.raises(ValueError, match="outside"):
        tok.decode([-1])
    with pytest.raises(ValueError, match="one sequence"):
        tok.decode(torch.zeros(2, 2, dtype=torch.long))


def test_char_bad_construction():
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_text("")
    with pytest.raises(ValueError, match="twice"):
        CharTokenizer(["a", "b", "a"])
    with pytest.raises(ValueError, match="single character"):
        CharTokenizer(["ab"])


def test_state_dicts_are_json_and_rebuild_equal_tokenizers():
    tok = CharTokenizer.from_text("".join(SAMPLES))
    state = json.loads(json.dumps(tok.state_dict()))  # survives JSON unchanged
    assert state == tok.state_dict()
    back = CharTokenizer.from_state_dict(state)
    assert back == tok and back.encode(SAMPLES[2]) == tok.encode(SAMPLES[2])
    assert tokenizer_from_state_dict(state) == tok
    byte = ByteTokenizer()
    assert tokenizer_from_state_dict(json.loads(json.dumps(byte.state_dict()))) == byte
    with pytest.raises(ValueError, match="kind"):
        tokenizer_from_state_dict({"kind": "bpe"})
    with pytest.raises(ValueError, match="CharTokenizer"):
        CharTokenizer.from_state_dict(byte.state_dict())


def test_byte_tokenizer_is_lossless_utf8():
    tok = ByteTokenizer()
    assert tok.vocab_size == 256
    for s in SAMPLES:
        ids = tok.encode(s)
        assert ids == list(s.encode("utf-8")) and all(0 <= i < 256 for i in ids)
        assert tok.decode(ids) == s
    assert len(tok.encode("é")) == 2 and len(tok.encode("🙂")) == 4
    rng = random.Random(1)
    for _ in range(50):  # random code points across the planes (no surrogates)
        s = "".join(chr(rng.choice([rng.randint(32, 0xD7FF), rng.randint(0xE000, 0x10FFFF)])) for _ in range(20))
        assert tok.decode(torch.tensor(tok.encode(s))) == s


def test_byte_decode_of_invalid_utf8_does_not_crash():
    tok = ByteTokenizer()
    assert tok.decode([104, 105, 0xFF]) == "hi\ufffd"  # a sampled model may emit such bytes
    with pytest.raises(ValueError, match="not a byte"):
        tok.decode([256])
    with pytest.raises(ValueError, match="UTF-8"):
        tok.encode("bad \udc80 surrogate")
