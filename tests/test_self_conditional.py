"""The self_conditional objective (issue 22): G reads a cluster of the training images from its
latent, D is told every image's cluster (after Liu et al. 2020's self-conditioned GAN)."""

from __future__ import annotations

import pytest
import torch

from gancli.config import ModelConfig, build
from gancli.errors import ConfigError
from gancli.models import DataSpec, build_nets
from gancli.models.base import ClusterLatent, cluster_latent

SPEC = DataSpec("images", (1, 16, 16))


def _blobs(per: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three well-separated kinds of 16x16 images in [-1, 1]: dark, bright, left half bright;
    (3 * per, 1, 16, 16) float and their kinds (3 * per,) int64."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.full((3, 1, 16, 16), -0.8)
    base[1] = 0.8
    base[2, :, :, :8] = 0.8
    kinds = torch.arange(3).repeat_interleave(per)
    x = base[kinds] + 0.05 * torch.randn(3 * per, 1, 16, 16, generator=gen)
    return x.clamp(-1, 1), kinds


def test_fit_finds_separated_clusters_and_assign_returns_the_nearest_centre():
    x, kinds = _blobs()
    lat = ClusterLatent(z_dim=8, clusters=3, spec=SPEC)
    sizes = lat.fit(x, seed=0)["sizes"]
    assert sorted(sizes) == [20, 20, 20]
    labels = lat.assign(x)
    # one cluster per kind: the labels are the kinds up to a renaming
    assert all(len(set(labels[kinds == k].tolist())) == 1 for k in range(3))
    assert len(set(labels.tolist())) == 3
    assert torch.allclose(lat.cumulative, torch.tensor([1 / 3, 2 / 3, 1.0]))
    # the shares count the labels D will see: each image's nearest final centre
    digits = torch.randn(300, 1, 16, 16, generator=torch.Generator().manual_seed(3)).clamp(-1, 1)
    many = ClusterLatent(z_dim=8, clusters=12, spec=SPEC)
    sizes = many.fit(digits, seed=1)["sizes"]
    assert torch.bincount(many.assign(digits), minlength=12).tolist() == sizes
    assert torch.allclose(many.cumulative, torch.tensor(sizes).cumsum(0) / 300.0)
    # the centres are the kinds' mean images pooled to 8x8
    for k in range(3):
        mean = lat.features(x[labels == k]).mean(0)
        assert torch.allclose(lat.centres[k], mean, atol=1e-5)


def test_the_cluster_is_read_from_the_latent_at_the_data_frequencies():
    lat = ClusterLatent(z_dim=8, clusters=3, spec=SPEC)
    lat.cumulative.copy_(torch.tensor([0.5, 0.8, 1.0]))  # shares 0.5 / 0.3 / 0.2
    z = torch.randn(200_000, 8, generator=torch.Generator().manual_seed(1))
    shares = torch.bincount(lat.component(z), minlength=3).float() / len(z)
    assert torch.allclose(shares, torch.tensor([0.5, 0.3, 0.2]), atol=0.005)
    # the angle of (z_0, z_1) decides: u = (atan2(z_1, z_0) + pi) / 2 pi
    angle = torch.tensor([[-1.0, -0.01], [1.0, 0.01], [0.0, 1.0]])  # u ~ 0.0, 0.5+, 0.75
    pick = torch.cat([angle, torch.full((3, 6), 9.0)], 1)
    assert lat.component(pick).tolist() == [0, 1, 1]
    # scaling a latent (the truncation trick) keeps its cluster
    assert torch.equal(lat.component(z[:1000] * 0.3), lat.component(z[:1000]))
    out = lat(z[:5])
    assert out.shape == (5, 6 + 3) and torch.equal(out[:, :6], z[:5, 2:])
    assert torch.equal(out[:, 6:].argmax(1), lat.component(z[:5]))
    # a cluster asked for replaces the one the latent picks; the content is the same
    asked = lat(z[:5], torch.tensor([2, 2, 2, 2, 2]))
    assert torch.equal(asked[:, :6], out[:, :6]) and asked[:, 6:].argmax(1).tolist() == [2] * 5
    # a uniform prior on [-1, 1] reads u = (z_0 + 1) / 2
    uni = ClusterLatent(z_dim=8, clusters=3, spec=SPEC, z_dist="uniform")
    uni.cumulative.copy_(torch.tensor([0.5, 0.8, 1.0]))
    assert uni.component(torch.tensor([[-0.1] * 8, [0.5] * 8, [0.7] * 8])).tolist() == [0, 1, 2]
    with pytest.raises(ConfigError, match="z_dim >= 3"):
        ClusterLatent(z_dim=2, clusters=3, spec=SPEC)


def test_an_empty_cluster_is_never_drawn_nor_assigned():
    lat = ClusterLatent(z_dim=8, clusters=3, spec=SPEC)
    lat.cumulative.copy_(torch.tensor([0.6, 0.6, 1.0]))  # cluster 1 has no images
    z = torch.randn(50_000, 8, generator=torch.Generator().manual_seed(2))
    assert 1 not in lat.component(z).tolist()
    # fewer images than clusters: one cluster per image, the rest never drawn nor assigned
    few = ClusterLatent(z_dim=8, clusters=30, spec=SPEC)
    x = _blobs(per=2)[0]
    sizes = few.fit(x, seed=0)["sizes"]
    assert sum(n > 0 for n in sizes) == 6 and sum(sizes) == 6
    drawn = set(few.component(z).tolist())
    assert drawn == {k for k, n in enumerate(sizes) if n}
    assert set(few.assign(x).tolist()) == drawn
    with pytest.raises(ConfigError, match="at least 2 clusters"):
        ClusterLatent(z_dim=8, clusters=1, spec=SPEC)


def test_the_dcgan_family_builds_a_G_that_samples_by_latent_alone_and_a_D_given_the_cluster():
    cfg = ModelConfig(family="dcgan", z_dim=16, g_width=8, d_width=8, z_clusters=5)
    nets = build_nets(cfg, SPEC, "clusters")
    assert isinstance(cluster_latent(nets.G), ClusterLatent)
    assert {"latent.centres", "latent.cumulative"} <= set(nets.G.state_dict())
    x = nets.G(torch.randn(4, 16), None)  # no labels from outside
    assert x.shape == (4, 1, 16, 16)
    assert nets.D(x, torch.tensor([0, 1, 2, 4])).shape[0] == 4
    assert nets.D.label_width == 5


@pytest.mark.parametrize("sets, message", [
    ({"objective": "unconditional", "model": {"z_clusters": 5}}, "for the self_conditional"),
    ({"objective": "self_conditional"}, "needs model.z_clusters"),
    ({"objective": "self_conditional", "model": {"z_clusters": 5, "z_mixture": 4}},
     "both split the latent"),
    ({"objective": "self_conditional", "model": {"z_clusters": 5, "family": "resnet"}},
     "self_conditional' needs"),
    ({"objective": "self_conditional", "model": {"z_clusters": 1}}, "at least 2 clusters"),
    ({"objective": "self_conditional", "model": {"z_clusters": 5, "z_dim": 2}}, "z_dim >= 3"),
    ({"objective": "self_conditional", "model": {"z_clusters": 5}, "train": {"pool_size": 8}},
     "pool does not keep labels or clusters"),
    ({"objective": "self_conditional", "model": {"z_clusters": 5, "pack": 2}},
     "a pack would mix clusters"),
])
def test_configs_that_cannot_work_are_refused_before_anything_is_built(sets, message):
    from gancli.training.objectives import validate_run

    with pytest.raises(ConfigError, match=message):
        validate_run(build(sets))


def _objective(mode_seeking: float = 0.0):
    from gancli.training.objectives.self_conditional import SelfConditionalObjective

    cfg = build({"objective": "self_conditional", "loss": {"mode_seeking": mode_seeking},
                 "model": {"family": "dcgan", "z_dim": 16, "g_width": 8, "d_width": 8,
                           "z_clusters": 3}})
    torch.manual_seed(0)
    nets = build_nets(cfg.model, SPEC, "clusters")
    obj = SelfConditionalObjective(cfg, nets.G, nets.D, torch.Generator().manual_seed(0),
                                   torch.device("cpu"))
    x, kinds = _blobs()

    class Data:  # what prepare reads of a Dataset
        def __init__(self):
            self.x = ((x + 1) * 127.5).round().to(torch.uint8)

        def __len__(self):
            return len(self.x)

        def fit(self, images):
            return images

    line = obj.prepare(Data())
    assert line.startswith("clusters: 3 by k-means on 60 training images")
    return obj, nets, x


def test_D_is_shown_each_real_image_with_its_cluster_and_each_sample_with_Gs():
    obj, nets, x = _objective()
    seen, drawn = [], {}
    forward, fake_inputs = nets.D.forward, obj.fake_inputs
    nets.D.forward = lambda images, y=None: seen.append((images, y)) or forward(images, y)
    obj.fake_inputs = lambda y, n: drawn.setdefault("zy", fake_inputs(y, n))
    loss, stats = obj.d_step(x[::5], None, 0.0)  # 12 images of every kind
    assert torch.isfinite(loss)
    (real, y_real), (fake, y_fake) = seen
    assert torch.equal(y_real, obj.clusters.assign(x[::5]))
    assert len(set(y_real.tolist())) > 1  # the blobs fall in different clusters
    # the samples are made for the real batch's clusters, as a cGAN's D step makes them
    z, y_asked = drawn["zy"]
    assert torch.equal(y_asked, y_real) and torch.equal(y_fake, y_real)
    G = nets.G.eval()
    with torch.no_grad():  # G takes the cluster it is given, else the one its latent picks
        assert torch.equal(G(z, obj.clusters.component(z)), G(z, None))
        assert not torch.allclose(G(z, (y_real + 1) % 3), G(z, y_real))


def test_G_step_pairs_share_their_cluster_under_mode_seeking():
    obj, nets, _ = _objective(mode_seeking=1.0)
    seen = {}
    original = obj.g_loss
    obj.g_loss = lambda z, y, p: seen.update(z=z, y=y) or original(z, y, p)
    loss, stats = obj.g_step(9, 0.0)
    z, y = seen["z"], seen["y"]
    assert torch.equal(y, obj.clusters.component(z))
    assert torch.equal(y[:4], y[4:8]) and not torch.equal(z[:4, 2:], z[4:8, 2:])
    assert "ms" in stats and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in nets.G.parameters())


