"""Building blocks of the stabilised and conditional GANs: spectral norm, self-attention,
minibatch stddev, DiffAugment, flipped labels and InfoGAN's information term."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gancli.config import Config, ModelConfig
from gancli.errors import ConfigError
from gancli.models import DataSpec, build_nets
from gancli.models.base import MinibatchStdDev, SelfAttention, spectral
from gancli.training.augment import DiffAugment
from gancli.training.objectives import AdversarialObjective, InfoGANObjective, flip_logits

IMAGES = DataSpec("images", (3, 16, 16), 4)


def _sigma(weight: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(weight.detach().flatten(1), 2))


@pytest.mark.parametrize("make", [lambda: nn.Linear(40, 30), lambda: nn.Conv2d(8, 16, 3)],
                         ids=["linear", "conv"])
def test_spectral_norm_makes_the_largest_singular_value_one(make):
    torch.manual_seed(0)  # before building: the weights (and so the convergence) are fixed
    layer = make()
    with torch.no_grad():  # a known spectrum, sigma_max = 7 with a gap, far from 1
        w = layer.weight.flatten(1)
        u, _, vh = torch.linalg.svd(torch.randn_like(w), full_matrices=False)
        spectrum = torch.linspace(3.5, 0.5, len(vh))
        spectrum[0] = 7.0
        layer.weight.copy_(((u * spectrum) @ vh).view_as(layer.weight))
    raw = _sigma(layer.weight)
    assert raw == pytest.approx(7.0, rel=1e-4)
    sn = spectral(layer, True)
    x = torch.randn(4, 40) if isinstance(layer, nn.Linear) else torch.randn(4, 8, 9, 9)
    for _ in range(100):  # one power iteration per training forward pass
        sn(x)
    assert _sigma(sn.weight) == pytest.approx(1.0, abs=1e-3)
    # and the normalised weight is the raw one divided by its sigma
    assert torch.allclose(sn.weight * raw, sn.parametrizations.weight.original, rtol=1e-3,
                          atol=1e-4)


def test_spectral_norm_is_settled_after_initialisation():
    """build_nets re-initialises weights, then re-runs power iteration: sigma is 1 from step 0."""
    cfg = ModelConfig(family="resnet", g_width=16, d_width=16, d_norm="none", sn_d=True,
                      sn_g=True, init="he")
    torch.manual_seed(0)  # as training does before building: the same weights every run
    nets = build_nets(cfg, IMAGES)
    sigmas = [_sigma(m.weight) for net in (nets.G, nets.D) for m in net.modules()
              if nn.utils.parametrize.is_parametrized(m, "weight")]
    assert len(sigmas) > 10
    assert max(abs(s - 1) for s in sigmas) < 0.02


def test_self_attention_keeps_the_shape_and_starts_as_identity():
    torch.manual_seed(0)
    block = SelfAttention(16)
    x = torch.randn(2, 16, 8, 6)
    assert torch.equal(block(x), x)  # gamma = 0 at initialisation
    with torch.no_grad():
        block.gamma.fill_(1.0)
    y = block(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    # every output position depends on every input position (global receptive field)
    x.requires_grad_(True)
    block(x)[0, :, 0, 0].sum().backward()
    assert (x.grad[0].abs().sum(0) > 0).all()
    assert (x.grad[1] == 0).all()  # and never on another sample


def test_resnet_family_places_attention_and_refuses_impossible_places():
    cfg = ModelConfig(family="resnet", g_width=16, d_width=16, d_norm="none", attention=8)
    nets = build_nets(cfg, IMAGES)
    assert any(isinstance(m, SelfAttention) for m in nets.G.modules())
    assert any(isinstance(m, SelfAttention) for m in nets.D.modules())
    out = nets.G(torch.randn(3, cfg.z_dim))
    assert out.shape == (3, 3, 16, 16) and nets.D(out).shape == (3,)
    with pytest.raises(ConfigError, match="self-attention"):
        build_nets(ModelConfig(family="resnet", attention=12), IMAGES)


def test_resnet_projection_discriminator_uses_the_label():
    cfg = ModelConfig(family="resnet", g_width=16, d_width=16, d_norm="none")
    nets = build_nets(cfg, IMAGES, "concat")
    torch.manual_seed(1)
    x = torch.randn(4, 3, 16, 16)
    a, b = nets.D(x, torch.zeros(4, dtype=torch.long)), nets.D(x, torch.ones(4, dtype=torch.long))
    assert a.shape == (4,) and not torch.allclose(a, b)


def test_minibatch_stddev_sees_a_collapsed_batch():
    layer = MinibatchStdDev(4)
    varied = torch.randn(8, 5, 4, 4)
    same = varied[:1].expand(8, -1, -1, -1)
    out_varied, out_same = layer(varied), layer(same)
    assert out_varied.shape == (8, 6, 4, 4)
    assert float(out_same[:, -1].abs().max()) < 1e-3  # no spread -> ~0 (sqrt of eps)
    assert float(out_varied[:, -1].min()) > 0.3
    # vectors too, and a batch that does not split into groups of 4 is one group
    vec = layer(torch.randn(6, 10))
    assert vec.shape == (6, 11) and torch.allclose(vec[:, -1], vec[0, -1].expand(6))
    # groups: samples i and i + B/G share a group; different groups get different values
    two = torch.cat([torch.zeros(4, 3), torch.randn(4, 3)])  # group size 2 -> 4 groups
    g = MinibatchStdDev(2)(two)[:, -1]
    assert torch.allclose(g[:4], g[4:])


@pytest.mark.parametrize("family", ["mlp", "dcgan", "resnet"])
def test_every_family_takes_minibatch_stddev(family):
    cfg = ModelConfig(family=family, g_width=8, d_width=8, mbstd=4, d_norm="none")
    nets = build_nets(cfg, DataSpec("images", (1, 8, 8), 0))
    assert any(isinstance(m, MinibatchStdDev) for m in nets.D.modules())
    assert nets.D(nets.G(torch.randn(8, cfg.z_dim))).shape == (8,)


@pytest.mark.parametrize("family, spec", [("mlp", DataSpec("points", (2,), 0)),
                                          ("dcgan", DataSpec("images", (1, 8, 8), 0)),
                                          ("resnet", DataSpec("images", (3, 8, 8), 0))])
def test_packing_judges_samples_in_groups(family, spec):
    cfg = ModelConfig(family=family, g_width=8, d_width=8, pack=4, d_norm="none")
    D = build_nets(cfg, spec).D
    x = torch.randn(8, *spec.shape)
    out = D(x)
    assert out.shape == (2,)  # one logit per pack of 4
    # a pack's logit depends on its own four samples only
    y = x.clone()
    y[5] += 1.0
    assert torch.equal(D(y)[0], out[0]) and not torch.equal(D(y)[1], out[1])
    with pytest.raises(ConfigError, match="packing"):
        build_nets(cfg, DataSpec("images", (1, 8, 8), 3), "concat")


def test_diffaugment_is_differentiable_deterministic_and_does_what_it_says():
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    x.requires_grad_(True)
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        out = DiffAugment(policy, torch.Generator().manual_seed(0))(x)
        again = DiffAugment(policy, torch.Generator().manual_seed(0))(x)
        assert out.shape == x.shape and torch.equal(out, again)
        out.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        x.grad = None
    # translation moves content by whole pixels, zero-filling what comes in
    ones = torch.ones(64, 1, 16, 16)
    shifted = DiffAugment("translation", torch.Generator().manual_seed(1))(ones)
    zeros_per_image = (shifted == 0).flatten(1).sum(1)
    assert zeros_per_image.max() <= 16 * 16 - 14 * 14  # at most 2 px shifts each way
    assert (zeros_per_image > 0).float().mean() > 0.5
    assert set(shifted.unique().tolist()) <= {0.0, 1.0}
    # cutout zeroes an 8x8 square (less where it hangs over the edge)
    cut = DiffAugment("cutout", torch.Generator().manual_seed(2))(ones)
    zeros = (cut == 0).flatten(1).sum(1)
    assert zeros.max() == 64 and zeros.min() > 0
    with pytest.raises(ConfigError, match="unknown augmentation"):
        DiffAugment("rotate", torch.Generator())


def _objective(cls, **sets):
    from gancli.config import build

    cfg: Config = build({"model": {"family": "mlp", "z_dim": 4, "g_width": 8, "d_width": 8,
                                   "g_norm": "none", "d_norm": "none",
                                   **sets.pop("model", {})},
                         "loss": sets.pop("loss", {}),
                         "objective": "infogan" if cls is InfoGANObjective else "unconditional"})
    spec = DataSpec("images", (1, 4, 4), 0)
    cls.validate(cfg, spec)  # the objective contract: checked before anything is built
    torch.manual_seed(0)
    nets = build_nets(cfg.model, spec, cls.conditioning)
    return cls(cfg, nets.G, nets.D, torch.Generator().manual_seed(0), torch.device("cpu")), cfg


def test_flipped_labels_swap_real_and_fake_logits():
    obj, _ = _objective(AdversarialObjective, loss={"label_flip": 0.5})
    real, fake = torch.full((1000,), 3.0), torch.full((1000,), -3.0)
    r, f = flip_logits(real, fake, obj._swaps(1000))
    swapped = (r == -3.0)
    assert torch.equal(swapped, f == 3.0)  # a pair swaps together
    assert 0.4 < swapped.float().mean() < 0.6
    none, _ = _objective(AdversarialObjective)
    assert none._swaps(1000) is None and flip_logits(real, fake, None) == (real, fake)
    with pytest.raises(ConfigError, match="label flip"):
        _objective(AdversarialObjective, loss={"name": "hinge", "label_flip": 0.1})


def test_infogan_information_term():
    obj, cfg = _objective(InfoGANObjective, model={"info_cat": 10, "info_cont": 2})
    codes = obj.random_labels(512)
    assert codes.shape == (512, 12)
    assert torch.equal(codes[:, :10].sum(1), torch.ones(512))  # one-hot categorical code
    assert codes[:, 10:].abs().max() <= 1  # continuous codes uniform in [-1, 1]
    assert codes[:, :10].argmax(1).unique().numel() == 10

    # Q that reads the codes back perfectly: the bound reaches H(c) = log 10, L_I -> 0
    perfect = torch.cat([codes[:, :10] * 50.0, codes[:, 10:]], 1)
    stats: dict = {}
    loss = obj.info_loss(perfect, codes, stats, "")
    assert float(stats["mi"]) == pytest.approx(math.log(10), abs=1e-4)
    assert float(stats["q_cont"]) == pytest.approx(0.0, abs=1e-6)
    assert float(loss) == pytest.approx(0.0, abs=1e-4)
    # Q that knows nothing: uniform logits and a zero prediction -> the bound is 0 and the
    # continuous term is E[c^2] / 2 per code = 1/6 each for U(-1, 1)
    blind = torch.zeros(512, 12)
    obj.info_loss(blind, codes, stats, "")
    assert float(stats["mi"]) == pytest.approx(0.0, abs=1e-5)
    assert float(stats["q_cont"]) == pytest.approx(2 / 6, abs=0.05)

    # G's step: the info loss reaches G's weights through the codes it was given
    loss, stats = obj.g_step(16, 0.0)
    assert "mi" in stats and "q_cont" in stats
    loss.backward()
    assert all(p.grad is not None for p in obj.G.parameters())
    # D's step trains Q on fakes with fresh codes (not on the real batch)
    obj.G.zero_grad(set_to_none=True)
    loss, stats = obj.d_step(torch.rand(16, 1, 4, 4) * 2 - 1, None, 0.0)
    loss.backward()
    assert obj.D.classes.weight.grad is not None and "mi_d" in stats


def test_infogan_needs_a_code_and_conditional_needs_labels():
    spec = DataSpec("images", (1, 8, 8), 0)
    with pytest.raises(ConfigError, match="latent code"):
        build_nets(ModelConfig(family="dcgan"), spec, "info")
    with pytest.raises(ConfigError, match="labelled data"):
        build_nets(ModelConfig(family="dcgan"), spec, "concat")


@pytest.mark.parametrize("cls_fake", [1.0, 0.0])
def test_acgan_class_loss_on_fakes_can_be_switched_off(cls_fake):
    """acgan.cls_fake scales D's class loss on generated samples; 0 = learn classes from reals."""
    import torch.nn.functional as F

    from gancli.config import build
    from gancli.training.objectives import ACGANObjective

    cfg = build({"loss": {"cls_weight": 2.0}, "acgan": {"cls_fake": cls_fake}, "objective": "acgan"})
    obj = ACGANObjective(cfg, nn.Identity(), nn.Identity(), torch.Generator(), torch.device("cpu"), 3)
    real_logits, fake_logits = torch.randn(5, 3), torch.randn(5, 3, requires_grad=True)
    y_real, y_fake = torch.tensor([0, 1, 2, 0, 1]), torch.tensor([2, 2, 1, 0, 0])
    stats: dict = {}
    loss = obj.aux_d_loss(real_logits, y_real, fake_logits, y_fake, stats)
    expected = 2.0 * (F.cross_entropy(real_logits, y_real)
                      + cls_fake * F.cross_entropy(fake_logits, y_fake))
    assert float(loss.detach()) == pytest.approx(float(expected.detach()))
    loss.backward()
    assert (fake_logits.grad.abs().sum() == 0) == (cls_fake == 0)



