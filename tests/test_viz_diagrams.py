"""The book's architecture diagrams: they read the structure from the code, and their text stays readable."""
import io
import itertools

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Text
from torch import nn

from tfmcourse import GPT, EncoderBlock, FeedForward, GPTConfig, KVCache, MultiHeadAttention, Seq2SeqConfig, Transformer
from tfmcourse import ViT, ViTConfig
from tfmcourse.blocks import DecoderBlock
from tfmcourse.viz import diagrams as D
from tfmcourse.viz.attention import record_attention

COLUMN_PX = 688  # the book's text column at desktop width
PHONE_PX = 358   # a 390 px phone, less the page margins
CSS_PX_PER_IN = 96  # an SVG (or a PNG with its size set) is shown at most at 96 CSS px per inch


def steps(block, **kw):
    return [(s.kind, s.name, s.skip) if s.kind == "add" else (s.kind, s.name) for s in D.block_steps(block, **kw)]


# --------------------------------------------------------------------------------------------------
# The structure comes from the code


def test_encoder_block_pre_and_post_ln_read_from_forward():
    assert steps(EncoderBlock(16, 2, 32, norm_first=True)) == [
        ("norm", "norm1"), ("attention", "attn"), ("add", "add", "x"),
        ("norm", "norm2"), ("ffn", "ffn"), ("add", "add_1", "add")]
    assert steps(EncoderBlock(16, 2, 32, norm_first=False)) == [
        ("attention", "attn"), ("add", "add", "x"), ("norm", "norm1"),
        ("ffn", "ffn"), ("add", "add_1", "norm1"), ("norm", "norm2")]


def test_decoder_block_has_causal_self_attention_then_cross_attention_over_memory():
    pre = D.block_steps(DecoderBlock(16, 2, 32))
    assert [s.name for s in pre if s.kind != "add"] == ["norm1", "self_attn", "norm2", "cross_attn", "norm3", "ffn"]
    self_attn, cross = (s for s in pre if s.kind in ("attention", "cross"))
    assert self_attn.causal and self_attn.context is None
    assert cross.kind == "cross" and cross.context == "memory" and not cross.causal
    assert [s.skip for s in pre if s.kind == "add"] == ["x", "add", "add_1"]  # three residual connections
    post = D.block_steps(DecoderBlock(16, 2, 32, norm_first=False))
    assert [s.name for s in post][-1] == "norm3"  # post-LN ends in a norm


def test_gpt_block_is_an_encoder_block_called_causally():
    gpt = GPT(GPTConfig(vocab_size=11, block_size=8, n_layers=1, n_heads=2, d_model=16))
    assert type(gpt.blocks[0]) is EncoderBlock
    attn = [s for s in D.block_steps(gpt.blocks[0], is_causal=True) if s.kind == "attention"]
    assert len(attn) == 1 and attn[0].causal and attn[0].label == "masked self-attention"


def test_block_steps_follow_a_changed_forward():
    class Sandwich(nn.Module):  # a block wired differently: the picture must change with it
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(8)
            self.ffn = FeedForward(8, 16)

        def forward(self, x):
            return self.norm(self.ffn(x) + x)

    assert steps(Sandwich()) == [("ffn", "ffn"), ("add", "add", "x"), ("norm", "norm")]


def _tiny_seq2seq():
    cfg = Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=12, d_model=16, n_heads=2, n_encoder_layers=1,
                        n_decoder_layers=1, d_ff=32, dropout=0.0)
    return Transformer(cfg).eval()


def test_attention_masks_record_where_each_mask_applies():
    model = _tiny_seq2seq()
    src = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])  # the first source has 3 real tokens
    tgt_in = torch.tensor([[1, 7, 6, 5, 0, 0], [1, 9, 8, 7, 6, 5]])
    masks = D.attention_masks(model, src, tgt_in, batch_index=0)
    assert list(masks) == ["encoder.layers.0.attn", "decoder.layers.0.self_attn", "decoder.layers.0.cross_attn"]
    enc, dec, cross = masks.values()
    assert (enc["mask"], enc["causal"], enc["cross"]) == (True, False, False)
    assert (dec["mask"], dec["causal"], dec["cross"]) == (True, True, False)
    assert (cross["mask"], cross["causal"], cross["cross"]) == (True, False, True)
    real_src = torch.tensor([1, 1, 1, 0, 0], dtype=torch.bool)
    assert torch.equal(enc["allowed"], real_src.expand(5, 5))
    assert torch.equal(cross["allowed"], real_src.expand(6, 5))
    real_tgt = torch.tensor([1, 1, 1, 1, 0, 0], dtype=torch.bool)
    assert torch.equal(dec["allowed"], torch.tril(torch.ones(6, 6, dtype=torch.bool)) & real_tgt)


