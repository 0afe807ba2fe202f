"""Chapter 7: patches, patch embedding and the Vision Transformer."""
import pytest
import torch
from torch import nn

from tfmcourse import PatchEmbedding, ViT, ViTConfig, patchify, unpatchify

pytestmark = pytest.mark.ch07


def test_patchify_order_and_inverse():
    img = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    p = patchify(img, 2)
    assert p.shape == (2, 6, 12)
    assert torch.equal(p[0, 1].view(3, 2, 2), img[0, :, 0:2, 2:4])  # second patch: first row, second column
    assert torch.equal(p[0, 3].view(3, 2, 2), img[0, :, 2:4, 0:2])  # row-major over the patch grid
    assert torch.equal(unpatchify(p, 2, (4, 6), 3), img)
    with pytest.raises(ValueError, match="divisible"):
        patchify(img, 4)


def test_reshape_patch_embedding_equals_conv2d():
    conv_embed = PatchEmbedding(16, 4, 3, 10, method="conv")
    reshape_embed = PatchEmbedding(16, 4, 3, 10, method="reshape")
    reshape_embed.load_state_dict(conv_embed.state_dict())
    x = torch.randn(2, 3, 16, 16)
    a, b = conv_embed(x), reshape_embed(x)
    assert a.shape == (2, 16, 10) and torch.allclose(a, b, atol=1e-5)
    conv = nn.Conv2d(3, 10, 4, 4)  # and a plain Conv2d, flattened, agrees as well
    conv.load_state_dict(conv_embed.proj.state_dict())
    assert torch.allclose(conv(x).flatten(2).transpose(1, 2), b, atol=1e-5)


def test_patch_embedding_rejects_wrong_image_size():
    with pytest.raises(ValueError, match="expected images"):
        PatchEmbedding(16, 4, 3, 8)(torch.randn(1, 3, 12, 12))
    with pytest.raises(ValueError, match="divisible"):
        ViTConfig(image_size=30, patch_size=8)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_shapes_and_pooling(pool):
    cfg = ViTConfig(image_size=8, patch_size=2, in_chans=1, n_classes=5, d_model=16, n_layers=2, n_heads=2,
                    pool=pool)
    model = ViT(cfg)
    feats = model.forward_features(torch.randn(3, 1, 8, 8))
    assert feats.shape == (3, 16 + (pool == "cls"), 16)
    logits, loss = model(torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 4]))
    assert logits.shape == (3, 5) and loss.ndim == 0
    if pool == "mean":  # mean pooling is invariant to permuting patches when positions are zero
        with torch.no_grad():
            model.pos_embed.zero_()
        x = torch.randn(1, 1, 8, 8)
        p = patchify(x, 2)
        perm = torch.randperm(16)
        x_perm = unpatchify(p[:, perm], 2, 8, 1)
        assert torch.allclose(model(x)[0], model(x_perm)[0], atol=1e-5)


def test_vit_overfits_one_batch_and_grads_reach_everything():
    torch.manual_seed(0)
    model = ViT(ViTConfig(image_size=8, patch_size=4, in_chans=1, n_classes=4, d_model=32, n_layers=2, n_heads=4))
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 4, (16,))
    opt = model.configure_optimizers(lr=3e-3, weight_decay=0.0)
    for step in range(120):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
            assert not missing, f"no gradient reaches {missing}"
        opt.step()
    assert loss.item() < 0.05


def test_vit_spares_positions_from_weight_decay():
    model = ViT(ViTConfig(image_size=8, patch_size=4, in_chans=1, n_classes=4, d_model=16, n_layers=1, n_heads=2))
    opt = model.configure_optimizers()
    no_decay = {id(p) for p in opt.param_groups[1]["params"]}
    assert id(model.pos_embed) in no_decay and id(model.cls_token) in no_decay
    assert id(model.patch_embed.proj.weight) not in no_decay