def _acgan(mode: str, **acgan):
    from gancli.config import build
    from gancli.training.objectives import ACGANObjective

    cfg = build({"model": {"aux_classifier": mode}, "loss": {"cls_weight": 2.0}, "acgan": acgan,
                 "objective": "acgan"})
    ACGANObjective.validate(cfg, None)
    return ACGANObjective(cfg, nn.Identity(), nn.Identity(), torch.Generator(),
                          torch.device("cpu"), 3)


Y_REAL, Y_FAKE = torch.tensor([0, 1, 2, 0, 1]), torch.tensor([2, 2, 1, 0, 0])


def test_acgan_twin_classifier_learns_fakes_and_g_maximises_its_loss():
    """tac (TAC-GAN): the second half of D's class head learns the fakes' labels (D minimises
    its CE) and G maximises that CE; the first half is ACGAN's classifier, unchanged."""
    import torch.nn.functional as F

    obj = _acgan("tac", cls_fake=0.0)
    real = torch.randn(5, 6, requires_grad=True)
    fake = torch.randn(5, 6, requires_grad=True)
    stats: dict = {}
    d_loss = obj.aux_d_loss(real, Y_REAL, fake, Y_FAKE, stats)
    ce_real = F.cross_entropy(real[:, :3], Y_REAL)
    ce_twin = F.cross_entropy(fake[:, 3:], Y_FAKE)
    assert float(d_loss.detach()) == pytest.approx(float(2.0 * (ce_real + ce_twin).detach()))
    d_loss.backward()
    assert real.grad[:, 3:].abs().sum() == 0  # the twin never sees real samples
    assert fake.grad[:, :3].abs().sum() == 0  # cls_fake=0: the classifier never sees fakes
    assert fake.grad[:, 3:].abs().sum() > 0
    g_loss = obj.aux_g_loss(fake, Y_FAKE, stats)
    ce_cls = F.cross_entropy(fake[:, :3], Y_FAKE)
    assert float(g_loss.detach()) == pytest.approx(float(2.0 * (ce_cls - ce_twin).detach()))
    # G's gradient through the twin logits is minus D's
    fake.grad = None
    g_loss.backward()
    d_twin = torch.autograd.grad(2.0 * F.cross_entropy(fake[:, 3:], Y_FAKE), fake)[0][:, 3:]
    assert torch.allclose(fake.grad[:, 3:], -d_twin)


