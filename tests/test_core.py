"""Core library: entropies, attention, GRL, losses per variant, gradients, region count."""

import math

import pytest
import torch
import torch.nn.functional as F

from tada_core import ConfigError, TADAConfig, build_model
from tada_core.model.attention import (
    RegionDiscriminators,
    binary_entropy_from_logits,
    global_attention,
    local_attention,
)
from tada_core.model.backbones import build_backbone, list_backbones
from tada_core.model.grl import GradientReversal, grl_coefficient, reverse_gradient
from tada_core.model.losses import attentive_entropy

VARIANT_TERMS = {
    "source_only": {"classification"},
    "dann": {"classification", "global_adversarial"},
    "tada_local": {"classification", "global_adversarial", "local_adversarial"},
    "tada_global": {"classification", "global_adversarial", "entropy"},
    "tada": {"classification", "global_adversarial", "local_adversarial", "entropy"},
}


def _h2(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def test_binary_entropy_matches_hand_formula():
    logits = torch.tensor([0.0, 2.0, -3.0, 10.0, -40.0])
    expected = [_h2(1 / (1 + math.exp(-z))) for z in logits.tolist()]
    assert binary_entropy_from_logits(logits).tolist() == pytest.approx(expected, abs=1e-6)
    assert binary_entropy_from_logits(torch.tensor(0.0)).item() == pytest.approx(1.0)  # d̂ = 0.5: one bit


def test_local_and_global_attention_formulas_and_ranges():
    logits = torch.tensor([[0.0, math.log(3.0)], [50.0, -50.0]])  # d̂ = 0.5, 0.75, ≈1, ≈0
    w = local_attention(logits)
    assert w.tolist()[0] == pytest.approx([0.0, 1 - _h2(0.75)], abs=1e-6)
    assert w.tolist()[1] == pytest.approx([1.0, 1.0], abs=1e-6)
    m = global_attention(logits.flatten())
    assert m.tolist() == pytest.approx([2.0, 1 + _h2(0.75), 1.0, 1.0], abs=1e-6)
    wide = torch.randn(10_000) * 20
    assert local_attention(wide).min() >= 0 and local_attention(wide).max() <= 1
    assert global_attention(wide).min() >= 1 and global_attention(wide).max() <= 2


def test_grl_gradient_is_minus_lambda_times_plain_gradient():
    x = torch.randn(5, 3, requires_grad=True)
    weights = torch.randn(5, 3)
    (x * weights).pow(2).sum().backward()
    plain = x.grad.clone()
    x.grad = None
    (reverse_gradient(x, 0.37) * weights).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, -0.37 * plain)
    # forward is the identity
    torch.testing.assert_close(reverse_gradient(x, 0.37), x)


def test_grl_module_reads_coefficient_at_backward_time():
    grl = GradientReversal(0.0)
    x = torch.ones(3, requires_grad=True)
    y = grl(x).sum()
    grl.coeff = 0.5  # set after the forward, as TADAModel.losses does
    y.backward()
    assert x.grad.tolist() == [-0.5, -0.5, -0.5]


def test_grl_schedule():
    assert grl_coefficient(0.0) == 0.0
    assert grl_coefficient(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert grl_coefficient(0.5, max_value=2.0) == pytest.approx(2 * (2 / (1 + math.exp(-5)) - 1))
    assert grl_coefficient(7.0) == grl_coefficient(1.0)  # progress is clamped


def test_region_discriminators_equal_independent_mlps():
    torch.manual_seed(0)
    disc = RegionDiscriminators(num_regions=4, in_channels=6, hidden=5, dropout=0.0)
    x = torch.randn(3, 4, 6)
    out = disc(x)
    for k in range(4):
        hidden = torch.relu(x[:, k] @ disc.weight1[k] + disc.bias1[k, 0])
        expected = hidden @ disc.weight2[k, :, 0] + disc.bias2[k, 0, 0]
        torch.testing.assert_close(out[:, k], expected)


def test_attentive_entropy_hand_computation():
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    m = torch.tensor([2.0, 1.0])
    h = [math.log(2), -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))]
    assert attentive_entropy(logits, m).item() == pytest.approx((2 * h[0] + h[1]) / 2, rel=1e-6)