def test_a_run_trains_resumes_bit_identically_and_samples_by_seed(tmp_path, cli):
    from test_resume import assert_identical, final_tensors, straight_and_resumed, tiny_cfg

    extra = ["objective=self_conditional", "model.z_clusters=4", "train.ema=0.9",
             "loss.mode_seeking=0.5"]
    straight, stopped = straight_and_resumed(tiny_cfg("dcgan", 12, extra), tmp_path, cli, 5)
    tensors = final_tensors(stopped)
    assert_identical(final_tensors(straight), tensors)
    # the clusters travel in the checkpoint (G and its EMA), fitted, not the zeros G starts with
    assert tensors["G.latent.centres"].abs().sum() > 0
    assert torch.equal(tensors["G.latent.centres"], tensors["G_ema.latent.centres"])
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for out in (a, b):
        r = cli("sample", str(straight), "--seeds", "0-7", "--out", str(out))
        assert r.code == 0, r.err
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("conditioning, classes, shape", [
    ("concat", 10, (1, 16, 16)), ("clusters", 7, (3, 32, 32)), ("concat", 3, (3, 8, 8))])
def test_dcgan_D_label_table_equals_concatenated_one_hot_planes(conditioning, classes, shape):
    """The dcgan D adds a per-label table after its first convolution instead of
    concatenating K constant one-hot planes to the image (cGAN's D, Mirza & Osindero 2014):
    the same logits, borders (zero padding) included."""
    from torch.nn import functional as F

    cfg = ModelConfig(family="dcgan", z_dim=16, g_width=8, d_width=8,
                      z_clusters=classes if conditioning == "clusters" else 0, d_norm="none")
    torch.manual_seed(0)
    D = build_nets(cfg, DataSpec("images", shape, classes), conditioning).D
    x = torch.randn(6, *shape)
    y = torch.tensor([0, 1, classes - 1, 2 % classes, 0, 1])
    planes = F.one_hot(y, classes).float()[:, :, None, None].expand(-1, -1, *shape[1:])
    reference = D.head(D.body(torch.cat([x, planes], 1)))  # what the planes gave
    assert torch.allclose(D(x, y).reshape(-1), reference.reshape(-1), atol=1e-5)
    with pytest.raises(ValueError, match="pass y"):  # not a broadcast into a wrong shape
        D(x)