def test_gpt_masks_are_causal_only():
    gpt = GPT(GPTConfig(vocab_size=11, block_size=8, n_layers=2, n_heads=2, d_model=16)).eval()
    masks = D.attention_masks(gpt, torch.randint(0, 11, (1, 5)))
    assert len(masks) == 2
    for m in masks.values():
        assert m["causal"] and not m["mask"] and not m["cross"]
        assert torch.equal(m["allowed"], torch.tril(torch.ones(5, 5, dtype=torch.bool)))


# --------------------------------------------------------------------------------------------------
# Every diagram, drawn from small real models


def _kv_calls():
    lm = GPT(GPTConfig(vocab_size=11, block_size=16, n_layers=1, n_heads=2, d_model=16)).eval()
    idx = torch.randint(0, 11, (1, 6))
    caches = [KVCache() for _ in lm.blocks]
    weights, cached = [], []
    for piece in (idx[:, :4], idx[:, 4:5], idx[:, 5:6]):
        cached.append(len(caches[0]))
        with torch.no_grad(), record_attention(lm) as maps:
            lm(piece, caches=caches)
        weights.append(maps["blocks.0.attn"][0, 0])
    return weights, cached


def _diagrams():
    enc_pre, enc_post = EncoderBlock(16, 2, 32), EncoderBlock(16, 2, 32, norm_first=False)
    dec_pre, dec_post = DecoderBlock(16, 2, 32), DecoderBlock(16, 2, 32, norm_first=False)
    gpt = GPT(GPTConfig(vocab_size=11, block_size=8, n_layers=2, n_heads=2, d_model=16))
    seq2seq = _tiny_seq2seq()
    src, tgt_in = torch.tensor([[5, 6, 7, 0]]), torch.tensor([[1, 7, 6, 5, 2]])
    masks = D.attention_masks(seq2seq, src, tgt_in)
    labels = {"encoder self-attention\npadding": (list("567·"), list("567·")),
              "decoder self-attention\ncausal + padding": (["bos", *"765", "eos"], ["bos", *"765", "eos"]),
              "cross-attention\npadding": (["bos", *"765", "eos"], list("567·"))}  # titles wider than the grids
    panels = {title: (m["allowed"], *labels[title]) for title, m in zip(labels, masks.values())}
    weights = torch.softmax(torch.tensor([[0.0, 0.0, 2.0, 0.0]] * 2 + [[0.0, 0.0, 0.0, 2.0], [0.0, 1.0, 2.0, 0.0]]), -1)
    vit = ViT(ViTConfig(image_size=8, patch_size=2, in_chans=1, n_classes=10, d_model=16, n_layers=2, n_heads=2))
    kv_weights, kv_cached = _kv_calls()
    return {
        "blocks (encoder)": lambda: D.plot_blocks({"pre-LN": enc_pre, "post-LN": enc_post}),
        "blocks (decoder)": lambda: D.plot_blocks({"pre-LN": dec_pre, "post-LN": dec_post}),
        "overview": lambda: D.plot_transformer_overview(seq2seq, gpt),
        "masks": lambda: D.plot_masks(panels),
        "multihead 2": lambda: D.plot_multihead(MultiHeadAttention(8, 2)),
        "multihead 4": lambda: D.plot_multihead(MultiHeadAttention(32, 4)),
        "kv cache": lambda: D.plot_kv_cache(kv_weights, kv_cached, ["prompt", "token 5", "token 6"]),
        "mixing": lambda: D.plot_token_mixing(MultiHeadAttention(16, 2), FeedForward(16, 32), torch.randn(4, 16)),
        "self vs cross": lambda: D.plot_self_vs_cross(["le", "chat", "dort"], ["the", "cat", "sleeps"]),
        "example": lambda: D.plot_attention_example(["the", "black", "cat", "sat"], weights, 3),
        "vit cls": lambda: D.plot_vit_pipeline(vit, torch.rand(1, 8, 8)),
        "vit mean": lambda: D.plot_vit_pipeline(
            ViT(ViTConfig(image_size=8, patch_size=4, in_chans=3, n_classes=5, d_model=16, n_layers=1, n_heads=2,
                          pool="mean")), torch.rand(3, 8, 8)),
    }