def test_acgan_adc_classifier_has_a_real_and_a_generated_class_per_label():
    """adc (ADC-GAN): one 2K-way head; D puts real k in class k and generated k in K + k; G
    wants its samples in k and out of K + k."""
    import torch.nn.functional as F

    obj = _acgan("adc")
    real, fake = torch.randn(5, 6), torch.randn(5, 6)
    stats: dict = {}
    d_loss = obj.aux_d_loss(real, Y_REAL, fake, Y_FAKE, stats)
    expected = 2.0 * (F.cross_entropy(real, Y_REAL) + F.cross_entropy(fake, Y_FAKE + 3))
    assert float(d_loss) == pytest.approx(float(expected))
    g_loss = obj.aux_g_loss(fake, Y_FAKE, stats)
    expected = 2.0 * (F.cross_entropy(fake, Y_FAKE) - F.cross_entropy(fake, Y_FAKE + 3))
    assert float(g_loss) == pytest.approx(float(expected))
    # a head sure that a fake is "generated k" costs D nothing and G a lot; sure it is
    # "real k", the other way round
    seen_as_fake = F.one_hot(Y_FAKE + 3, 6).float() * 20
    seen_as_real = F.one_hot(Y_FAKE, 6).float() * 20
    assert float(obj.aux_d_loss(real, Y_REAL, seen_as_fake, Y_FAKE, {})) < float(d_loss)
    assert float(obj.aux_g_loss(seen_as_fake, Y_FAKE, {})) > 30
    assert float(obj.aux_g_loss(seen_as_real, Y_FAKE, {})) < -30
    with pytest.raises(ConfigError, match="cls_fake"):
        _acgan("adc", cls_fake=0.0)


