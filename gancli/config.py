"""One typed schema for a run, and the one way of building it.

A resolved ``Config`` comes from layers merged in a fixed order::

    dataclass defaults < preset YAML < --config FILE < --set key=value < explicit flags

Every layer is checked against the schema as it is merged, so an unknown key or a
value of the wrong type is an error that names the key, the layer it came from and
the valid choices.

The schema is the shared sections below plus the sections that objectives and toolboxes
declare in their own modules (``register_section``). This module imports no torch, so
``gancli --help`` stays instant; the first use of the schema imports the objectives (and
torch) to collect their sections. Keys that moved are listed in ``MOVED_KEYS``; stored
configs written before a move are read through ``upgrade_stored``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gancli.errors import ConfigError, excerpt
from gancli.registry import SECTIONS

Task = Literal["unconditional", "conditional", "translation", "multi-domain"]
Norm = Literal["batch", "instance", "layer", "none"]


def config_field(default: Any, help: str, *, min: float | None = None,
                 max: float | None = None) -> Any:
    """A schema field with a help text and an optional numeric range (``min``/``max``,
    inclusive): every leaf of the schema, built-in or in a registered section, is one."""
    meta = {"help": help, "min": min, "max": max}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


_f = config_field  # the short name the built-in sections below use


@dataclass
class PaperConfig:
    title: str = _f("", "paper title")
    authors: str = _f("", "paper authors")
    year: int = _f(0, "publication year", min=0)
    arxiv: str = _f("", "arXiv identifier")


@dataclass
class DataConfig:
    source: str = _f("digits", "dataset: a folder path, digits[:train|test], shapes, toy:ring8|grid25|spiral, "
                     "torchvision:mnist|fashion-mnist|cifar10|celeba")
    resolution: int = _f(32, "image side in pixels (ignored for 2-D toy data)", min=4, max=4096)
    channels: int | None = _f(None, "1 or 3; null keeps what the data has", min=1, max=4)
    size: int = _f(0, "samples drawn for generated data (toy, shapes); 0 = the built-in default",
                   min=0)
    labels: bool = _f(False, "use class labels (class sub-folders for an image folder)")
    allow_empty_classes: bool = _f(False, "train without a class or domain sub-folder (or "
                                   "attribute) that has no usable image, naming it, instead of "
                                   "refusing the data")
    flip: bool = _f(False, "random horizontal flips of real images")
    crop: Literal["center", "random"] = _f(
        "center", "square crop of data.resolution from images resized to data.resolution x "
        "data.crop_scale: center, or random per sample and epoch (CycleGAN / pix2pix training)")
    crop_scale: float = _f(1.0, "images are prepared at round(data.resolution x this) and cropped "
                           "to data.resolution (CycleGAN: 286/256 = 1.117); 1 = no crop", min=1, max=4)
    cache: bool = _f(True, "prepare image folders into a dataset store in the cache (false: a "
                     "temporary store removed at exit)")
    read_threads: int = _f(16, "threads reading a batch's samples concurrently when batches are "
                           "streamed from a dataset store (two batches are read ahead, the kernel "
                           "told of their samples at once)", min=1, max=256)
    attributes: str = _f("", "StarGAN on a CelebA-style folder: comma list of attribute names "
                         "(columns of the attribute file) to use as domains; empty = sub-folders")
    attr_file: str = _f("", "the attribute file; empty = list_attr_celeba.txt in the image "
                        "folder or next to it")
    direction: Literal["a2b", "b2a"] = _f(
        "a2b", "paired translation (pix2pix): a2b learns A -> B, b2a swaps the halves of every "
        "pair so B is the input")


@dataclass
class ModelConfig:
    family: str = _f("dcgan", "registered model family (gancli zoo lists them)")
    z_dim: int = _f(100, "latent dimension", min=1)
    z_dist: Literal["normal", "uniform", "sphere"] = _f(
        "normal", "latent distribution; sphere = normal projected on the unit sphere times sqrt(z_dim)")
    z_mixture: int = _f(0, "components of a Gaussian-mixture latent built into G's input: "
                        "component k = argmax of z's first K values, G reads centre_k + "
                        "z_mixture_sigma * z (fixed centres, after DeLiGAN, Gurumurthy et al. "
                        "2017); 0 = G reads z itself (dcgan, mlp and resnet families)", min=0)
    z_mixture_sigma: float = _f(0.3, "z_mixture: scale of z around its component's centre "
                                "(the centres are N(0, 1) vectors)", min=0.001, max=10)
    z_clusters: int = _f(0, "self_conditional objective: K clusters of the training images "
                         "(k-means on images pooled to 8x8, fitted before the first step); G "
                         "reads a cluster from z's first two values and takes it one-hot, D is told "
                         "every image's cluster (after Liu et al. 2020's self-conditioned GAN); "
                         "0 = off (dcgan family)", min=0, max=256)
    g_width: int = _f(64, "G width: hidden units (mlp) or base channels (conv families)", min=1)
    d_width: int = _f(64, "D width: hidden units (mlp) or base channels (conv families)", min=1)
    g_depth: int = _f(3, "G hidden layers (mlp; conv families derive depth from resolution)",
                      min=1, max=64)
    d_depth: int = _f(3, "D hidden layers (mlp; conv families derive depth from resolution)",
                      min=1, max=64)
    g_norm: Norm = _f("batch", "normalisation in G")
    d_norm: Norm = _f("batch", "normalisation in D (WGAN-GP: no batch norm in the critic)")
    d_act: Literal["leaky_relu", "relu", "maxout"] = _f("leaky_relu", "activation in D")
    maxout_pieces: int = _f(5, "pieces per maxout unit (d_act=maxout)", min=2)
    init: Literal["dcgan", "he", "torch", "ortho"] = _f(
        "dcgan", "weight init: dcgan = N(0, 0.02), he = He-uniform, torch = PyTorch default, "
        "ortho = orthogonal matrices (Saxe et al. 2014; BigGAN)")
    pack: int = _f(1, "PacGAN packing: D judges this many samples at once, concatenated "
                   "(Lin et al. 2018); 1 = off", min=1, max=16)
    mbstd: int = _f(0, "minibatch standard deviation in D: group size (ProGAN uses 4); 0 = off",
                    min=0)
    sn_g: bool = _f(False, "spectral normalisation in G (resnet family)")
    sn_d: bool = _f(False, "spectral normalisation in D (resnet family)")
    attention: int = _f(0, "resolution at which to add self-attention; 0 = none (resnet and biggan "
                        "families)", min=0)
    shared_dim: int = _f(128, "biggan family: width of the shared class embedding that, joined "
                         "with one chunk of z per block, gives every conditional batch norm its "
                         "gains and biases (Brock et al. 2019)", min=1, max=4096)
    res_blocks: int = _f(0, "residual blocks in translation generators (cyclegan, stargan); "
                         "0 = the papers' choice: 6 up to 128 px, 9 above", min=0, max=64)
    dropout: float = _f(0.5, "pix2pix: dropout rate in the U-Net's first three decoder layers "
                        "(its only noise source); 0 = none", min=0, max=0.9)
    test_dropout: bool = _f(True, "pix2pix: keep the dropout on when translating, as the paper "
                            "does (gancli translate --no-dropout turns it off)")
    info_cat: int = _f(0, "categories of InfoGAN's categorical code; 0 = none", min=0)
    info_cont: int = _f(0, "number of InfoGAN continuous codes", min=0)
    aux_classifier: Literal["ac", "tac", "adc"] = _f(
        "ac", "ACGAN's class head on D: ac = Odena et al. 2017; tac = plus a twin head that learns "
        "the labels of generated samples and whose loss G maximises (TAC-GAN, Gong et al. 2019); "
        "adc = one head over real and generated versions of each class (ADC-GAN, Hou et al. 2022)")
    map_depth: int = _f(8, "stylegan2: dense layers of the mapping network z -> w (paper 8; the "
                        "official small-data 'cifar' configuration 2)", min=1, max=16)
    full_width_res: int = _f(32, "progan: the highest resolution whose stage has the full "
                             "g_width / d_width channels; each octave above has half the one "
                             "below (the paper: 32 px, in its 1024-px networks)", min=4)


@dataclass
class LossConfig:
    name: str = _f("nonsaturating", "adversarial loss: minimax, nonsaturating, lsgan, wasserstein, "
                   "hinge")
    label_smoothing: float = _f(0.0, "one-sided label smoothing: real target 1 - this", min=0, max=0.5)
    label_flip: float = _f(0.0, "probability that a sample's real/fake label is flipped for D "
                           "(noisy labels)", min=0, max=0.5)
    instance_noise: float = _f(0.0, "std of Gaussian noise on D inputs, annealed linearly to 0",
                               min=0)
    cls_weight: float = _f(1.0, "weight of the auxiliary classification loss (acgan, stargan)",
                           min=0)
    mode_seeking: float = _f(0.0, "weight of MSGAN's mode-seeking term: G pays lambda / (|G(z1) - "
                             "G(z2)| / |z1 - z2|) on pairs with one label; 0 = off", min=0)


@dataclass
class RegConfig:
    gp: float = _f(0.0, "gradient penalty weight lambda on real/fake interpolates (WGAN-GP)", min=0)
    r1: float = _f(0.0, "R1 penalty weight gamma on real data (penalty gamma/2 * |grad|^2)", min=0)
    clip: float = _f(0.0, "clip D weights to [-c, c] after each D step (WGAN); 0 = off", min=0)
    drift: float = _f(0.0, "drift term epsilon: D adds epsilon * mean(D(x_real)^2), keeping a "
                      "Wasserstein critic's values near 0 (ProGAN: 0.001); 0 = off", min=0)
    ortho: float = _f(0.0, "orthogonal regularisation of G (BigGAN): G's loss adds beta * sum of "
                      "|W W^T * (1 - I)|_F^2 over its weight matrices (one row per filter); the "
                      "paper's beta is 1e-4; 0 = off", min=0)


@dataclass
class OptimConfig:
    name: Literal["adam", "rmsprop", "sgd"] = _f("adam", "optimiser for G and D")
    lr_g: float = _f(2e-4, "G learning rate", min=0)
    lr_d: float = _f(2e-4, "D learning rate (a different one is TTUR)", min=0)
    beta1: float = _f(0.5, "Adam beta1 (SGD momentum)", min=0, max=1)
    beta2: float = _f(0.999, "Adam beta2", min=0, max=1)
    decay_start: int = _f(0, "step after which both learning rates decay linearly to 0 at the "
                          "last step; 0 = constant", min=0)


@dataclass
class TrainConfig:
    steps: int = _f(5000, "generator steps", min=1)
    batch_size: int = _f(64, "real (and fake) samples per D step, per process (see global_batch)",
                         min=1)
    n_critic: int = _f(1, "D steps per G step (k in Goodfellow 2014, n_critic in WGAN)", min=1)
    ema: float = _f(0.0, "decay of an exponential moving average of G's weights; 0 = off",
                    min=0, max=1)
    ema_start: int = _f(0, "step at which the EMA of G starts averaging; before it the average "
                        "is a copy of G, so early weights do not linger in it", min=0)
    ema_rampup: float = _f(0.0, "ramp-up of the EMA's half-life: at most this share of the "
                           "steps trained so far (StyleGAN2-ADA's ema_rampup, 0.05), so a young, "
                           "fast-moving G is averaged over its recent weights only; 0 = off",
                           min=0, max=1)
    augment: str = _f("", "augmentation of every D input, real and fake: a comma list of the "
                      "DiffAugment policies translation, cutout, color; or ada (adaptive "
                      "discriminator augmentation, Karras et al. 2020); empty = off")
    pool_size: int = _f(0, "image history pool for D's fake batch (Shrivastava 2017); 0 = off",
                        min=0)
    seed: int = _f(0, "seed for weights, latents and data order", min=0)
    log_every: int = _f(50, "steps between logged statistics", min=1)
    sample_every: int = _f(500, "steps between sample grids; 0 = only at the end", min=0)
    ckpt_every: int = _f(1000, "steps between checkpoints; 0 = only at the end", min=0)
    ckpt_minutes: float = _f(15.0, "also a checkpoint at least every this many minutes of "
                             "training (wall clock), so a killed job loses minutes, not hours; "
                             "0 = off", min=0)
    keep: int = _f(3, "checkpoints kept on disk (older ones are deleted)", min=1)
    sample_n: int = _f(64, "samples in each training grid", min=1, max=1024)
    tensorboard: bool = _f(False, "also write the logged statistics and the sample grids as "
                           "TensorBoard events in the run folder (needs gancli[tensorboard]); "
                           "metrics.jsonl stays the record")
    on_nan: Literal["stop", "rollback"] = _f(
        "stop", "on NaN/inf in a loss or gradient: stop (exit 3), or roll back to the last good "
        "checkpoint and retry with both learning rates halved")
    nan_retries: int = _f(3, "roll-backs allowed per run with on_nan=rollback", min=0, max=20)
    precision: Literal["fp32", "bf16", "fp16"] = _f(
        "fp32", "arithmetic of G's and D's forward passes: fp32, or bf16/fp16 autocast (fp16 with "
        "a gradient scaler per optimiser); weights and optimiser state stay fp32")
    channels_last: bool = _f(False, "keep image tensors and conv weights in NHWC layout")
    compile: bool = _f(False, "torch.compile the D and G loss functions whole, gradient penalty "
                       "included (translation models: the sub-networks); falls back to eager, "
                       "with a message, where no compiler is available")
    tf32: bool = _f(True, "TF32 matmuls and convolutions on CUDA (Ampere+); no effect on CPU")
    global_batch: int = _f(0, "batch over all processes (torchrun); batch_size is per process; "
                           "0 = batch_size x processes, else it must equal that product", min=0)
    sync_bn: bool = _f(False, "batch norm statistics over the global batch across processes "
                       "(SyncBatchNorm, CUDA only); off = buffers follow rank 0")


@dataclass
class RunConfig:
    out: str = _f("runs", "folder holding run folders <name>-NNN")
    name: str = _f("", "run folder prefix; empty = the preset name")


@dataclass
class Config:
    """A resolved run config: the shared sections below, plus one section per registered
    owner (``register_section``: an objective's or a toolbox's own knobs, e.g. ``pix2pix``,
    ``ada``) held in ``sections`` and read with ``cfg.section(Pix2PixConfig)``. ``to_dict``,
    YAML, ``--set`` and every schema walker show both kinds alike, as top-level sections."""

    name: str = _f("", "preset name")
    task: Task = _f("unconditional", "what the model does")
    objective: str = _f("unconditional", "training objective (registered)")
    description: str = _f("", "one-line description")
    paper: PaperConfig = field(default_factory=PaperConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    reg: RegConfig = field(default_factory=RegConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # registered sections by name, every one present (defaults for those not given)
    sections: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        registered = registered_sections()
        unknown = set(self.sections) - set(registered)
        if unknown:
            raise ValueError(f"not registered config sections: {sorted(unknown)}")
        self.sections = {name: self.sections[name] if name in self.sections else cls()
                         for name, cls in registered.items()}

    def section(self, cls: type[_S]) -> _S:
        """This config's instance of the registered section class ``cls``."""
        for value in self.sections.values():
            if type(value) is cls:
                return value
        raise ValueError(f"{cls.__name__} is not a registered config section")

    def to_dict(self) -> dict:
        out = {f.name: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
               for f in dataclasses.fields(self) if f.name != "sections"
               for v in [getattr(self, f.name)]}
        out.update((name, dataclasses.asdict(v)) for name, v in self.sections.items())
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @property
    def regularizers(self) -> list[str]:
        """Names of the regularisers this config switches on."""
        return [f.name for f in dataclasses.fields(self.reg) if getattr(self.reg, f.name)]


