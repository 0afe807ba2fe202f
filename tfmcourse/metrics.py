"""Scores for the trained models: token and sequence accuracy, perplexity, and BLEU.

All of them skip positions whose target is ``ignore_index`` (``-100``, the padding of the targets
made by :func:`tfmcourse.data.collate_seq2seq`), and return Python floats.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["accuracy", "sequence_accuracy", "perplexity", "corpus_bleu", "ngram_counts"]


def _predictions(logits_or_preds: Tensor, targets: Tensor) -> Tensor:
    """Logits ``(*, V)`` become their argmax ``(*)``; predicted ids pass through."""
    if logits_or_preds.dim() == targets.dim() + 1:
        return logits_or_preds.argmax(-1)
    if logits_or_preds.is_floating_point():
        raise ValueError(f"got float predictions of shape {tuple(logits_or_preds.shape)} for targets of shape "
                         f"{tuple(targets.shape)}: pass logits with one extra (class) dimension, or integer ids")
    return logits_or_preds


def accuracy(logits_or_preds: Tensor, targets: Tensor, ignore_index: int = -100) -> float:
    """Fraction of the non-ignored positions whose prediction equals the target.

    Args:
        logits_or_preds: logits ``(*, V)`` (the argmax is taken) or predicted ids ``(*)``.
        targets: ids ``(*)``; positions equal to ``ignore_index`` do not count.
    """
    preds = _predictions(logits_or_preds, targets)
    if preds.shape != targets.shape:
        raise ValueError(f"predictions of shape {tuple(preds.shape)} do not match targets {tuple(targets.shape)}")
    keep = targets != ignore_index
    n = int(keep.sum())
    if n == 0:
        raise ValueError("no positions to score: every target equals ignore_index")
    return int(((preds == targets) & keep).sum()) / n


def sequence_accuracy(preds: Tensor, targets: Tensor, ignore_index: int = -100) -> float:
    """Fraction of sequences (rows) in which *every* non-ignored position is right: exact match.

    ``preds`` may be logits ``(B, T, V)`` or ids ``(B, T')``. Generated ids can be shorter or longer
    than the targets: a missing position counts as wrong, an extra one is ignored (the targets carry
    ``ignore_index`` after their EOS, so what a model writes after its EOS does not matter).
    Rows whose targets are all ``ignore_index`` are left out.
    """
    preds = _predictions(preds, targets)
    if preds.dim() != 2 or targets.dim() != 2 or preds.size(0) != targets.size(0):
        raise ValueError(f"expected (B, T) predictions and targets, got {tuple(preds.shape)} and "
                         f"{tuple(targets.shape)}")
    T = targets.size(1)
    if preds.size(1) < T:  # pad with a value no target has, so missing positions count as wrong
        fill = preds.new_full((preds.size(0), T - preds.size(1)), ignore_index)
        preds = torch.cat([preds, fill], dim=1)
    preds = preds[:, :T].to(targets.device)
    keep = targets != ignore_index  # (B, T)
    rows = keep.any(dim=1)  # (B,)
    if not bool(rows.any()):
        raise ValueError("no sequences to score: every target equals ignore_index")
    right = ((preds == targets) | ~keep).all(dim=1)  # (B,)
    return int((right & rows).sum()) / int(rows.sum())


def perplexity(mean_loss: float | Tensor) -> float:
    """``exp(mean cross-entropy)``, the cross-entropy being in nats (PyTorch's natural log).

    A perplexity of ``k`` means the model is as unsure as a uniform choice among ``k`` tokens; a model
    that always guesses uniformly over ``V`` tokens has loss ``log V`` and perplexity ``V``.
    Overflows to ``inf`` for huge losses.
    """
    loss = float(mean_loss)
    if loss < 0:
        raise ValueError(f"a cross-entropy is never negative, got {loss}")
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    """How often each n-gram (a tuple of ``n`` tokens) occurs in ``tokens``."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


Tokens = Sequence[str]


def _as_reference_lists(references: Sequence, n_hyp: int) -> list[list[Tokens]]:
    if len(references) != n_hyp:
        raise ValueError(f"{n_hyp} hypotheses but {len(references)} references: give one entry per hypothesis")
    out = []
    for refs in references:
        if isinstance(refs, str):
            raise ValueError("references must be lists of tokens, not strings; split them first, e.g. s.split()")
        # a list of tokens is one reference, a list of token lists several alternatives
        out.append([refs] if len(refs) == 0 or isinstance(refs[0], str) else list(refs))
    return out


def corpus_bleu(hypotheses: Sequence[Tokens], references: Sequence[Tokens] | Sequence[Sequence[Tokens]],
                max_n: int = 4, smooth: bool = False) -> float:
    """Corpus-level BLEU (Papineni et al., 2002) of tokenised hypotheses against their references.

    For each order ``n = 1..max_n`` the *clipped* (modified) n-gram precision is pooled over the corpus::

        p_n = sum over sentences of sum over n-grams g of min(count_hyp(g), max over refs of count_ref(g))
              ---------------------------------------------------------------------------------------
                         sum over sentences of the number of n-grams in the hypothesis

    Clipping stops "the the the the" from scoring on a reference that has one "the". Precision alone
    rewards short outputs, so a brevity penalty compares the total hypothesis length ``c`` with ``r``,
    the sum of each sentence's reference length closest to its hypothesis (the shorter one on a tie)::

        BP = 1 if c > r else exp(1 - r / c)          BLEU = BP * exp(sum_n log(p_n) / max_n)

    the geometric mean of the precisions with uniform weights. Without smoothing, BLEU is 0 as soon as
    one ``p_n`` is 0; ``smooth=True`` adds one to the numerator and denominator of ``p_n`` for
    ``n >= 2`` (Lin & Och 2004; NLTK's ``method2``), which helps with short sentences.

    Agrees with ``nltk.translate.bleu_score.corpus_bleu`` with uniform weights, except that NLTK counts
    a hypothesis shorter than ``n`` as one n-gram in the denominator; here it adds nothing.

    Args:
        hypotheses: one token list per sentence, e.g. ``[["the", "cat"], ...]``.
        references: per sentence, one token list or a list of alternative token lists.
        max_n: highest n-gram order.
        smooth: apply add-one smoothing to the precisions of order 2 and up.

    Returns:
        BLEU in ``[0, 1]`` (multiply by 100 for the usual reporting scale).
    """
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    if isinstance(hypotheses, str) or any(isinstance(h, str) for h in hypotheses):
        raise ValueError("hypotheses must be lists of tokens, not strings; split them first, e.g. s.split()")
    refs_per_hyp = _as_reference_lists(references, len(hypotheses))
    matches, totals = [0] * max_n, [0] * max_n
    c = r = 0
    for hyp, refs in zip(hypotheses, refs_per_hyp):
        if not refs:
            raise ValueError("every hypothesis needs at least one reference")
        c += len(hyp)
        r += min((len(ref) for ref in refs), key=lambda L: (abs(L - len(hyp)), L))  # closest, shorter on ties
        for n in range(1, max_n + 1):
            hyp_counts = ngram_counts(hyp, n)
            max_ref = Counter()
            for ref in refs:
                max_ref |= ngram_counts(ref, n)  # | keeps the larger count of each n-gram
            matches[n - 1] += sum(min(k, max_ref[g]) for g, k in hyp_counts.items())
            totals[n - 1] += sum(hyp_counts.values())
    if c == 0 or matches[0] == 0:
        return 0.0
    log_p = 0.0
    for n in range(max_n):
        num, den = matches[n], totals[n]
        if smooth and n > 0:
            num, den = num + 1, den + 1
        if num == 0:
            return 0.0
        log_p += math.log(num / den) / max_n
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(log_p)