@pytest.mark.parametrize("variant", list(VARIANT_TERMS))
def test_each_variant_adds_exactly_its_losses(variant):
    torch.manual_seed(0)
    model = build_model(TADAConfig(variant=variant, num_classes=10))
    x = torch.randn(8, 3, 28, 28)
    y = torch.randint(0, 10, (4,))
    out = model(x)
    losses = model.losses(out, y, progress=0.5)
    assert set(losses) == VARIANT_TERMS[variant] | {"total"}
    expected = losses["classification"] + losses.get("global_adversarial", 0) + losses.get("local_adversarial", 0)
    expected = expected + 0.1 * losses.get("entropy", 0)
    assert losses["total"].item() == pytest.approx(float(expected.detach()), rel=1e-6)
    assert losses["classification"].item() == pytest.approx(F.cross_entropy(out.logits[:4], y).item(), rel=1e-6)
    assert (out.local_attention is None) == (variant not in ("tada", "tada_local"))
    assert (out.domain_logits is None) == (variant == "source_only")


def test_model_output_shapes_and_attention_ranges():
    model = build_model(TADAConfig(backbone="lenet", num_classes=7, variant="tada"))
    out = model(torch.randn(6, 3, 28, 28))
    assert out.logits.shape == (6, 7)
    assert out.features.shape == (6, 256)
    assert out.local_attention.shape == (6, 7, 7)
    assert out.local_domain_logits.shape == (6, 49)
    assert out.global_attention.shape == out.domain_logits.shape == (6,)
    assert 0 <= out.local_attention.min() and out.local_attention.max() <= 1
    assert 1 <= out.global_attention.min() and out.global_attention.max() <= 2
    torch.testing.assert_close(out.local_attention.flatten(1), local_attention(out.local_domain_logits))


def test_every_parameter_gets_a_finite_gradient_for_tada():
    torch.manual_seed(0)
    model = build_model(TADAConfig(variant="tada", num_classes=10))
    out = model(torch.randn(8, 3, 28, 28))
    model.losses(out, torch.randint(0, 10, (4,)), progress=0.5)["total"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_features_receive_reversed_domain_gradient():
    """The backbone's gradient from L_g alone equals −λ_p times the discriminator-side gradient."""
    torch.manual_seed(0)
    model = build_model(TADAConfig(variant="dann", num_classes=10, dropout=0.0)).eval()
    z = torch.randn(6, 256, requires_grad=True)
    logits = model.domain_discriminator(model.grl(z))
    model.grl.coeff = 0.25
    F.binary_cross_entropy_with_logits(logits, torch.tensor([1.0, 1, 1, 0, 0, 0])).backward()
    reversed_grad = z.grad.clone()
    z.grad = None
    logits = model.domain_discriminator(z)
    F.binary_cross_entropy_with_logits(logits, torch.tensor([1.0, 1, 1, 0, 0, 0])).backward()
    torch.testing.assert_close(reversed_grad, -0.25 * z.grad)


@pytest.mark.parametrize("detach", [True, False])
def test_detach_option_controls_attention_gradient(detach):
    torch.manual_seed(0)
    model = build_model(TADAConfig(variant="tada_local", num_classes=10, detach_attention=detach))
    out = model(torch.randn(4, 3, 28, 28))
    out.logits.sum().backward()  # classification path only
    reached = model.region_discriminators.weight1.grad is not None
    assert reached is (not detach)


def test_attended_local_input_uses_second_logits():
    model = build_model(TADAConfig(variant="tada", num_classes=10, local_input="attended"))
    out = model(torch.randn(4, 3, 28, 28))
    assert out.attended_domain_logits is not None and out.attended_domain_logits.shape == (4, 49)
    assert not torch.equal(out.attended_domain_logits, out.local_domain_logits)


def test_region_count_is_49_for_lenet_at_28():
    assert build_backbone("lenet")(torch.zeros(1, 3, 28, 28)).shape[-2:] == (7, 7)
    assert build_model(TADAConfig(backbone="lenet")).region_discriminators.num_regions == 49


def test_region_count_is_49_for_resnet50_at_224():
    model = build_model(TADAConfig(backbone="resnet50", num_classes=31))
    assert model.region_discriminators.num_regions == 49
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, 224, 224))
    assert out.local_attention.shape == (1, 7, 7)
    local = sum(p.numel() for p in model.region_discriminators.parameters())
    assert local < sum(p.numel() for p in model.backbone.parameters())