def test_acgan_class_head_width_follows_the_aux_classifier():
    from gancli.config import ModelConfig

    spec = DataSpec("images", (1, 16, 16), 10)
    for family in ("dcgan", "mlp", "resnet"):
        widths = {mode: build_nets(ModelConfig(family=family, aux_classifier=mode), spec,
                                   "classifier").D.forward_with_classes(torch.randn(2, 1, 16, 16))[1]
                  .shape for mode in ("ac", "tac", "adc")}
        assert widths == {"ac": (2, 10), "tac": (2, 20), "adc": (2, 20)}, family
    with pytest.raises(ConfigError, match="aux_classifier"):
        build_nets(ModelConfig(family="dcgan", aux_classifier="tac"), spec, "concat")


def test_concat_classifier_d_takes_the_label_and_has_the_class_head():
    """concat_classifier: D(x, y) as in concat (projection in resnet / biggan, label planes in
    dcgan) plus ACGAN's head; the objective's D view passes the labels through."""
    from gancli.config import ModelConfig, build
    from gancli.training.objectives import OBJECTIVES

    spec = DataSpec("images", (1, 16, 16), 10)
    x, y = torch.randn(3, 1, 16, 16), torch.tensor([0, 4, 9])
    for family in ("resnet", "biggan", "dcgan"):
        cfg = ModelConfig(family=family, aux_classifier="adc", z_dim=120, g_width=8, d_width=8)
        D = build_nets(cfg, spec, "concat_classifier").D.eval()
        logit, classes = D.forward_with_classes(x, y)
        assert classes.shape == (3, 20), family
        assert torch.allclose(logit, D(x, y)), family  # the same adversarial logit as D(x, y)
        assert not torch.allclose(logit, D.forward_with_classes(x, (y + 1) % 10)[0]), family
    cfg = build({"model": {"family": "biggan", "aux_classifier": "adc", "z_dim": 120},
                 "objective": "concat_classifier", "data": {"labels": True}})
    obj_cls = OBJECTIVES.get("concat_classifier")
    D = build_nets(cfg.model, spec, obj_cls.conditioning).D.eval()
    obj = obj_cls(cfg, nn.Identity(), D, torch.Generator(), torch.device("cpu"), 10)
    logit, classes = obj.discriminate(x, y)
    assert torch.allclose(logit, D(x, y)) and classes.shape == (3, 20)


