"""Chapter 6: accuracy, sequence accuracy, perplexity and BLEU."""
import math
import random
import warnings

import pytest
import torch
import torch.nn.functional as F

from tfmcourse.metrics import accuracy, corpus_bleu, ngram_counts, perplexity, sequence_accuracy

pytestmark = pytest.mark.ch06


# ---- accuracy ---------------------------------------------------------------------------------------------

def test_accuracy_by_hand():
    preds = torch.tensor([[1, 2, 3], [4, 5, 6]])
    targets = torch.tensor([[1, 0, 3], [4, 5, -100]])
    assert accuracy(preds, targets) == 4 / 5  # the -100 position does not count
    assert accuracy(preds, targets, ignore_index=0) == 4 / 5  # now 0 is skipped and -100 counts (wrong)
    assert accuracy(preds, torch.tensor([[1, 0, 3], [4, 5, 6]])) == 5 / 6
    logits = F.one_hot(preds, 7).float()  # (B, T, V): argmax gives preds back
    assert accuracy(logits, targets) == 4 / 5
    assert accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), torch.tensor([1, 1, 1])) == 2 / 3


def test_accuracy_errors():
    with pytest.raises(ValueError, match="every target"):
        accuracy(torch.tensor([1, 2]), torch.tensor([-100, -100]))
    with pytest.raises(ValueError, match="do not match"):
        accuracy(torch.tensor([1, 2, 3]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="logits"):
        accuracy(torch.tensor([0.5, 0.2]), torch.tensor([1, 0]))


def test_sequence_accuracy_by_hand():
    targets = torch.tensor([[5, 6, 2, -100], [7, 2, -100, -100], [8, 8, 8, 2], [-100, -100, -100, -100]])
    preds = torch.tensor([[5, 6, 2, 9],      # right (the extra 9 sits on an ignored position)
                          [7, 3, 0, 0],      # one position wrong
                          [8, 8, 8, 2],      # right
                          [1, 1, 1, 1]])     # no targets: left out
    assert sequence_accuracy(preds, targets) == 2 / 3
    assert accuracy(preds[:3], targets[:3]) == 8 / 9  # token accuracy is higher than sequence accuracy
    assert sequence_accuracy(F.one_hot(preds.clamp(min=0), 10).float(), targets) == 2 / 3


def test_sequence_accuracy_aligns_generated_lengths():
    targets = torch.tensor([[5, 6, 2], [7, 2, -100]])
    assert sequence_accuracy(torch.tensor([[5, 6], [7, 2]]), targets) == 1 / 2  # too short: missing EOS
    assert sequence_accuracy(torch.tensor([[5, 6, 2, 0, 0], [7, 2, 0, 4, 4]]), targets) == 1.0  # too long: fine
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        sequence_accuracy(torch.tensor([5, 6, 2]), torch.tensor([5, 6, 2]))
    with pytest.raises(ValueError, match="no sequences"):
        sequence_accuracy(torch.tensor([[1]]), torch.tensor([[-100]]))


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(65)) == pytest.approx(65)  # uniform over 65 characters
    assert perplexity(torch.tensor(2.0)) == pytest.approx(math.e ** 2)
    assert perplexity(1e4) == math.inf
    logits = torch.zeros(10, 50)  # uniform model: perplexity = vocabulary size
    assert perplexity(F.cross_entropy(logits, torch.randint(50, (10,)))) == pytest.approx(50)
    with pytest.raises(ValueError, match="negative"):
        perplexity(-0.5)


# ---- BLEU ---------------------------------------------------------------------------------------------------

def _nltk(hyps, refs, max_n=4, smooth=False):
    """NLTK's corpus BLEU with uniform weights (NLTK is in the ``dev`` extra)."""
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score", reason="needs nltk (pip install 'tfmcourse[dev]')")
    refs = [r if r and isinstance(r[0], list) else [r] for r in refs]
    sm = nltk_bleu.SmoothingFunction().method2 if smooth else None
    with warnings.catch_warnings():  # nltk warns about zero n-gram overlaps; we test that case on purpose
        warnings.simplefilter("ignore", UserWarning)
        return nltk_bleu.corpus_bleu(refs, hyps, weights=(1 / max_n,) * max_n, smoothing_function=sm)


def test_ngram_counts():
    assert ngram_counts("a b a b".split(), 2) == {("a", "b"): 2, ("b", "a"): 1}
    assert ngram_counts(["a"], 2) == {}