_S = typing.TypeVar("_S")
_BUILTIN = frozenset(f.name for f in dataclasses.fields(Config))


# ---------------------------------------------------------------------------------------------
# Sections owned by an objective or a toolbox


def register_section(name: str) -> typing.Callable[[type[_S]], type[_S]]:
    """Class decorator: declare ``cls`` (a dataclass of ``config_field`` leaves) as the config
    section ``name``, owned by the module that registers it, so an objective's or a toolbox's
    own knobs live in one place and no shared section is edited to add one. Use the owner's
    registered name (``"pix2pix"``, ``"stylegan2"``, ``"ada"``): a key then says who reads it.
    The section is a top-level key of presets, ``--set`` (``pix2pix.l1_weight=50``), YAML and
    every schema walker, like a built-in one; read it with ``cfg.section(cls)``.

    The registry fills by importing ``gancli.training.objectives`` (``SECTIONS`` in
    ``gancli/registry.py``): a module that registers a section must be imported from there
    (an objective module of ``MODULES``, or a toolbox one of them imports).

    Raises ValueError (a programming error, at import): a name that is not a lower-case
    identifier or is taken (built-in or registered), a class that is not a dataclass, or a
    field without a default and help text (``config_field``), or one that is a section itself.
    """
    def add(cls: type[_S]) -> type[_S]:
        if not name.isidentifier() or name != name.lower() or name in _BUILTIN:
            raise ValueError(f"bad config section name {name!r}: a lower-case identifier that "
                             f"is not a built-in section ({', '.join(sorted(_BUILTIN))})")
        if not dataclasses.is_dataclass(cls):
            raise ValueError(f"config section {name!r}: {cls.__name__} is not a dataclass")
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            if (not f.metadata.get("help") or _is_section(hints[f.name])
                    or f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING):
                raise ValueError(f"config section {name!r}: field {f.name!r} must be a leaf "
                                 "declared with config_field(default, help, min=, max=)")
        SECTIONS.register(name, cls)
        return cls

    return add


