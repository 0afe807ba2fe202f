"""Models that hidden tests have built inside the implementation's process: ``obj_spec("fixture:NAME", ...)``.

A test sometimes needs a model with a property no chapter's interface produces, such as one matrix
shared by two modules. The fixtures use only ``torch``, so they build whatever chapter is stubbed.
The grader builds the same fixture from the same seed to know what to expect; a submission that
tampers with them changes only its own answers, which then disagree with the grader's.
"""
from __future__ import annotations

from torch import nn

__all__ = ["PREFIX", "FIXTURES", "TiedLM"]

PREFIX = "fixture:"


class TiedLM(nn.Module):
    """Token embedding, a norm and an output head that reuses the embedding's matrix (as GPT-2 ties them).

    ``lm_head.weight`` *is* ``tok_emb.weight``: one parameter reachable from two modules.
    """

    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight


FIXTURES: dict[str, type[nn.Module]] = {"tied_lm": TiedLM}
