"""Rebuild a generator from nothing but a checkpoint file, and run it by seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gancli import checkpoints
from gancli.conditioning import NONE, Conditioning
from gancli.config import Config, from_dict
from gancli.errors import CheckpointError, GancliError, UsageError, excerpt
from gancli.models import DataSpec, build_nets
from gancli.preflight import check_checkpoint_shapes
from gancli.registry import OBJECTIVES
from gancli.runtime import resolve_device
from gancli.sampling import codes_for_seeds, latents_for_seeds, truncate

from gancli.validate import check_inference_meta, check_module


@dataclass
class LoadedModel:
    G: torch.nn.Module
    cfg: Config
    spec: DataSpec
    data: dict
    path: Path
    step: int
    device: torch.device
    conditioning: Conditioning = NONE
    weights: str = "G"  # the checkpoint's tensors G was loaded from: "G_ema" or "G"

    @property
    def conditional(self) -> bool:
        """Class-conditional: every sample needs a class label."""
        return self.conditioning.class_labels

    @property
    def has_codes(self) -> bool:
        """InfoGAN: every sample has latent codes next to z (drawn from its seed)."""
        return self.conditioning.codes

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
            raise UsageError("--class needs a conditional model",
                              hint=f"this one is {self.cfg.name} ({self.cfg.task})")
        names = self.classes
        if name in names:
            return names.index(name)
        if name.isdigit() and int(name) < len(names):
            return int(name)
        raise UsageError(f"unknown class {excerpt(name)}", hint=f"classes: {', '.join(names)}")


def load_generator(spec: str | Path, device: str | torch.device | None = None,
                   translation: bool = False, ema: bool = True) -> LoadedModel:
    """G (EMA weights when the run kept them and ``ema`` is set) in eval mode, from a
    checkpoint or run folder.

    A translation model (CycleGAN, StarGAN) maps images to images and has nothing to
    sample: it is refused unless ``translation`` is set (``gancli translate`` sets it), and
    with ``translation`` set only a translation model is accepted.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    path = checkpoints.resolve(spec)
    ckpt = checkpoints.load(path)
    check_inference_meta(ckpt.meta, path)
    try:
        cfg = from_dict(ckpt.meta["config"], f"checkpoint {path.name}")
        data = ckpt.meta["data"]
        data_spec = DataSpec.from_dict(data)
    except (KeyError, TypeError, GancliError) as e:
        raise CheckpointError(f"checkpoint {path} has no usable config ({e})",
                              hint="it may come from an incompatible gancli version") from None
    conditioning = OBJECTIVES.get(cfg.objective).conditioning
    is_translation = conditioning.translates
    if is_translation and not translation:
        raise GancliError(f"{path} is a {cfg.name} translation model: it translates images, it has "
                          "nothing to sample", hint=f"gancli translate --model {spec} --in PHOTO "
                                                    "--out OUT")
    if translation and not is_translation:
        raise GancliError(f"{path} is a {cfg.name} model ({cfg.task}), not a translation model",
                          hint="translate with a cyclegan or stargan run; sample this one with "
                               f"gancli sample {spec}")
    prefix = "G_ema" if ema and any(k.startswith("G_ema.") for k in ckpt.tensors) else "G"
    check_checkpoint_shapes(cfg.model, data_spec, conditioning, ckpt.tensors, prefix, path)
    try:
        G = build_nets(cfg.model, data_spec, conditioning).G
    except (GancliError, ValueError, TypeError, RuntimeError, KeyError, IndexError,
            ZeroDivisionError) as e:  # a stored config/data pair no family can build
        raise CheckpointError(f"checkpoint {path} has no usable config "
                              f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})",
                              hint="it may come from an incompatible gancli version") from None
    check_module(ckpt.tensors, prefix, G, path)  # names, shapes, dtypes, finite values
    checkpoints.load_module(G, ckpt.tensors, prefix)
    G.to(dev).eval()
    return LoadedModel(G, cfg, data_spec, data, path, ckpt.step, dev, conditioning, prefix)


@torch.no_grad()
def generate(model: LoadedModel, seeds: list[int], truncation: float = 1.0,
             batch_size: int = 256, labels: torch.Tensor | None = None,
             threshold: float | None = None) -> torch.Tensor:
    """Outputs for ``seeds`` (images in [-1, 1] or 2-D points), on the CPU, in seed order.

    A conditional model needs one class label per seed; an InfoGAN model takes its codes
    from the seeds unless ``labels`` gives them (one row of codes per seed). Two truncation
    tricks, both off by default: ``threshold`` redraws every latent value beyond it (BigGAN,
    ``sampling.resample_beyond``), then ``truncation`` scales the latents by psi.
    """
    z = latents_for_seeds(seeds, model.cfg.model.z_dim, model.cfg.model.z_dist, threshold)
    if model.has_codes and labels is None:
        labels = model.codes_for(seeds)
    if style_based(model):  # StyleGAN: truncation in w, towards the tracked mean w
        with w_truncation(model, truncation):
            return generate_from_latents(model, z, batch_size, labels)
    return generate_from_latents(model, truncate(z, truncation), batch_size, labels)


def style_based(model: LoadedModel) -> bool:
    """A style-based generator (``stylegan2``): z -> ``mapping`` -> w -> ``synthesis``."""
    return hasattr(model.G, "mapping") and hasattr(model.G, "synthesis")


