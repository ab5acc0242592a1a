"""Unconditional training on clusters of the data: the self-conditioned GAN (Liu et al. 2020).

A generator that maps one connected latent space onto data of separate classes must send some
latents between them, and those samples are ambiguous (Khayatkhoei et al. 2018). Giving G a
discrete latent alone (``model.z_mixture``) removes them, but D cannot tell G's "component
k" from any other real image, so G is free to draw one image per component. Here the discrete
latent is a cluster of the training images, and D is told it for every image it judges: a
real image with its nearest cluster centre, a sample with the cluster G was asked for. D then
asks "real or generated, for cluster k", and G must match each cluster's own variety, as a
class-conditional GAN matches each class's.

Liu, Wang, Torralba & Zhu, "Diverse Image Generation via Self-Conditioned GANs" (CVPR 2020)
cluster D's features and re-cluster during training; ours clusters the pixels once before the
first step (``ClusterLatent.fit``), so the clusters are fixed and cost nothing per step. From
outside, G stays unconditional: it reads the cluster from its latent (``ClusterLatent``), so
``sample --seeds``, interpolation, truncation and export work as for any G(z).
"""

from __future__ import annotations

import torch

from gancli.conditioning import CLUSTERS
from gancli.imaging import from_uint8
from gancli.models.base import cluster_latent
from gancli.registry import OBJECTIVES
from gancli.training.objectives.adversarial import AdversarialObjective
from gancli.training.objectives.base import Stats, Tensor

CLUSTER_SAMPLE = 10_000  # at most this many training images go into k-means (memory bound)


class SelfConditionalObjective(AdversarialObjective):
    """G(z) against real data, D given the cluster of each image (``model.z_clusters`` K).

    D: the adversarial loss on D(x, c(x)) and D(G(z, c(x)), c(x)) for the real batch's
    clusters c(x); G: the adversarial loss on D(G(z), k(z)) for the clusters its latents pick,
    plus whatever terms ``AdversarialObjective`` adds (mode-seeking pairs share their
    cluster). ``prepare`` fits the clusters on up to 10,000 training images drawn
    with the run's seed.
    """

    conditioning = CLUSTERS
    families = ("dcgan",)
    families_need = "a generator that reads model.z_clusters (the dcgan family)"

    def __init__(self, cfg, G, D, rng, device, num_classes=0):
        super().__init__(cfg, G, D, rng, device, num_classes)
        self.clusters = cluster_latent(G)
        self.seed = cfg.train.seed

    def prepare(self, data) -> str:
        """k-means on up to ``CLUSTER_SAMPLE`` training images (a random subset from the run's
        seed, read through ``data.x[idx]``, so a prepared store stays on disk)."""
        n = len(data)
        gen = torch.Generator().manual_seed(self.seed)
        idx = (torch.randperm(n, generator=gen)[:CLUSTER_SAMPLE].sort().values
               if n > CLUSTER_SAMPLE else torch.arange(n))
        # pooled to 8x8 a chunk at a time: memory is bounded by the chunk, not the image size
        feats = torch.cat([self.clusters.features(from_uint8(data.fit(data.x[chunk])))
                           for chunk in idx.split(256)])
        # fit_features copies into G's buffers, already on the run's device
        sizes = [n for n in self.clusters.fit_features(feats, self.seed)["sizes"] if n]
        asked = self.clusters.clusters
        of = "" if len(sizes) == asked else f" (of model.z_clusters={asked})"
        return (f"clusters: {len(sizes)}{of} by k-means on {len(idx):,} training images, "
                f"{min(sizes)}-{max(sizes)} images each")

    def discriminate(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return self.D(x, y), None

    def real_labels(self, real: Tensor, labels: Tensor | None) -> Tensor:
        return self.clusters.assign(real)

    def fake_inputs(self, y_real: Tensor | None, n: int) -> tuple[Tensor, Tensor]:
        """D's step: samples of the real batch's clusters (both halves share one mix of
        clusters, as in a cGAN), which G makes from the latent's content values alone."""
        return self.latents(n), y_real

    def g_step(self, batch_size: int, progress: float) -> tuple[Tensor, Stats]:
        z = self.latents(batch_size)
        half = batch_size // 2
        if self.mode_seeking and half:  # mode-seeking pairs (i, half + i) share their cluster
            z[half:2 * half, :2] = z[:half, :2]
        return self.g_loss(z, self.clusters.component(z), progress)


OBJECTIVES.register("self_conditional", SelfConditionalObjective, tasks={"unconditional"})
