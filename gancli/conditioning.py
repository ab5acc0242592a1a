"""Kinds of conditioning: what G and D take beside their input, as one frozen description.

An objective names its kind (``Objective.conditioning``); model families, previews,
inference, export and the EMA's batch-norm re-estimation read the description's fields,
never its name. A new kind (BigGAN's shared class embedding, pix2pix's paired input) is one
entry in ``CONDITIONINGS`` plus whatever new field it needs.

=================  ================================================================================
none               G(z), D(x)
concat             G(z ++ onehot(y)), D(x ++ onehot(y)) (Mirza & Osindero 2014; the resnet family
                   projects instead: Miyato & Koyama 2018)
classifier         G(z ++ onehot(y)), D(x) with an auxiliary class head (Odena et al. 2017)
concat_classifier  G(z ++ onehot(y)), D(x, y) as in concat, plus the auxiliary class head (a
                   projection D with ADC-GAN's head, Hou et al. 2022)
info               G(z ++ c) for InfoGAN codes c, D(x) with a head Q(c | x) (Chen et al. 2016)
translation        G maps images to images, A -> B and B -> A; D per domain (CycleGAN, Zhu et al. 2017)
domain             G(x, target domain), D(x) with a domain head (StarGAN, Choi et al. 2018)
paired             G(x) -> y for pixel-aligned pairs, D(x, y) on the pair (pix2pix, Isola et al. 2017)
clusters           G(z) reads a cluster k of the data from z and takes it one-hot; D(x ++ onehot(k)),
                   k of a real image its nearest cluster centre (self-conditioned GAN, Liu et al. 2020)
=================  ================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gancli.errors import ConfigError

if TYPE_CHECKING:
    from gancli.config import ModelConfig
    from gancli.models.base import DataSpec


@dataclass(frozen=True)
class Conditioning:
    """What a kind of conditioning needs from the networks and the data.

    - ``class_labels``: G takes the data's class labels (one-hot, (B, K) float, after the
      latent); D's step pairs real images with their own labels; previews show a row per class.
    - ``codes``: G takes InfoGAN codes (one-hot categorical then continuous, (B, cat + cont)),
      drawn per sample, never read from the data.
    - ``d_input``: the label reaches D as an input (one-hot planes or features, or projection
      in the resnet family), not only through a head.
    - ``class_head`` / ``code_head``: D has a second head on its features: class logits (ACGAN),
      or Q's predictions of the codes (InfoGAN). Its width is ``aux_head_width``.
    - ``translates``: G maps images to images (no latent); nothing to sample by seed.
    - ``two_way``: G holds both directions, ``a2b`` and ``b2a`` (CycleGAN).
    - ``target_domain``: G takes the target domain (an index, or a 0/1 attribute vector) next to
      the image (StarGAN).
    - ``paired``: G maps an input image to its pixel-aligned target, one way, with dropout noise
      from a seeded generator; D judges (input, output) pairs (pix2pix).
    - ``clusters``: G's labels are clusters of the training images (``model.z_clusters``) that
      G reads from its own latent, so from outside G is unconditional (sampled by seed alone);
      D takes the cluster as an input (``d_input``), ``model.z_clusters`` values wide.
    """

    name: str
    class_labels: bool = False
    codes: bool = False
    d_input: bool = False
    class_head: bool = False
    code_head: bool = False
    translates: bool = False
    two_way: bool = False
    target_domain: bool = False
    paired: bool = False
    clusters: bool = False

    @property
    def conditional(self) -> bool:
        """Anything beside a latent per sample: labels, codes, a domain or an input image."""
        return self.class_labels or self.codes or self.translates

    def g_input_width(self, spec: DataSpec, cfg: ModelConfig | None = None) -> int:
        """Extra input width of a latent-to-image G: K one-hot labels, cat + cont InfoGAN codes
        (0 without ``cfg``), or 0."""
        if self.codes:
            return code_width(cfg) if cfg is not None else 0
        return spec.num_classes if self.class_labels else 0

    def d_label_width(self, spec: DataSpec, cfg: ModelConfig) -> int:
        """Width of the label D takes as an input (``d_input``): the data's classes, or the
        clusters of ``model.z_clusters``; 0 when D takes none."""
        if not self.d_input:
            return 0
        return cfg.z_clusters if self.clusters else spec.num_classes

    def aux_head_width(self, spec: DataSpec, cfg: ModelConfig) -> int:
        """Width of D's second head: class logits (ACGAN; twice as many with
        ``model.aux_classifier`` tac or adc, see ``ACGANObjective``), Q's code predictions
        (InfoGAN), or 0 when D has none."""
        if self.class_head:
            return spec.num_classes * (1 if cfg.aux_classifier == "ac" else 2)
        if self.code_head:
            return code_width(cfg)
        return 0

    def draw(self, n: int, num_classes: int, cfg: ModelConfig,
             rng: torch.Generator) -> torch.Tensor | None:
        """G's second input for ``n`` samples of its own, from ``rng`` (CPU): (n,) int64 labels
        uniform over the classes, (n, cat + cont) InfoGAN codes, or None (nothing drawn)."""
        if self.class_labels:
            return torch.randint(num_classes, (n,), generator=rng)
        if self.codes:
            from gancli.sampling import draw_codes

            return draw_codes(n, cfg.info_cat, cfg.info_cont, rng)
        return None

    def check(self, cfg: ModelConfig, spec: DataSpec | None = None) -> None:
        """Refuse a model config (and data, when ``spec`` is given) this kind cannot use:
        ``ConfigError`` with a hint."""
        if self.class_labels and spec is not None and spec.num_classes < 2:
            raise ConfigError("a conditional model needs labelled data with at least two classes",
                              hint="use digits or shapes, or an image folder with one sub-folder per "
                                   "class and --set data.labels=true")
        if cfg.pack > 1 and self.conditional:
            raise ConfigError("packing is for unconditional D: a pack would mix labels or codes",
                              hint="set model.pack=1")
        if self.codes and not (cfg.info_cat or cfg.info_cont):
            raise ConfigError("InfoGAN needs at least one latent code",
                              hint="--set model.info_cat=10 and/or --set model.info_cont=2")
        if self.codes and cfg.info_cat == 1:
            raise ConfigError("a categorical code needs at least two categories",
                              hint="--set model.info_cat=10 (or 0 for none)")
        if cfg.z_clusters and not self.clusters:
            raise ConfigError("model.z_clusters is for the self_conditional objective",
                              hint="--set objective=self_conditional, or --set model.z_clusters=0")
        if self.clusters and not cfg.z_clusters:
            raise ConfigError("the self_conditional objective needs model.z_clusters (the number "
                              "of clusters of the training images)",
                              hint="--set model.z_clusters=30, or train the plain objective: "
                                   "--set objective=unconditional --set model.z_clusters=0")
        if self.clusters and cfg.z_clusters < 2:
            raise ConfigError(f"model.z_clusters={cfg.z_clusters}: clustering needs at least 2 "
                              "clusters", hint="--set model.z_clusters=30")
        if self.clusters and cfg.z_dim < 3:
            raise ConfigError(f"model.z_clusters needs model.z_dim >= 3 (two values pick the "
                              f"cluster); it is {cfg.z_dim}", hint="--set model.z_dim=100")
        if self.clusters and cfg.z_mixture:
            raise ConfigError("model.z_clusters and model.z_mixture both split the latent space",
                              hint="--set model.z_mixture=0")
        if self.clusters and cfg.pack > 1:
            raise ConfigError("packing is for an unconditional D: a pack would mix clusters",
                              hint="set model.pack=1")
        if cfg.aux_classifier != "ac" and not self.class_head:
            raise ConfigError(f"model.aux_classifier={cfg.aux_classifier} is a class head for "
                              "ACGAN's discriminator", hint="set model.aux_classifier=ac, or train "
                                                            "the acgan preset")


def code_width(cfg: ModelConfig) -> int:
    """InfoGAN: a one-hot categorical code plus the continuous codes."""
    return cfg.info_cat + cfg.info_cont


NONE = Conditioning("none")
CONCAT = Conditioning("concat", class_labels=True, d_input=True)
CLASSIFIER = Conditioning("classifier", class_labels=True, class_head=True)
CONCAT_CLASSIFIER = Conditioning("concat_classifier", class_labels=True, d_input=True,
                                 class_head=True)
INFO = Conditioning("info", codes=True, code_head=True)
TRANSLATION = Conditioning("translation", translates=True, two_way=True)
DOMAIN = Conditioning("domain", translates=True, target_domain=True)
PAIRED = Conditioning("paired", translates=True, paired=True)
CLUSTERS = Conditioning("clusters", d_input=True, clusters=True)

CONDITIONINGS: dict[str, Conditioning] = {
    c.name: c for c in (NONE, CONCAT, CLASSIFIER, CONCAT_CLASSIFIER, INFO, TRANSLATION, DOMAIN,
                        PAIRED, CLUSTERS)}


def as_conditioning(kind: Conditioning | str) -> Conditioning:
    """A descriptor, or the one registered under a name (``"concat"``); unknown names raise
    ``ValueError`` (a programming error: names come from code, not from users)."""
    if isinstance(kind, Conditioning):
        return kind
    try:
        return CONDITIONINGS[kind]
    except KeyError:
        raise ValueError(f"unknown conditioning {kind!r}; known: {', '.join(CONDITIONINGS)}") from None
