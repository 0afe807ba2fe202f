"""Mutant m47_block_attention_dropout_missing: the attentions are built without dropout (no dropout on the attention weights)."""
# %%
class DecoderBlock(DecoderBlock):  # the correct DecoderBlock from above, but for what follows
    def __init__(self, d_model, n_heads, d_ff, *, dropout=0.0, ffn="relu", norm="layernorm", norm_first=True,
                 bias=True, eps=1e-5):
        nn.Module.__init__(self)
        self.norm_first = norm_first
        self.norm1 = build_norm(norm, d_model, eps=eps, bias=bias)
        self.self_attn = MultiHeadAttention(d_model, n_heads, bias=bias)
        self.norm2 = build_norm(norm, d_model, eps=eps, bias=bias)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, bias=bias)
        self.norm3 = build_norm(norm, d_model, eps=eps, bias=bias)
        self.ffn = build_ffn(ffn, d_model, d_ff, dropout=dropout, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