def test_mode_seeking_term_pairs_one_label_and_penalises_collapse():
    """loss.mode_seeking (MSGAN): pairs (i, half + i) of G's batch share a label, and G pays
    lambda / (mean |G(z1) - G(z2)| / mean |z1 - z2| + 1e-5)."""
    from gancli.config import build
    from gancli.training.objectives import ConditionalObjective

    cfg = build({"model": {"family": "mlp", "z_dim": 4, "g_width": 8, "d_width": 8,
                           "g_norm": "none", "d_norm": "none"},
                 "loss": {"mode_seeking": 2.0}, "objective": "conditional"})
    torch.manual_seed(0)
    nets = build_nets(cfg.model, DataSpec("images", (1, 4, 4), 5), "concat")
    obj = ConditionalObjective(cfg, nets.G, nets.D, torch.Generator().manual_seed(0),
                               torch.device("cpu"), 5)
    # the value: latents 2 apart, images 0.5 apart -> ratio 0.25
    z = torch.cat([torch.zeros(3, 4), torch.full((3, 4), 2.0)])
    fake = torch.cat([torch.zeros(3, 1, 4, 4), torch.full((3, 1, 4, 4), 0.5)])
    assert float(obj._mode_seeking(z, fake)) == pytest.approx(2.0 / (0.25 + 1e-5))
    # a collapsed G (one image for every latent) pays about lambda / 1e-5
    assert float(obj._mode_seeking(z, torch.zeros_like(fake))) == pytest.approx(2.0 / 1e-5)

    seen = {}
    original = obj.g_loss
    obj.g_loss = lambda z, y, p: seen.update(y=y) or original(z, y, p)
    loss, stats = obj.g_step(9, 0.0)  # odd: the last sample has no partner
    assert torch.equal(seen["y"][:4], seen["y"][4:8]) and len(seen["y"]) == 9
    assert "ms" in stats and torch.isfinite(loss)
    loss.backward()  # the term reaches G's weights
    assert all(p.grad is not None for p in nets.G.parameters())

    off = ConditionalObjective(build({"objective": "conditional"}), nets.G, nets.D,
                               torch.Generator().manual_seed(0), torch.device("cpu"), 5)
    assert off._mode_seeking(z, fake) is None


