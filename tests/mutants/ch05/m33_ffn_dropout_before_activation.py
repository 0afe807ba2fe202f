"""Mutant m33_ffn_dropout_before_activation: FeedForward drops fc1's output before the activation instead of after it."""
# %%
class FeedForward(FeedForward):  # the correct FeedForward from above, but for what follows
    def forward(self, x):
        return self.fc2(self.act(self.dropout(self.fc1(x))))
