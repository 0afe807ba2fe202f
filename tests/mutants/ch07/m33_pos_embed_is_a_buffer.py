"""Mutant m33_pos_embed_is_a_buffer: pos_embed is registered as a buffer, so the positions are never learned."""
# %%
class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        super().__init__(config)
        pos = self.pos_embed.detach().clone()
        del self.pos_embed
        self.register_buffer("pos_embed", pos)