def test_bleu_by_hand():
    ref = "the cat is on the mat".split()
    assert corpus_bleu([ref], [ref]) == pytest.approx(1.0)
    # clipping: seven "the" count at most twice (the most any reference has)
    hyp = ["the"] * 7
    refs = [["the cat is on the mat".split(), "there is a cat on the mat".split()]]
    assert corpus_bleu([hyp], refs, max_n=1) == pytest.approx(2 / 7)
    # brevity penalty: a correct but short hypothesis, c = 4, r = 6
    hyp = "the cat is on".split()
    assert corpus_bleu([hyp], [ref], max_n=2) == pytest.approx(math.exp(1 - 6 / 4))
    # geometric mean: p1 = 5/6, p2 = 3/5, same length, so BLEU-2 = sqrt(p1 * p2)
    hyp = "the cat is at the mat".split()
    assert corpus_bleu([hyp], [ref], max_n=2) == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    assert corpus_bleu([hyp], [ref]) == 0.0  # no 4-gram matches: 0 without smoothing
    assert corpus_bleu([hyp], [ref], smooth=True) > 0
    assert corpus_bleu([[]], [ref]) == 0.0 and corpus_bleu([["dog"]], [ref]) == 0.0


def test_bleu_is_corpus_level_not_a_mean_of_sentences():
    hyps = ["a b c d e".split(), "x y z w".split()]
    refs = ["a b c d e".split(), "x y q w".split()]
    p = [(5 + 3) / 9, (4 + 1) / 7, (3 + 0) / 5, (2 + 0) / 3]  # matches / totals, pooled over sentences
    assert corpus_bleu(hyps, refs) == pytest.approx(math.exp(sum(math.log(v) for v in p) / 4))


def test_bleu_closest_reference_length_prefers_the_shorter_on_ties():
    hyp = "a b c d e".split()
    refs = [["a b c d".split(), "a b c d e f".split()]]  # lengths 4 and 6, both 1 away: r = 4, no penalty
    assert corpus_bleu([hyp], refs, max_n=1) == pytest.approx(1.0)  # r = 6 would give exp(1 - 6/5)
    assert _nltk([hyp], refs, 1) == pytest.approx(1.0)


HAND_CASES = [
    (["the cat sat on the mat".split()], ["the cat sat on the mat".split()]),
    (["It is a guide to action which ensures that the military always obeys the commands of the party".split()],
     [["It is a guide to action that ensures that the military will forever heed Party commands".split(),
       "It is the guiding principle which guarantees the military forces always being under the command of "
       "the Party".split(),
       "It is the practical guide for the army always to heed the directions of the party".split()]]),
    (["he read the book because he was interested in world history".split(),
      "the cat the cat the cat on the mat".split()],
     ["he was interested in world history because he read the book".split(),
      [["the", "cat", "is", "on", "the", "mat"], "there is a cat on the mat".split()]]),
]


@pytest.mark.parametrize("hyps, refs", HAND_CASES)
@pytest.mark.parametrize("smooth", [False, True])
def test_bleu_matches_nltk_on_hand_made_cases(hyps, refs, smooth):
    for max_n in (1, 2, 3, 4):
        assert corpus_bleu(hyps, refs, max_n=max_n, smooth=smooth) == pytest.approx(
            _nltk(hyps, refs, max_n, smooth), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("smooth", [False, True])
def test_bleu_matches_nltk_on_random_corpora(smooth):
    rng = random.Random(0)
    words = "a b c d e f".split()  # a small vocabulary makes many n-gram matches
    for trial in range(150):
        n_sent = rng.randint(1, 6)
        hyps = [rng.choices(words, k=rng.randint(4, 12)) for _ in range(n_sent)]
        refs = []
        for h in hyps:
            alts = [[w if rng.random() < 0.7 else rng.choice(words) for w in h][:rng.randint(3, 14)] + rng.choices(
                words, k=rng.randint(0, 3)) for _ in range(rng.randint(1, 3))]
            refs.append(alts if len(alts) > 1 or rng.random() < 0.5 else alts[0])
        max_n = rng.randint(1, 4)
        ours = corpus_bleu(hyps, refs, max_n=max_n, smooth=smooth)
        assert ours == pytest.approx(_nltk(hyps, refs, max_n, smooth), rel=1e-9, abs=1e-12), trial
        assert 0.0 <= ours <= 1.0


def test_bleu_argument_errors():
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        corpus_bleu([["a"], ["b"]], [["a"]])
    with pytest.raises(ValueError, match="split"):
        corpus_bleu(["the cat"], [["the", "cat"]])
    with pytest.raises(ValueError, match="split"):
        corpus_bleu([["the", "cat"]], ["the cat"])
    with pytest.raises(ValueError, match="max_n"):
        corpus_bleu([["a"]], [["a"]], max_n=0)
