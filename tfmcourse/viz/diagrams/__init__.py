"""Architecture diagrams drawn from the package's own modules, so they stay true to the code.

Each diagram reads what it draws from ``tfmcourse``: a block's sub-layer order and residual wiring
come from tracing its ``forward`` with ``torch.fx`` (:func:`block_steps`), the masks from running a
model and recording what every attention layer received (:func:`attention_masks`), the KV cache from
a real cached generation, the model outlines from the modules' children and configs. Change the code
and the pictures change with it.

Every function returns a matplotlib figure of at most 6.6 inches wide drawn only with patches, lines
and text at 11 pt or more, so it stays sharp as SVG and readable when the book column shrinks it.
"""
from .attention import (attention_masks, plot_attention_example, plot_kv_cache, plot_masks, plot_multihead,
                        plot_self_vs_cross, plot_token_mixing)
from .blocks import Step, block_steps, plot_block, plot_blocks, plot_transformer_overview
from .draw import FONT, MIN_FONT
from .vision import plot_vit_pipeline

__all__ = ["Step", "block_steps", "plot_block", "plot_blocks", "plot_transformer_overview", "attention_masks",
           "plot_masks", "plot_multihead", "plot_kv_cache", "plot_token_mixing", "plot_self_vs_cross",
           "plot_attention_example", "plot_vit_pipeline", "FONT", "MIN_FONT"]
