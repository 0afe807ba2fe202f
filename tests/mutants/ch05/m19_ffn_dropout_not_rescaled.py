"""Mutant m19_ffn_dropout_not_rescaled: FeedForward zeroes hidden units with a random mask but does not rescale the kept ones by 1/(1-p)."""
# %%
import torch


class FeedForward(FeedForward):  # the correct FeedForward from above, but for what follows
    def forward(self, x):
        h = self.act(self.fc1(x))
        if self.training and self.dropout.p > 0:
            h = h * (torch.rand_like(h) >= self.dropout.p)  # kept units are not divided by 1 - p
        return self.fc2(h)