def registered_sections() -> dict[str, type]:
    """Name -> dataclass of every registered section, by name (importing their owners)."""
    return dict(SECTIONS.items())


# Keys that moved out of the shared sections into their owner's section (old -> new). A config
# stored before the move (a run's config.yaml, a checkpoint's metadata) is read through
# ``upgrade_stored``; a key typed by a user (--set, --config, a preset) is not renamed: the old
# name is an unknown key whose hint names the new one (``_unknown_key``).
MOVED_KEYS: dict[str, str] = {
    "loss.l1_weight": "pix2pix.l1_weight",
    "loss.gan_weight": "pix2pix.gan_weight",
    "reg.r1_every": "stylegan2.r1_every",
    "reg.pl": "stylegan2.pl_weight",
    "train.style_mixing": "stylegan2.style_mixing",
    "train.phase_images": "progressive.phase_images",
    "train.ada_target": "ada.target",
    "train.ada_kimg": "ada.kimg",
    "loss.info_weight": "infogan.info_weight",
    "loss.cycle_weight": "cycle.cycle_weight",
    "loss.identity_weight": "cycle.identity_weight",
    "loss.rec_weight": "stargan.rec_weight",
    "loss.cls_fake": "acgan.cls_fake",
}


def upgrade_stored(data: Any) -> Any:
    """A stored config dict (``to_dict`` of an earlier version) with every key of
    ``MOVED_KEYS`` moved to its new place; a new copy, ``data`` is untouched. Idempotent; a
    key already at its new place wins over the old one; values are not checked (``check_layer``
    does that); anything but a dict comes back as it is."""
    if not isinstance(data, dict):
        return data
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for old, new in MOVED_KEYS.items():
        old_section, old_key = old.split(".")
        source = out.get(old_section)
        if not isinstance(source, dict) or old_key not in source:
            continue
        value = source.pop(old_key)
        new_section, new_key = new.split(".")
        target = out.setdefault(new_section, {})
        if isinstance(target, dict):
            target.setdefault(new_key, value)
    return out