def test_mode_seeking_pairs_share_their_latent_mixture_component():
    """With model.z_mixture, the pairs (i, half + i) of G's batch also share their component
    (the first K values of z), so the term asks for variety inside a component."""
    from gancli.config import build
    from gancli.models.base import LatentMixture
    from gancli.training.objectives import AdversarialObjective

    cfg = build({"model": {"family": "dcgan", "z_dim": 16, "g_width": 8, "d_width": 8,
                           "z_mixture": 6},
                 "loss": {"mode_seeking": 1.0}, "objective": "unconditional"})
    nets = build_nets(cfg.model, DataSpec("images", (1, 16, 16)), "none")
    obj = AdversarialObjective(cfg, nets.G, nets.D, torch.Generator().manual_seed(0),
                               torch.device("cpu"))
    seen = {}
    original = obj.g_loss
    obj.g_loss = lambda z, y, p: seen.update(z=z) or original(z, y, p)
    loss, stats = obj.g_step(9, 0.0)
    z = seen["z"]
    assert torch.equal(z[:4, :6], z[4:8, :6]) and not torch.equal(z[:4, 6:], z[4:8, 6:])
    mix: LatentMixture = nets.G.latent
    assert torch.equal(mix.component(z[:4]), mix.component(z[4:8]))
    assert "ms" in stats and torch.isfinite(loss)
    # without the term the latents are left as drawn
    plain = AdversarialObjective(build({"model": {"z_mixture": 6, "z_dim": 16},
                                        "objective": "unconditional"}), nets.G, nets.D,
                                 torch.Generator().manual_seed(0), torch.device("cpu"))
    plain.g_loss = lambda z, y, p: seen.update(z=z) or original(z, y, p)
    plain.g_step(8, 0.0)
    assert not torch.equal(seen["z"][:4, :6], seen["z"][4:, :6])


@pytest.mark.parametrize("objective", ["cycle", "stargan"])
def test_mode_seeking_is_an_error_for_translation(objective):
    from gancli.config import build
    from gancli.registry import OBJECTIVES

    cfg = build({"loss": {"mode_seeking": 1.0}, "objective": objective})
    with pytest.raises(ConfigError, match="mode_seeking"):
        OBJECTIVES.get(objective).validate(cfg, None)  # before anything is built


