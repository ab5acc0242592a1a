"""Rebuild a generator from nothing but a checkpoint file, and run it by seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gancli import checkpoints
from gancli.config import Config, from_dict
from gancli.errors import CheckpointError, GancliError
from gancli.models import DataSpec, build_nets
from gancli.registry import OBJECTIVES
from gancli.runtime import resolve_device
from gancli.sampling import codes_for_seeds, latents_for_seeds, truncate
from gancli.training.state import load_module


@dataclass
class LoadedModel:
    G: torch.nn.Module
    cfg: Config
    spec: DataSpec
    data: dict
    path: Path
    step: int
    device: torch.device
    conditioning: str = "none"

    @property
    def conditional(self) -> bool:
        """Class-conditional: every sample needs a class label."""
        return self.conditioning in ("concat", "classifier")

    @property
    def has_codes(self) -> bool:
        """InfoGAN: every sample has latent codes next to z (drawn from its seed)."""
        return self.conditioning == "info"

    def code_names(self) -> list[tuple[str, str, int]]:
        """(name, kind, values) per InfoGAN code: ``code.0`` ... categorical first."""
        m = self.cfg.model
        out = [("code.0", "categorical", m.info_cat)] if m.info_cat else []
        out += [(f"code.{len(out) + i}", "continuous", 0) for i in range(m.info_cont)]
        return out

    def codes_for(self, seeds: list[int]) -> torch.Tensor:
        m = self.cfg.model
        return codes_for_seeds(seeds, m.z_dim, m.z_dist, m.info_cat, m.info_cont)

    @property
    def classes(self) -> list[str]:
        names = self.data.get("classes") or []
        return names or [str(i) for i in range(self.spec.num_classes)]

    def class_index(self, name: str) -> int:
        """A class given by name or index -> its index; unknown is a one-line error."""
        if not self.conditional:
            raise GancliError("--class needs a conditional model",
                              hint=f"this one is {self.cfg.name} ({self.cfg.task})")
        names = self.classes
        if name in names:
            return names.index(name)
        if name.isdigit() and int(name) < len(names):
            return int(name)
        raise GancliError(f"unknown class '{name}'", hint=f"classes: {', '.join(names)}")


def load_generator(spec: str | Path, device: str | torch.device | None = None) -> LoadedModel:
    """G (EMA weights when the run kept them) in eval mode, from a checkpoint or run folder."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    path = checkpoints.resolve(spec)
    ckpt = checkpoints.load(path)
    try:
        cfg = from_dict(ckpt.meta["config"], f"checkpoint {path.name}")
        data = ckpt.meta["data"]
        data_spec = DataSpec.from_dict(data)
    except (KeyError, TypeError, GancliError) as e:
        raise CheckpointError(f"checkpoint {path} has no usable config ({e})",
                              hint="it may come from an incompatible gancli version") from None
    conditioning = OBJECTIVES.get(cfg.objective).conditioning
    G = build_nets(cfg.model, data_spec, conditioning).G
    prefix = "G_ema" if any(k.startswith("G_ema.") for k in ckpt.tensors) else "G"
    try:
        load_module(G, ckpt.tensors, prefix)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not match its own config: "
                              f"{str(e).splitlines()[0]}", hint="the file may be tampered with") from None
    G.to(dev).eval()
    return LoadedModel(G, cfg, data_spec, data, path, ckpt.step, dev, conditioning)


@torch.no_grad()
def generate(model: LoadedModel, seeds: list[int], truncation: float = 1.0,
             batch_size: int = 256, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Outputs for ``seeds`` (images in [-1, 1] or 2-D points), on the CPU, in seed order.

    A conditional model needs one class label per seed; an InfoGAN model takes its codes
    from the seeds unless ``labels`` gives them (one row of codes per seed).
    """
    z = latents_for_seeds(seeds, model.cfg.model.z_dim, model.cfg.model.z_dist)
    if model.has_codes and labels is None:
        labels = model.codes_for(seeds)
    return generate_from_latents(model, truncate(z, truncation), batch_size, labels)


@torch.no_grad()
def generate_from_latents(model: LoadedModel, z: torch.Tensor, batch_size: int = 256,
                          labels: torch.Tensor | None = None) -> torch.Tensor:
    if model.conditional and labels is None:
        raise GancliError("a conditional model needs class labels", hint="pass --class K")
    if model.has_codes and labels is None:
        raise GancliError("an InfoGAN model needs its latent codes",
                          hint="generate by seed (the seed fixes the codes)")
    ys = labels.split(batch_size) if labels is not None else [None] * len(z.split(batch_size))
    outs = [model.G(chunk.to(model.device), y if y is None else y.to(model.device)).float().cpu()
            for chunk, y in zip(z.split(batch_size), ys)]
    return torch.cat(outs) if outs else torch.empty(0)
