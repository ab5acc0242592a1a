"""What every model family provides, and the helpers they share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from gancli.conditioning import NONE, Conditioning, as_conditioning
from gancli.config import ModelConfig
from gancli.errors import ConfigError
from gancli.registry import FAMILIES


@dataclass(frozen=True)
class DataSpec:
    """What a family needs to know about the data to size its networks."""

    kind: str  # "images" or "points"
    shape: tuple[int, ...]  # (C, H, W) or (2,)
    num_classes: int = 0

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shape": list(self.shape), "num_classes": self.num_classes}

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        return cls(d["kind"], tuple(d["shape"]), int(d.get("num_classes", 0)))


@dataclass
class Nets:
    G: nn.Module
    D: nn.Module


@dataclass(frozen=True)
class Family:
    """A registered model family: a builder plus what it accepts."""

    name: str
    build: Callable[[ModelConfig, DataSpec, Conditioning], Nets]
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"images"}))
    summary: str = ""


def register_family(name: str, *, kinds: set[str], summary: str) -> Callable:
    def wrap(build: Callable[[ModelConfig, DataSpec, Conditioning], Nets]) -> Callable:
        FAMILIES.register(name, Family(name, build, frozenset(kinds), summary))
        return build

    return wrap


def check_family(family: Family, spec: DataSpec) -> None:
    """The family must model this kind of data (``Family.kinds``): ``ConfigError`` if not."""
    if spec.kind not in family.kinds:
        alt = "--set model.family=mlp" if spec.kind == "points" else "an image family such as dcgan"
        raise ConfigError(f"model family '{family.name}' cannot model {spec.kind} data",
                          hint=f"use {alt}")


class LatentMixture(nn.Module):
    """A Gaussian-mixture latent prior built into G's input, so the latent space G maps is K
    separate balls rather than one connected cloud (``model.z_mixture``).

    A generator that maps one connected latent space onto data of separate classes must send
    some latents between them, and those samples are ambiguous (Khayatkhoei et al. 2018,
    "Disconnected Manifold Learning for Generative Adversarial Networks"). DeLiGAN
    (Gurumurthy et al. 2017, "DeLiGAN: Generative Adversarial Networks for Diverse and Limited
    Data") draws z = mu_k + sigma_k * eps from a mixture instead; here the K centres mu_k are
    fixed N(0, 1) vectors (a persistent buffer, so checkpoints carry them) and sigma is shared:
    that part is ours. The component is read from the latent itself, k = argmax of its first K
    values, so a seed still names one latent, latents are still drawn from the plain prior
    (``model.z_dist``), and the truncation trick (z * psi) keeps k and pulls the latent toward
    its own centre.

    z: (B, z_dim) float -> (B, z_dim) float, centres[k] + sigma * z.
    """

    def __init__(self, z_dim: int, components: int, sigma: float):
        super().__init__()
        if not 2 <= components <= z_dim:
            raise ConfigError(f"model.z_mixture={components} needs 2..z_dim ({z_dim}) components: "
                              "the component is the argmax of z's first K values",
                              hint=f"--set model.z_mixture={min(max(components, 2), z_dim)}, "
                                   "or 0 for the plain prior")
        self.components, self.sigma = components, sigma
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("centres", torch.randn(components, z_dim, generator=gen))

    def component(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) -> (B,) int64 component index."""
        return z[:, :self.components].argmax(1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.centres[self.component(z)].to(z.dtype) + self.sigma * z

    def extra_repr(self) -> str:
        return f"components={self.components}, sigma={self.sigma:g}"


class ClusterLatent(nn.Module):
    """G's latent input for training on clusters of the data (``model.z_clusters``; the
    ``self_conditional`` objective): G reads a cluster index from its own latent and is
    conditioned on it, and D is told the cluster of every image it judges (of a real image:
    its nearest centre; of a sample: the one G was asked for).

    After Liu et al. 2020, "Diverse Image Generation via Self-Conditioned GANs" (CVPR): they
    cluster D's features and re-cluster during training; here the K centres come once, before
    the first step, from k-means on the training images average-pooled to at most 8x8 pixels
    (``fit``; ours: fixed pixel-space clusters), and are buffers, so checkpoints, sampling and
    export carry them. The cluster is read from the latent's first two values (ours): the angle
    of (z_0, z_1), uniform on the circle for the normal and sphere priors, is a uniform u in
    [0, 1) that does not change when z is scaled (the truncation trick ``z * psi`` keeps each
    sample's cluster), and cluster k covers the share of [0, 1) the data gives it; with the
    uniform prior, u = (z_0 + 1) / 2, which scaling z does move. BigGAN's threshold
    truncation redraws values inside a square, so the angle, and the clusters' frequencies,
    are then only near the data's. So a seed still names one sample, and G draws each cluster as
    often as the data holds it. Those two values pick the cluster only; G's content input is
    z_2 ... z_{d-1}, so a sample made for a given cluster (``forward(z, k)``: D's step pairs
    samples with the real batch's clusters, as a cGAN does) is one G draws for that cluster.

    forward: z (B, z_dim) float [, k (B,) int64] -> (B, z_dim - 2 + K) float,
    z_2 ... z_{d-1} followed by one-hot(cluster).
    """

    def __init__(self, z_dim: int, clusters: int, spec: DataSpec, z_dist: str = "normal"):
        super().__init__()
        if clusters < 2:
            raise ConfigError(f"model.z_clusters={clusters}: clustering needs at least 2 clusters",
                              hint="--set model.z_clusters=30, or 0 to train on the plain prior")
        if spec.kind != "images":
            raise ConfigError("model.z_clusters clusters images, not 2-D points",
                              hint="--set model.z_clusters=0")
        if z_dim < 3:
            raise ConfigError(f"model.z_clusters needs model.z_dim >= 3 (two values pick the "
                              f"cluster); it is {z_dim}", hint="--set model.z_dim=100")
        self.clusters, self.z_dim, self.z_dist = clusters, z_dim, z_dist
        channels, size = spec.shape[0], min(8, spec.shape[-1])
        self.pooled = size
        self.register_buffer("centres", torch.zeros(clusters, channels * size * size))
        # the prior's cumulative shares: cluster k covers (cumulative[k-1], cumulative[k]]
        self.register_buffer("cumulative", torch.arange(1, clusters + 1) / clusters)

    @property
    def out_dim(self) -> int:
        return self.z_dim - 2 + self.clusters

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images in [-1, 1] -> (B, C * s * s) float: average-pooled to s x s,
        s = min(8, H)."""
        return nn.functional.adaptive_avg_pool2d(x.float(), self.pooled).flatten(1)

    @torch.no_grad()
    def fit(self, images: torch.Tensor, seed: int) -> dict:
        """``fit_features`` on ``images`` (N, C, H, W) float in [-1, 1]."""
        return self.fit_features(self.features(images), seed)

    @torch.no_grad()
    def fit_features(self, feats: torch.Tensor, seed: int) -> dict:
        """k-means (``scipy.cluster.vq.kmeans2``, k-means++ seeding from ``seed``) on pooled
        images (``features``: (N, C * s * s) float): sets the centres and the clusters' shares,
        the shares counted by ``assign`` against the final centres (the labels D will see).
        Returns {"sizes": [...]} (images per cluster). With fewer images than clusters, or a
        cluster no image is nearest to, the clusters without images get no share (G never
        draws them) and a far-away centre (no real image is assigned to them).
        ``ConfigError`` without images."""
        import warnings

        from scipy.cluster.vq import kmeans2

        if len(feats) == 0:
            raise ConfigError("model.z_clusters: no training images to cluster",
                              hint="check --data")
        k = min(self.clusters, len(feats))  # fewer images than clusters: one cluster each
        with warnings.catch_warnings():  # an empty cluster is handled below
            warnings.simplefilter("ignore")
            found, _ = kmeans2(feats.double().numpy(), k, minit="++", seed=seed)
        centres = torch.full((self.clusters, feats.shape[1]), 1e4)  # unused: never the nearest
        centres[:k] = torch.from_numpy(found).float()
        labels = torch.cat([torch.cdist(c.float(), centres).argmin(1) for c in feats.split(4096)])
        sizes = torch.bincount(labels, minlength=self.clusters)
        centres[sizes == 0] = 1e4  # nor one no image is nearest to, which G never draws either
        self.centres.copy_(centres)
        self.cumulative.copy_((sizes.cumsum(0).double() / sizes.sum()).float())
        return {"sizes": sizes.tolist()}

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images in [-1, 1] -> (B,) int64: the nearest centre's index."""
        return torch.cdist(self.features(x), self.centres.float()).argmin(1)

    def component(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) latents -> (B,) int64 cluster: u in [0, 1) from (z_0, z_1) (see the class
        docstring), k = the number of the clusters' cumulative shares below u, so cluster k
        has probability its share."""
        z = z.float()
        if self.z_dist == "uniform":
            u = (z[:, :1] + 1) / 2
        else:
            u = (torch.atan2(z[:, 1:2], z[:, :1]) + math.pi) / (2 * math.pi)
        below = (u > self.cumulative[:-1].float()).sum(1)
        return below.clamp_max(self.clusters - 1)

    def forward(self, z: torch.Tensor, k: torch.Tensor | None = None) -> torch.Tensor:
        k = self.component(z) if k is None else k
        return torch.cat([z[:, 2:], one_hot(k, self.clusters).to(z.dtype)], 1)

    def extra_repr(self) -> str:
        return f"clusters={self.clusters}, pooled={self.pooled}x{self.pooled}"


def latent_input(cfg: ModelConfig, spec: DataSpec | None = None) -> nn.Module:
    """What a generator applies to z first: ``LatentMixture`` when ``model.z_mixture`` is set,
    ``ClusterLatent`` when ``model.z_clusters`` is (families that pass ``spec``: dcgan), else
    the identity. Its output width is ``latent_width(cfg)``. Families that call it: dcgan, mlp,
    resnet (``build_nets`` refuses the keys for the others)."""
    if cfg.z_clusters and spec is not None:
        return ClusterLatent(cfg.z_dim, cfg.z_clusters, spec, cfg.z_dist)
    if not cfg.z_mixture:
        return nn.Identity()
    return LatentMixture(cfg.z_dim, cfg.z_mixture, cfg.z_mixture_sigma)


def latent_width(cfg: ModelConfig) -> int:
    """Width of what ``latent_input`` gives G: z_dim, or with ``model.z_clusters`` K one-hot
    values instead of the two latent values that pick the cluster."""
    return cfg.z_dim - 2 + cfg.z_clusters if cfg.z_clusters else cfg.z_dim


def cluster_latent(G: nn.Module) -> ClusterLatent | None:
    """G's ``ClusterLatent`` (``model.z_clusters``), or None."""
    return next((m for m in G.modules() if isinstance(m, ClusterLatent)), None)


def build_nets(cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning | str = NONE) -> Nets:
    """Build G and D for ``cfg.family``, refusing data the family cannot model and a config
    the conditioning cannot use (``ConfigError``). ``conditioning``: a descriptor, or its
    registered name."""
    family: Family = FAMILIES.get(cfg.family)
    conditioning = as_conditioning(conditioning)
    check_family(family, spec)
    conditioning.check(cfg, spec)
    nets = family.build(cfg, spec, conditioning)
    if cfg.z_mixture and not any(isinstance(m, LatentMixture) for m in nets.G.modules()):
        raise ConfigError(f"model family '{cfg.family}' does not read model.z_mixture",
                          hint="use the dcgan, mlp or resnet family, or --set model.z_mixture=0")
    if cfg.z_clusters and cluster_latent(nets.G) is None:
        raise ConfigError(f"model family '{cfg.family}' does not read model.z_clusters",
                          hint="use the dcgan family, or --set model.z_clusters=0")
    initialise(nets.G, cfg.init)
    initialise(nets.D, cfg.init)
    return nets


@torch.no_grad()
def initialise(module: nn.Module, scheme: str) -> None:
    """dcgan: N(0, 0.02) weights (norm scales N(1, 0.02)); he: He-uniform; ortho: orthogonal
    weights, embeddings included (Saxe et al. 2014, as BigGAN initialises G and D); torch: as
    built."""
    if scheme == "torch":
        return
    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear) + ((nn.Embedding,) if scheme == "ortho"
                                                            else ())
    for m in module.modules():
        if isinstance(m, layers):
            # a spectrally normalised layer computes .weight; initialise what it normalises
            weight = (m.parametrizations.weight.original
                      if nn.utils.parametrize.is_parametrized(m, "weight") else m.weight)
            if scheme == "dcgan":
                nn.init.normal_(weight, 0.0, 0.02)
            elif scheme == "ortho":
                if not weight.is_meta:  # a QR decomposition needs values (preflight builds on meta)
                    nn.init.orthogonal_(weight)
            else:
                nn.init.kaiming_uniform_(weight, a=0.0, nonlinearity="relu")
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine and scheme == "dcgan":
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    settle_spectral_norms(module)


@torch.no_grad()
def settle_spectral_norms(module: nn.Module, iterations: int = 100) -> None:
    """Re-run power iteration on every spectrally normalised weight (after re-initialising
    it), so the first training step already divides by a good estimate of sigma."""
    for m in module.modules():
        if not nn.utils.parametrize.is_parametrized(m, "weight"):
            continue
        for p in m.parametrizations.weight:
            if not hasattr(p, "_u"):
                continue
            w = m.parametrizations.weight.original
            if w.is_meta:  # built on the meta device to count sizes (preflight): no values
                continue
            if p.dim != 0:
                w = w.movedim(p.dim, 0)
            w = w.flatten(1)
            u, v = p._u, p._v
            for _ in range(iterations):
                v.copy_(nn.functional.normalize(w.t() @ u, dim=0, eps=p.eps))
                u.copy_(nn.functional.normalize(w @ v, dim=0, eps=p.eps))


class Discriminator(nn.Module):
    """The shape every family's D shares: ``_features(x, y)`` (defined by the family), the
    optional minibatch-stddev feature, an adversarial ``head``, and for ACGAN / InfoGAN an
    auxiliary head (class logits, or Q's code predictions; ``Conditioning.aux_head_width``
    outputs) on the same features. The auxiliary head's attribute is ``classes`` because
    checkpoints name its weights ``D.classes.*``."""

    head: nn.Module
    classes: nn.Module | None  # the auxiliary head, or None

    def __init__(self, pack: int = 1) -> None:
        super().__init__()
        self.pack = pack  # the family sizes its input layer for `pack` samples
        self.mbstd: nn.Module = nn.Identity()  # a family replaces it when model.mbstd is on

    def _features(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def packed(self, x: torch.Tensor) -> torch.Tensor:
        """PacGAN (Lin et al. 2018): every ``pack`` consecutive samples become one input,
        concatenated along channels (images) or features (vectors); one logit per pack."""
        if self.pack == 1:
            return x
        if len(x) % self.pack:
            raise ValueError(f"a batch of {len(x)} does not split into packs of {self.pack}")
        return x.reshape(len(x) // self.pack, self.pack * x.shape[1], *x.shape[2:])

    def projection(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        """The projection discriminator's class term (Miyato & Koyama 2018), (B,), added to the
        adversarial logit; None for a family without one (the resnet family has one)."""
        return None

    def _logit(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        out = self.head(h).view(-1)
        proj = self.projection(h, y)
        return out if proj is None else out + proj

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._logit(self.mbstd(self._features(self.packed(x), y)), y)

    def forward_with_classes(self, x: torch.Tensor, y: torch.Tensor | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(adversarial logits (B,), auxiliary head (B, outputs)). ``y``: the labels, for a D
        that also takes them (the ``concat_classifier`` conditioning); else None."""
        h = self.mbstd(self._features(x, y))
        return self._logit(h, y), self.classes(h).flatten(1)


class MinibatchStdDev(nn.Module):
    """Karras et al. 2018 (ProGAN, sec. 3): one extra feature, the standard deviation of every
    feature across a group of samples, averaged. A collapsed generator's batch has a tell-tale
    near-zero value that D can use, so G is pushed toward variety.

    Works on (B, C, H, W) maps (adds a constant channel) and on (B, F) vectors (adds a column).
    Groups of ``group`` samples; a batch that does not split evenly is one group.
    """

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b = h.shape[0]
        g = min(self.group, b)
        if b % g:
            g = b
        y = h.reshape(g, b // g, *h.shape[1:]).float()  # sample i is in group i % (b // g)
        std = (y.var(0, unbiased=False) + 1e-8).sqrt()  # (b // g, ...)
        stat = std.flatten(1).mean(1).to(h.dtype)  # (b // g,)
        stat = stat.repeat(g)  # back to (b,), sample i gets its group's value
        extra = stat.view(b, 1, *([1] * (h.dim() - 2))).expand(b, 1, *h.shape[2:])
        return torch.cat([h, extra], 1)

    def extra_repr(self) -> str:
        return f"group={self.group}"


def mbstd_for(cfg: ModelConfig) -> tuple[nn.Module, int]:
    """(module, extra features) for ``model.mbstd``: identity and 0 when off."""
    return (MinibatchStdDev(cfg.mbstd), 1) if cfg.mbstd else (nn.Identity(), 0)


def spectral(module: nn.Module, on: bool) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018): W / sigma(W), sigma by one power
    iteration per training forward pass, on the weight reshaped to (out, in * kh * kw)."""
    return nn.utils.parametrizations.spectral_norm(module) if on else module


def label_input(spec: DataSpec, conditioning: Conditioning | str,
                cfg: ModelConfig | None = None) -> int:
    """G's extra input width: ``Conditioning.g_input_width`` (for callers holding a name)."""
    return as_conditioning(conditioning).g_input_width(spec, cfg)


def head_outputs(spec: DataSpec, conditioning: Conditioning | str, cfg: ModelConfig) -> int:
    """Width of D's second head: ``Conditioning.aux_head_width`` (for callers holding a name)."""
    return as_conditioning(conditioning).aux_head_width(spec, cfg)


def one_hot(y: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, classes).float()


def condition(y: torch.Tensor, width: int) -> torch.Tensor:
    """G's extra input: integer labels become one-hot rows; float rows (InfoGAN codes, or a
    blend of two one-hot labels when interpolating between classes) pass as they are."""
    if y.is_floating_point():
        if y.shape[-1] != width:
            raise ValueError(f"expected {width} conditioning values per sample, got {y.shape[-1]}")
        return y
    return one_hot(y, width)


class SelfAttention(nn.Module):
    """Zhang et al. 2019 (SAGAN, sec. 3): every position attends to every other.

    f, g (keys/queries) and h (values) are 1x1 convolutions to C/8 channels; softmax(f^T g)
    weights the values, a 1x1 convolution v maps back to C, and ``gamma`` (initialised to 0,
    so the block starts as the identity) scales the result: y = gamma * o + x.
    """

    def __init__(self, channels: int, sn: bool = False):
        super().__init__()
        inner = max(1, channels // 8)
        self.f = spectral(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.g = spectral(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.h = spectral(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.v = spectral(nn.Conv2d(inner, channels, 1, bias=False), sn)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        keys = self.f(x).flatten(2)  # (B, C/8, N)
        queries = self.g(x).flatten(2)  # (B, C/8, N)
        values = self.h(x).flatten(2)  # (B, C/8, N)
        attn = torch.softmax(torch.bmm(queries.transpose(1, 2), keys), dim=-1)  # (B, N, N)
        o = torch.bmm(values, attn.transpose(1, 2)).view(b, -1, hgt, wid)  # o_j = sum_i a_ji h_i
        return x + self.gamma * self.v(o)


def check_power_of_two(resolution: int, family: str, lowest: int = 8) -> int:
    """Number of 2x stages between 4x4 and ``resolution``."""
    stages = math.log2(resolution / 4) if resolution >= 4 else -1
    if resolution < lowest or not float(stages).is_integer():
        raise ConfigError(f"family '{family}' needs a power-of-two resolution >= {lowest}, "
                          f"got {resolution}", hint="--set data.resolution=32 (or 16, 64, 128)")
    return int(stages)


def norm_1d(kind: str, width: int) -> nn.Module:
    return {"batch": lambda: nn.BatchNorm1d(width), "layer": lambda: nn.LayerNorm(width),
            "none": nn.Identity, "instance": lambda: nn.LayerNorm(width)}[kind]()


def norm_2d(kind: str, channels: int) -> nn.Module:
    # "layer" normalises over (C, H, W) per sample: GroupNorm with one group.
    return {"batch": lambda: nn.BatchNorm2d(channels), "layer": lambda: nn.GroupNorm(1, channels),
            "instance": lambda: nn.InstanceNorm2d(channels, affine=True),
            "none": nn.Identity}[kind]()
