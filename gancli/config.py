"""One typed schema for a run, and the one way of building it.

A resolved ``Config`` comes from layers merged in a fixed order::

    dataclass defaults < preset YAML < --config FILE < --set key=value < explicit flags

Every layer is checked against the schema as it is merged, so an unknown key or a
value of the wrong type is an error that names the key, the layer it came from and
the valid choices. This module imports no torch: ``gancli --help`` stays instant.
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

Task = Literal["unconditional", "conditional", "translation", "multi-domain"]
Norm = Literal["batch", "instance", "layer", "none"]


def _f(default: Any, help: str, *, min: float | None = None, max: float | None = None) -> Any:
    """A schema field with a help text and an optional numeric range."""
    meta = {"help": help, "min": min, "max": max}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


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
    cls_fake: float = _f(1.0, "ACGAN: weight of D's class loss on generated samples relative to "
                         "real ones; 0 = D's classifier learns from real data only", min=0)
    mode_seeking: float = _f(0.0, "weight of MSGAN's mode-seeking term: G pays lambda / (|G(z1) - "
                             "G(z2)| / |z1 - z2|) on pairs with one label; 0 = off", min=0)
    info_weight: float = _f(1.0, "weight of the mutual-information term (infogan)", min=0)
    cycle_weight: float = _f(10.0, "weight of the cycle-consistency L1 loss (cyclegan)", min=0)
    identity_weight: float = _f(0.5, "identity loss weight, as a fraction of cycle_weight (cyclegan)",
                                min=0)
    rec_weight: float = _f(10.0, "weight of the reconstruction loss (stargan)", min=0)
    l1_weight: float = _f(100.0, "weight lambda of the L1 distance to the target (pix2pix)", min=0)
    gan_weight: float = _f(1.0, "weight of the conditional GAN term in G's loss (pix2pix); 0 = "
                           "the same U-Net trained with L1 alone", min=0)


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
    r1_every: int = _f(1, "lazy regularisation: R1 only every this many D steps, scaled by it "
                       "(StyleGAN2: 16); objective stylegan2", min=1, max=1000)
    pl: float = _f(0.0, "StyleGAN2 path-length regularisation weight (paper 2), every 4 G steps; "
                   "0 = off; objective stylegan2", min=0)


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
    augment: str = _f("", "augmentation of every D input, real and fake: a comma list of the "
                      "DiffAugment policies translation, cutout, color; or ada (adaptive "
                      "discriminator augmentation, Karras et al. 2020); empty = off")
    ada_target: float = _f(0.6, "ADA: target of r_t = E[sign D(real)]; p rises while r_t is above "
                           "it", min=0, max=1)
    ada_kimg: float = _f(500.0, "ADA: thousands of real images over which p can go from 0 to 1 "
                         "(paper 500)", min=0.001)
    style_mixing: float = _f(0.0, "stylegan2: share of G batches with mixed styles (two latents, "
                             "one crossover layer; paper 0.9)", min=0, max=1)
    pool_size: int = _f(0, "image history pool for D's fake batch (Shrivastava 2017); 0 = off",
                        min=0)
    phase_images: int = _f(0, "progressive growing (objective progressive): real images per "
                           "phase, counted as steps x batch_size; each stage's fade-in and its "
                           "stabilisation take one phase (ProGAN: 800,000); 0 = the full-resolution "
                           "network from the first step", min=0)
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
    compile: bool = _f(False, "torch.compile G's and D's sub-networks (falls back to eager, with a "
                       "message, where no compiler is available)")
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @property
    def regularizers(self) -> list[str]:
        """Names of the regularisers this config switches on."""
        return [f.name for f in dataclasses.fields(self.reg)
                if getattr(self.reg, f.name) and f.name != "r1_every"]  # a cadence, not a term


# ---------------------------------------------------------------------------------------------
# Schema walking


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def schema_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the schema, e.g. ``train.steps``."""
    keys = []
    for name, tp in _hints(cls).items():
        if _is_section(tp):
            keys += schema_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def describe_schema(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every leaf: the source of docs/presets.md's table."""
    rows = []
    hints = _hints(cls)
    default = cls()
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_section(tp):
            rows += describe_schema(tp, f"{prefix}{f.name}.")
        else:
            rows.append((prefix + f.name, _type_name(tp), repr(getattr(default, f.name)),
                         f.metadata.get("help", "")))
    return rows


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
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise _unknown_key(dotted, [f"{prefix}{k}" for k in fields], source)
        tp = hints[key]
        if _is_section(tp):
            out[key] = check_layer(value, source, tp, dotted + ".")
        else:
            out[key] = _coerce(value, tp, dotted, source)
            _check_range(out[key], fields[key], dotted, source)
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
    hints = _hints(cls)
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = build(value, hints[key]) if _is_section(hints[key]) else value
    return cls(**kwargs)


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
        cls = _hints(cls)[p]
    return _hints(cls)[leaf]


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
    """Rebuild a Config saved by ``to_dict`` (e.g. from a checkpoint's metadata)."""
    return build(check_layer(data, source))