DIAGRAMS = _diagrams()


def _texts(fig):
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("name", list(DIAGRAMS))
def test_diagram_text_is_readable_at_the_column_width(name):
    fig = DIAGRAMS[name]()
    width_in = fig.get_figwidth()
    assert width_in <= 6.6 + 1e-9, f"{name}: {width_in:.2f} in is wider than the diagrams' 6.6 in"
    smallest = min(t.get_fontsize() for t in _texts(fig))
    for column, least in ((COLUMN_PX, 9.0), (PHONE_PX, 8.0)):
        px_per_in = min(CSS_PX_PER_IN, column / width_in)  # shown at its size, or shrunk to the column
        px = smallest / 72 * px_per_in
        assert px >= least, f"{name}: smallest text {smallest} pt is {px:.1f} px in a {column} px column"


@pytest.mark.parametrize("name", list(DIAGRAMS))
def test_diagram_text_stays_inside_the_figure_and_its_box_and_does_not_overlap(name):
    fig = DIAGRAMS[name]()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    shapes = [p.get_window_extent(renderer) for p in fig.findobj(FancyBboxPatch)]
    boxes = []
    for t in _texts(fig):
        bb = t.get_window_extent(renderer)
        assert bb.x0 >= frame.x0 - 1 and bb.x1 <= frame.x1 + 1 and bb.y0 >= frame.y0 - 1 and bb.y1 <= frame.y1 + 1, \
            f"{name}: {t.get_text()!r} is cut off by the figure's edge"
        # a label centred in a box must fit in it (the innermost box, for a sub-layer inside a stack)
        around = [s for s in shapes if s.contains((bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2)]
        if around:
            inner = min(around, key=lambda s: s.width * s.height)
            inside = bb.x0 >= inner.x0 - 1 and bb.x1 <= inner.x1 + 1 and bb.y0 >= inner.y0 - 1 and bb.y1 <= inner.y1 + 1
            assert inside, f"{name}: {t.get_text()!r} sticks out of its box"
        boxes.append((t.get_text(), bb.shrunk(0.95, 0.8)))
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        assert not ba.overlaps(bb), f"{name}: {a!r} overlaps {b!r}"


def test_diagrams_are_vector_graphics():
    fig = DIAGRAMS["overview"]()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue().decode()
    assert "<image" not in svg  # boxes, lines and text only: sharp at any size
    assert svg.count("<path") > 20


def test_multihead_and_kv_cache_show_the_modules_numbers():
    labels = [t.get_text() for t in _texts(D.plot_multihead(MultiHeadAttention(32, 4)))]
    assert [lab for lab in labels if lab.startswith("head ")] == [f"head {h}" for h in range(4)]
    assert "(nh, T, hs)\n= (4, T, 8)" in labels
    weights, cached = _kv_calls()
    assert cached == [0, 4, 5] and [tuple(w.shape) for w in weights] == [(4, 4), (1, 5), (1, 6)]
    labels = [t.get_text() for t in _texts(D.plot_kv_cache(weights, cached))]
    assert {"0 cached + 4 new", "4 cached + 1 new", "5 cached + 1 new"} <= set(labels)


def test_overview_reads_names_and_depths_from_the_models():
    cfg = Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=12, d_model=16, n_heads=2, n_encoder_layers=3,
                        n_decoder_layers=1, d_ff=32)
    gpt = GPT(GPTConfig.llama(vocab_size=11, block_size=8, n_layers=4, n_heads=2, d_model=16))
    labels = [t.get_text() for t in _texts(D.plot_transformer_overview(Transformer(cfg), gpt))]
    assert {"encoder: 3 ×", "decoder: 1 ×", "blocks: 4 ×", "lm_head", "tok_emb"} <= set(labels)  # RoPE: no pos_emb
    assert labels.count("masked self-attn") == 2 and labels.count("cross-attn") == 1


def test_a_renamed_layer_fails_loudly_instead_of_leaving_a_stale_label():
    labels = [t.get_text() for t in _texts(D.plot_multihead(MultiHeadAttention(8, 2)))]
    assert {"qkv", "proj"} <= set(labels)  # read from the module's own linear layers
    gpt = GPT(GPTConfig(vocab_size=11, block_size=8, n_layers=1, n_heads=2, d_model=16))
    gpt.head = gpt.lm_head  # as if lm_head had been renamed to head
    del gpt.lm_head
    with pytest.raises(AttributeError, match="lm_head"):
        D.plot_transformer_overview(_tiny_seq2seq(), gpt)
