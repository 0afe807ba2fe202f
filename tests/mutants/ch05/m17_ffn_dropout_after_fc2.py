"""Mutant m17_ffn_dropout_after_fc2: FeedForward drops fc2's output instead of the hidden activations."""
# %%
class FeedForward(FeedForward):  # the correct FeedForward from above, but for what follows
    def forward(self, x):
        return self.dropout(self.fc2(self.act(self.fc1(x))))