# ---------------------------------------------------------------------------------------------
# Schema walking


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def _members(cls: type) -> dict[str, tuple[Any, dataclasses.Field | None]]:
    """name -> (type, field) of one node of the schema: a section's fields; for ``Config``,
    its own leaves and sections, then every registered section (field None)."""
    hints = _hints(cls)
    out: dict[str, tuple[Any, dataclasses.Field | None]] = {
        f.name: (hints[f.name], f) for f in dataclasses.fields(cls)
        if not (cls is Config and f.name == "sections")}
    if cls is Config:
        out.update((name, (section, None)) for name, section in registered_sections().items())
    return out


def schema_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the schema, e.g. ``train.steps``, registered sections included."""
    keys = []
    for name, (tp, _) in _members(cls).items():
        if _is_section(tp):
            keys += schema_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def describe_schema(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every leaf: the source of docs/presets.md's table."""
    rows = []
    default = cls()
    for name, (tp, f) in _members(cls).items():
        if _is_section(tp):
            rows += describe_schema(tp, f"{prefix}{name}.")
        else:
            rows.append((prefix + name, _type_name(tp), repr(getattr(default, name)),
                         f.metadata.get("help", "") if f else ""))
    return rows


def schema_table() -> str:
    """The Markdown table of every key (docs/presets.md, "The schema"): ``python -c "from
    gancli.config import schema_table; print(schema_table())"`` regenerates it."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, tp, default, help_ in describe_schema():
        cells = (f"`{key}`", tp.replace(" | ", " / "), f"`{default}`", help_)
        lines.append("| " + " | ".join(c.replace("|", "\\|") if i else c
                                       for i, c in enumerate(cells)) + " |")
    return "\n".join(lines)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(str(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


def _short(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message (user text can be any length)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown_key(key: str, valid: list[str], source: str) -> ConfigError:
    if key in MOVED_KEYS:
        new = MOVED_KEYS[key]
        return ConfigError(f"config key '{key}' has moved to '{new}' (from {_short(source)})",
                           hint=f"write {new} instead: knobs that one objective or toolbox reads "
                                "live in its own section (docs/presets.md)")
    close = difflib.get_close_matches(key[:200], valid, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    section = key.rpartition(".")[0]
    same = [k for k in valid if k.rpartition(".")[0] == section] if section else []
    if not same:  # a wrong section name: list the sections
        same = sorted({k.partition(".")[0] for k in valid})
    return ConfigError(f"unknown config key {excerpt(key)} (from {_short(source)})",
                       hint=f"{hint}valid here: {', '.join(same)}")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check (and gently convert) one value against its annotated type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"bad value {excerpt(value)} for '{key}' (from {source})",
                          hint=f"{hint}choose one of: {', '.join(map(str, choices))}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp in (int, float) and isinstance(value, str):
        # YAML 1.1 reads "1e-4" (no dot) as a string; numbers written that way are still numbers
        try:
            number = float(value.strip())
        except ValueError:
            pass
        else:
            return _coerce(int(number) if tp is int and number.is_integer() else number, tp, key,
                           source)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"'{key}' must be a finite number, got {excerpt(value)} (from {source})")
            return float(value)
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"'{key}' expects {_type_name(tp)}, got {excerpt(value)} (from {source})",
                      hint=f"for example: --set {key}={_example(tp)}")


def _example(tp: Any) -> str:
    return {bool: "true", int: "10", float: "0.0002", str: "name"}.get(tp, "null")


def _check_range(value: Any, f: dataclasses.Field, key: str, source: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ConfigError(f"'{key}' = {excerpt(value)} is out of range {rng} (from {source})",
                          hint=f.metadata.get("help") or None)


def check_layer(layer: dict, source: str, cls: type = Config, prefix: str = "") -> dict:
    """Validate one override layer (a nested dict) against the schema; return it coerced."""
    if not isinstance(layer, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at '{prefix or 'top level'}', "
                          f"got {type(layer).__name__}")
    members = _members(cls)
    out = {}
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if key not in members:
            raise _unknown_key(dotted, [f"{prefix}{k}" for k in members], source)
        tp, f = members[key]
        if _is_section(tp):
            out[key] = check_layer(value, source, tp, dotted + ".")
        else:
            out[key] = _coerce(value, tp, dotted, source)
            if f is not None:
                _check_range(out[key], f, dotted, source)
    return out


def merge(base: dict, layer: dict) -> dict:
    """Deep merge: ``layer`` wins; sections merge key by key."""
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def build(data: dict, cls: type = Config) -> Any:
    """Turn a validated nested dict into the dataclass tree (missing keys take defaults)."""
    members = _members(cls)
    kwargs: dict[str, Any] = {}
    sections: dict[str, Any] = {}
    for key, value in data.items():
        tp, f = members[key]
        value = build(value, tp) if _is_section(tp) else value
        if f is None:  # a registered section of Config
            sections[key] = value
        else:
            kwargs[key] = value
    return cls(**kwargs, sections=sections) if sections else cls(**kwargs)


# ---------------------------------------------------------------------------------------------
# --set parsing


def parse_set(items: list[str] | None) -> dict:
    """Turn ``["train.steps=100", "optim.lr_g=1e-4"]`` into a nested dict of typed values.

    The value's type follows the schema: string fields take the text as written; every
    other field is parsed as a YAML scalar (``1e-4``, ``true``, ``null``).
    """
    out: dict = {}
    hints_cache: dict[str, Any] = {}
    valid = schema_keys()
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"bad --set {excerpt(item)}: expected key=value",
                              hint="for example: --set train.steps=2000")
        if key not in valid:
            raise _unknown_key(key, valid, f"--set {item}")
        tp = hints_cache.setdefault(key, _leaf_type(key))
        if tp is str or (typing.get_origin(tp) is Literal
                         and all(isinstance(a, str) for a in typing.get_args(tp))):
            value: Any = text
        else:
            try:
                value = load_yaml(text, f"--set {key}") if text.strip() else None
            except yaml.YAMLError:
                value = text
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return check_layer(out, "--set") if out else {}


def _leaf_type(key: str) -> Any:
    cls: Any = Config
    *parents, leaf = key.split(".")
    for p in parents:
        cls = _members(cls)[p][0]
    return _members(cls)[leaf][0]


# A YAML document may share one node many times over (anchors and aliases): 567 bytes can stand
# for 10**9 nodes ("billion laughs"). Anything that walks, prints or checks the result then does
# work far beyond the file's size. No config, preset or --set value comes near this many nodes
# (the full schema has about 100 leaves).
MAX_YAML_NODES = 10_000


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses documents whose alias expansion exceeds
    ``MAX_YAML_NODES`` nodes, counted on the composed node graph before anything is built."""

    def compose_document(self):  # type: ignore[override]
        node = super().compose_document()
        if _expanded_nodes(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise yaml.YAMLError(f"more than {MAX_YAML_NODES:,} nodes once its aliases are "
                                 "expanded (an alias bomb?)")
        return node


def _expanded_nodes(node: yaml.Node, cap: int) -> int:
    """Nodes of ``node``'s tree with every alias expanded, counted in time linear in the
    graph's size (shared sub-trees are counted once and multiplied); stops above ``cap``."""
    memo: dict[int, int] = {}

    def count(n: yaml.Node, depth: int) -> int:
        if depth > 100:  # deeper than any config: treat as too big
            return cap + 1
        if id(n) in memo:
            return memo[id(n)]
        total = 1
        if isinstance(n, yaml.SequenceNode):
            children = n.value
        elif isinstance(n, yaml.MappingNode):
            children = [c for pair in n.value for c in pair]
        else:
            children = []
        for c in children:
            total += count(c, depth + 1)
            if total > cap:
                break
        memo[id(n)] = total
        return total

    return count(node, 0)


def load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` with a bound on the expanded size (see ``BoundedSafeLoader``).

    Raises:
        yaml.YAMLError: bad YAML, a tag (no constructor), or a document too large once expanded.
    """
    loader = BoundedSafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_config_file(path: str | Path) -> dict:
    """Read a ``--config`` YAML file (safe loading only) into a validated layer."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}", hint="pass an existing YAML file to --config")
    try:
        data = load_yaml(p.read_text(encoding="utf-8"), str(p)) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot parse {p}: {_yaml_problem(e)}",
                          hint="config files are plain YAML mappings (no tags, no code)") from None
    return check_layer(data, str(p))


def _yaml_problem(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"{problem} at line {mark.line + 1}" if mark else problem


def resolve(layers: list[tuple[str, dict]]) -> Config:
    """Merge validated layers in order (later wins) onto the defaults and build a Config."""
    merged: dict = {}
    for source, layer in layers:
        merged = merge(merged, check_layer(layer, source))
    return build(merged)


def from_dict(data: dict, source: str = "checkpoint") -> Config:
    """Rebuild a Config saved by ``to_dict`` (e.g. from a checkpoint's metadata), by this or an
    earlier version (moved keys: ``upgrade_stored``)."""
    return build(check_layer(upgrade_stored(data), source))
