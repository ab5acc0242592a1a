"""What every model family provides, and the helpers they share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

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


# How labels enter the networks, as the objective asks for it:
#   none        G(z), D(x)
#   concat      G(z ++ onehot(y)), D(x ++ onehot(y)) (Mirza & Osindero 2014)
#   classifier  G(z ++ onehot(y)), D(x) with an auxiliary class head (Odena et al. 2017)
CONDITIONINGS = ("none", "concat", "classifier")


@dataclass(frozen=True)
class Family:
    """A registered model family: a builder plus what it accepts."""

    name: str
    build: Callable[[ModelConfig, DataSpec, str], Nets]
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"images"}))
    summary: str = ""


def register_family(name: str, *, kinds: set[str], summary: str) -> Callable:
    def wrap(build: Callable[[ModelConfig, DataSpec, str], Nets]) -> Callable:
        FAMILIES.register(name, Family(name, build, frozenset(kinds), summary))
        return build

    return wrap


def build_nets(cfg: ModelConfig, spec: DataSpec, conditioning: str = "none") -> Nets:
    """Build G and D for ``cfg.family``, refusing data the family cannot model."""
    family: Family = FAMILIES.get(cfg.family)
    if spec.kind not in family.kinds:
        alt = "--set model.family=mlp" if spec.kind == "points" else "an image family such as dcgan"
        raise ConfigError(f"model family '{family.name}' cannot model {spec.kind} data",
                          hint=f"use {alt}")
    if conditioning != "none" and spec.num_classes < 2:
        raise ConfigError("a conditional model needs labelled data with at least two classes",
                          hint="use digits or shapes, or an image folder with one sub-folder per "
                               "class and --set data.labels=true")
    nets = family.build(cfg, spec, conditioning)
    initialise(nets.G, cfg.init)
    initialise(nets.D, cfg.init)
    return nets


@torch.no_grad()
def initialise(module: nn.Module, scheme: str) -> None:
    """dcgan: N(0, 0.02) weights (norm scales N(1, 0.02)); he: He-uniform; torch: as built."""
    if scheme == "torch":
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if scheme == "dcgan":
                nn.init.normal_(m.weight, 0.0, 0.02)
            else:
                nn.init.kaiming_uniform_(m.weight, a=0.0, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine and scheme == "dcgan":
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Discriminator(nn.Module):
    """The shape every family's D shares: ``body`` features, an adversarial ``head``, and for
    ACGAN a ``classes`` head on the same features. A family defines ``_features(x, y)``."""

    head: nn.Module
    classes: nn.Module | None

    def _features(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self._features(x, y)).view(-1)

    def forward_with_classes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self._features(x, None)
        return self.head(h).view(-1), self.classes(h).flatten(1)


def label_input(spec: DataSpec, conditioning: str) -> int:
    """Extra input width a network needs for one-hot labels (0 when unconditional)."""
    return spec.num_classes if conditioning != "none" else 0


def one_hot(y: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, classes).float()


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