def test_top_k_training_keeps_the_samples_D_scores_highest():
    """topk (Sinha et al. 2020): k = ceil(max(min_share, decay ** epochs) x batch) of G's
    samples, the ones D scores highest, make G's adversarial loss; 1 = every sample."""
    from gancli.config import build
    from gancli.training.objectives.adversarial import TopKConfig, topk_share

    assert topk_share(TopKConfig(min_share=0.5, decay=0.99), 0.0) == 1.0
    assert topk_share(TopKConfig(min_share=0.5, decay=0.99), 10) == pytest.approx(0.99 ** 10)
    assert topk_share(TopKConfig(min_share=0.5, decay=0.99), 500) == 0.5  # the floor
    cfg = build({"model": {"family": "mlp", "z_dim": 4, "g_width": 8, "d_width": 8,
                           "g_norm": "none", "d_norm": "none"},
                 "topk": {"min_share": 0.25, "decay": 0.5},
                 "train": {"steps": 100, "batch_size": 10}})
    torch.manual_seed(0)
    nets = build_nets(cfg.model, DataSpec("images", (1, 4, 4)), "none")
    obj = AdversarialObjective(cfg, nets.G, nets.D, torch.Generator().manual_seed(0),
                               torch.device("cpu"))
    obj.train_size = 100  # 10 real images per step: an epoch is 10 steps
    scores = torch.tensor([0.3, -2.0, 1.5, 0.1, -0.7, 2.2, 0.0, -1.1, 0.9, 0.4]).view(10, 1)
    stats = {}
    assert obj._top_k(scores, 0.0, stats) is scores and float(stats["topk"]) == 1.0  # epoch 0
    kept = obj._top_k(scores, 0.1, stats)  # step 10: one epoch, share 0.5 -> 5 samples
    assert float(stats["topk"]) == 0.5
    assert sorted(kept.flatten().tolist()) == pytest.approx([0.3, 0.4, 0.9, 1.5, 2.2])
    kept = obj._top_k(scores, 0.9, stats)  # step 90: 0.5 ** 9 < 0.25 -> ceil(2.5) = 3 samples
    assert float(stats["topk"]) == 0.25
    assert sorted(kept.flatten().tolist()) == pytest.approx([0.9, 1.5, 2.2])
    fake_scores = scores.clone().requires_grad_(True)  # G's loss reaches the kept ones only
    obj.loss.g(obj._top_k(fake_scores, 0.9, {})).backward()
    assert torch.nonzero(fake_scores.grad.flatten()).flatten().tolist() == [2, 5, 8]
    off = AdversarialObjective(build({}), nets.G, nets.D, torch.Generator().manual_seed(0),
                               torch.device("cpu"))
    assert off._top_k(scores, 0.9, stats) is scores


@pytest.mark.parametrize("objective", ["cycle", "stargan", "pix2pix"])
def test_top_k_is_an_error_where_G_does_not_draw_latents(objective):
    from gancli.config import build
    from gancli.registry import OBJECTIVES

    cfg = build({"topk": {"min_share": 0.5}, "objective": objective})
    with pytest.raises(ConfigError, match="top-k"):
        OBJECTIVES.get(objective).validate(cfg, None)  # before anything is built
    OBJECTIVES.get(objective).validate(build({"objective": objective}), None)  # off: accepted


@pytest.mark.parametrize("preset", ["dcgan", "stylegan2"])
def test_top_k_runs_and_logs_its_share(cli, tmp_path, preset):
    """The adversarial objective and stylegan2's own G loss both apply top-k (live column)."""
    import json

    from conftest import TINY, tiny_overrides

    r = cli("train", preset, *TINY, *tiny_overrides(preset), "--set", "topk.min_share=0.5",
            "--set", "topk.decay=0", "--out", str(tmp_path), "--json")
    assert r.code == 0, r.err
    rows = [json.loads(line) for line in r.out.splitlines() if '"topk"' in line]
    assert rows and rows[-1]["topk"] == 0.5  # decay 0: the floor from the first epoch on