class w_truncation:
    """Within the block, a style-based G truncates in w by ``psi`` (``G.psi``)."""

    def __init__(self, model: LoadedModel, psi: float):
        self.G, self.psi = model.G, psi

    def __enter__(self):
        self.old, self.G.psi = self.G.psi, self.psi

    def __exit__(self, *exc):
        self.G.psi = self.old


@torch.no_grad()
def styles_for_seeds(model: LoadedModel, seeds: list[int], psi: float = 1.0) -> torch.Tensor:
    """A style-based G's w (len(seeds), w_dim) for ``seeds``, truncated by ``psi``, on the CPU."""
    z = latents_for_seeds(seeds, model.cfg.model.z_dim, model.cfg.model.z_dist)
    return model.G.truncate(model.G.mapping(z.to(model.device)), psi).float().cpu()


@torch.no_grad()
def generate_from_styles(model: LoadedModel, ws: torch.Tensor, batch_size: int = 256
                         ) -> torch.Tensor:
    """Images from a style-based G's styles: ``ws`` (N, w_dim), one w for every layer, or
    (N, num_ws, w_dim), one per layer (style mixing). On the CPU, in order."""
    G = model.G
    outs = []
    for chunk in ws.split(batch_size):
        chunk = chunk.to(model.device)
        if chunk.dim() == 2:
            chunk = G.broadcast(chunk)
        outs.append(G.synthesis(chunk).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0)


@torch.no_grad()
def generate_from_latents(model: LoadedModel, z: torch.Tensor, batch_size: int = 256,
                          labels: torch.Tensor | None = None) -> torch.Tensor:
    if model.conditional and labels is None:
        raise UsageError("a conditional model needs class labels", hint="pass --class K")
    if model.has_codes and labels is None:
        raise UsageError("an InfoGAN model needs its latent codes",
                          hint="generate by seed (the seed fixes the codes)")
    ys = labels.split(batch_size) if labels is not None else [None] * len(z.split(batch_size))
    outs = [model.G(chunk.to(model.device), y if y is None else y.to(model.device)).float().cpu()
            for chunk, y in zip(z.split(batch_size), ys)]
    return torch.cat(outs) if outs else torch.empty(0)


@dataclass
class Translator:
    """A loaded CycleGAN (``kind == "cycle"``), StarGAN (``kind == "stargan"``) or pix2pix
    (``kind == "paired"``) generator."""

    model: LoadedModel

    @property
    def kind(self) -> str:
        c = self.model.conditioning
        return "paired" if c.paired else "cycle" if c.two_way else "stargan"

    @property
    def direction(self) -> str:
        """pix2pix: the one direction the model was trained for (``data.direction``)."""
        return self.model.cfg.data.direction

    @property
    def domains(self) -> list[str]:
        """CycleGAN: the names of domains A and B; StarGAN: the domains it can translate to."""
        if self.kind in ("cycle", "paired"):
            return list(self.model.data.get("domains") or ["A", "B"])
        return self.model.classes

    @property
    def multi_label(self) -> bool:
        """StarGAN on attributes: a target is a 0/1 vector, several attributes at once."""
        return bool(self.model.data.get("multi_label"))

    @property
    def channels(self) -> int:
        shape = self.model.spec.shape
        return int(shape[1] if self.kind in ("cycle", "paired") else shape[0])

    @property
    def resolution(self) -> int:
        return int(self.model.spec.shape[-1])

    def domain_index(self, name: str) -> int:
        names = self.domains
        if name in names:
            return names.index(name)
        lowered = [n.lower() for n in names]
        if name.lower() in lowered:
            return lowered.index(name.lower())
        if name.isdigit() and int(name) < len(names):
            return int(name)
        raise UsageError(f"unknown domain {excerpt(name)}", hint=f"domains: {', '.join(names)}")

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, direction: str = "a2b",
                 target: int | list[int] = 0, dropout: bool | None = None,
                 seed: int = 0) -> torch.Tensor:
        """Translate a batch (N, C, H, W) in [-1, 1] (H, W multiples of 4); returns it on the CPU.

        StarGAN: ``target`` is a domain index, or for an attribute model the indices of the
        attributes to switch on (the others are off). pix2pix: any H, W (the input is padded
        by reflection to the U-Net's multiple and the output cropped back); ``dropout``
        overrides ``model.test_dropout`` (the paper keeps it on), whose masks are drawn from
        a generator seeded with ``seed``, so a translation is repeatable."""
        x = x.to(self.model.device)
        if self.kind == "paired":
            return self._paired(x, dropout, seed)
        if self.kind == "cycle":
            out = self.model.G(x, direction)
        elif self.multi_label:
            y = torch.zeros(len(x), len(self.domains), device=x.device)
            y[:, [target] if isinstance(target, int) else list(target)] = 1.0
            out = self.model.G(x, y)
        else:
            y = torch.full((len(x),), int(target), dtype=torch.long, device=x.device)
            out = self.model.G(x, y)
        return out.float().cpu()


    def _paired(self, x: torch.Tensor, dropout: bool | None, seed: int) -> torch.Tensor:
        G = self.model.G
        m = G.multiple
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % m, -w % m
        if pad_h or pad_w:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        keep = G.test_dropout
        if dropout is not None:
            G.test_dropout = dropout
        try:
            out = G(x, torch.Generator().manual_seed(seed))
        finally:
            G.test_dropout = keep
        return out[..., :h, :w].float().cpu()


def load_translator(spec: str | Path, device: str | torch.device | None = None) -> Translator:
    return Translator(load_generator(spec, device, translation=True))