def test_config_errors_and_yaml_round_trip(tmp_path):
    cfg = TADAConfig(variant="tada_global", num_classes=31, backbone="resnet50")
    cfg.train.iters = 123
    cfg.train.optim.lr = 0.003
    cfg.to_yaml(tmp_path / "c.yaml")
    assert TADAConfig.from_yaml(tmp_path / "c.yaml") == cfg
    with pytest.raises(ConfigError, match="unknown variant"):
        TADAConfig(variant="mada")
    with pytest.raises(ConfigError, match="unknown backbone"):
        build_model(TADAConfig(backbone="vgg"))
    with pytest.raises(ConfigError, match="unknown option"):
        TADAConfig.from_dict({"varient": "tada"})
    with pytest.raises(ConfigError, match="unknown option.*train.optim"):
        TADAConfig.from_dict({"train": {"optim": {"lrr": 1}}})
    (tmp_path / "bad.yaml").write_text("[1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TADAConfig.from_yaml(tmp_path / "bad.yaml")


def test_backbone_registry():
    assert {"lenet", "resnet18", "resnet34", "resnet50", "resnet101"} <= set(list_backbones())


def test_flatten_head_sees_every_region_and_pool_head_their_mean():
    torch.manual_seed(0)
    flat = build_model(TADAConfig(backbone="lenet", num_classes=10, variant="dann"))
    assert flat.head == "flatten" and flat.bottleneck[0].in_features == 64 * 7 * 7
    pooled = build_model(TADAConfig(backbone="lenet", num_classes=10, variant="dann", head="pool"))
    assert pooled.bottleneck[0].in_features == 64
    # by hand: the pool head's bottleneck input is the mean of the map, the flatten head's the map itself
    x = torch.randn(2, 3, 28, 28)
    for model, by_hand in ((flat, lambda f: f.flatten(1)), (pooled, lambda f: f.mean(dim=(2, 3)))):
        model.eval()
        z = model.bottleneck(by_hand(model.backbone(x)))
        torch.testing.assert_close(model(x).features, z)
    with pytest.raises(ValueError, match="resize images to 28"):
        flat(torch.randn(2, 3, 32, 32))
    with pytest.raises(ConfigError, match="head must be one of"):
        TADAConfig(head="max")


def test_format_1_checkpoints_load_with_the_pool_head_they_were_trained_with(tmp_path):
    import json

    from safetensors.torch import save_file

    from tada_core.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint

    old = build_model(
        TADAConfig(backbone="lenet", num_classes=10, variant="tada", head="pool", discriminator_bn=False, dropout=0.5)
    )
    save_checkpoint(tmp_path / "new.safetensors", old, CheckpointInfo(old.config, [str(i) for i in range(10)]))
    from safetensors import safe_open

    with safe_open(str(tmp_path / "new.safetensors"), framework="pt") as handle:
        meta = json.loads(handle.metadata()["tada"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    meta["format_version"] = 1
    del meta["config"]["head"], meta["config"]["discriminator_bn"]  # what a file written before them holds
    del meta["config"]["train"]["joint_forward"]
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata={"tada": json.dumps(meta)})
    model, info = load_checkpoint(tmp_path / "old.safetensors")
    assert model.head == "pool" and info.config.head == "pool" and info.format_version == 1
    assert not info.config.discriminator_bn and info.config.dropout == 0.5
    assert info.config.train.joint_forward  # trained with one forward over both domains
    assert not load_checkpoint(tmp_path / "new.safetensors")[1].config.train.joint_forward


def test_split_forward_normalises_each_domain_with_its_own_batch_statistics():
    torch.manual_seed(0)
    model = build_model(TADAConfig(backbone="lenet", num_classes=10, variant="tada")).train()
    model.region_discriminators.dropout.p = 0.0  # deterministic
    x_s, x_t = torch.randn(4, 3, 28, 28), torch.randn(5, 3, 28, 28) + 1.0
    split = model(torch.cat([x_s, x_t]), split=4)
    by_hand = [model(x_s), model(x_t)]  # two separate training-mode passes
    for name, got in split._asdict().items():
        if got is not None:
            torch.testing.assert_close(got, torch.cat([getattr(by_hand[0], name), getattr(by_hand[1], name)]))
    joint = model(torch.cat([x_s, x_t]))
    assert not torch.allclose(joint.logits, split.logits)  # shared statistics give other outputs
