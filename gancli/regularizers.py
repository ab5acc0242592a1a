"""Regularisers: of the discriminator (gradient penalty, R1, weight clipping) and of the
generator's weights (BigGAN's orthogonal regularisation)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch
from torch import nn

from gancli.registry import REGULARIZERS

Tensor = torch.Tensor


def _grad_norm2(D: Callable[[Tensor], Tensor], inputs: Tensor) -> Tensor:
    """Per-sample squared norm of d(sum D(inputs))/d inputs, kept in the graph (in fp32).

    Eagerly this is ``autograd.grad(create_graph=True)``, a double backward. Inside
    ``torch.compile`` (``train.compile``) it is ``torch.func.grad`` instead: the compiler
    then writes the input gradient out as ordinary operations, so one compiled graph (and
    its first-order backward) covers D's whole step, penalty included."""
    if torch.compiler.is_compiling():
        grad = torch.func.grad(lambda x: D(x).float().sum())(inputs)
    else:
        inputs = inputs.requires_grad_(True)
        (grad,) = torch.autograd.grad(D(inputs).float().sum(), inputs, create_graph=True)
    return grad.float().flatten(1).pow(2).sum(1)


def _penalty_precision(x: Tensor):
    """The penalty's own pass through D runs in fp32 under fp16 autocast: its inner gradient
    is not loss-scaled, so small values would flush to zero in fp16 (and scaling it instead
    overflows whenever the loss scale is still being found). bf16 keeps fp32's exponent
    range and stays on: the penalty then costs bf16 speed, not fp32's."""
    kind = x.device.type
    if torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == torch.float16:
        return torch.autocast(kind, enabled=False)
    return nullcontext()


@REGULARIZERS.register("gp")
def gradient_penalty(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     alpha: Tensor) -> Tensor:
    """Gulrajani et al. 2017: mean (|grad D(x_hat)|_2 - 1)^2, x_hat = a x + (1 - a) G(z).

    ``alpha`` has one U[0, 1] value per sample, drawn by the caller from its own
    generator so that runs are reproducible.
    """
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))
    x_hat = alpha * real.detach().float() + (1 - alpha) * fake.detach().float()
    with _penalty_precision(x_hat):
        norm = (_grad_norm2(D, x_hat) + 1e-12).sqrt()
    return ((norm - 1) ** 2).mean()


@REGULARIZERS.register("r1")
def r1_penalty(D: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """Mescheder et al. 2018: mean |grad D(x)|^2 on real data (the caller scales by gamma/2)."""
    x = real.detach()
    with _penalty_precision(x):
        return _grad_norm2(D, x).mean()


@REGULARIZERS.register("drift")
def drift_penalty(d_real: Tensor) -> Tensor:
    """Karras et al. 2018 (ProGAN, appendix A.1): mean D(x)^2 over real samples (the caller
    scales it by epsilon_drift = 0.001), which keeps a Wasserstein critic's output from
    drifting far from 0 without changing what it ranks. ``d_real``: (B,) critic values."""
    return d_real.float().pow(2).mean()


@REGULARIZERS.register("clip")
@torch.no_grad()
def clip_weights(D: nn.Module, c: float) -> None:
    """Arjovsky et al. 2017: clamp every parameter of D to [-c, c] after each D step."""
    for p in D.parameters():
        p.clamp_(-c, c)


def ortho_weights(module: nn.Module) -> list[Tensor]:
    """The weight matrices orthogonal regularisation applies to: every parameter of two or more
    dimensions (the trainable ``original`` of a spectrally normalised weight), except class
    embeddings (``nn.Embedding``, or a module with ``ortho_exempt = True``), which BigGAN
    leaves out: a class's embedding row need not be orthogonal to the others'."""
    exempt = {id(p) for m in module.modules()
              if isinstance(m, nn.Embedding) or getattr(m, "ortho_exempt", False)
              for p in m.parameters()}
    return [p for p in module.parameters() if p.dim() >= 2 and id(p) not in exempt]


@REGULARIZERS.register("ortho")
def orthogonal_penalty(weights: list[Tensor]) -> Tensor:
    """Brock et al. 2019 (BigGAN, sec. 3.1, eq. 3): sum over ``weights`` of
    |W W^T * (1 - I)|_F^2, W the weight reshaped to (out, in * kh * kw), one row per filter.

    Only the filters' pairwise inner products are pushed to 0; their norms are free (unlike
    the full |W W^T - I|^2 of Brock et al. 2017). A scalar in fp32, differentiable; the caller
    scales it by beta (``reg.ortho``, 1e-4 in the paper). Its gradient is
    4 beta (W W^T * (1 - I)) W per matrix.
    """
    total = None
    for w in weights:
        m = w.float().flatten(1)  # (out, fan_in)
        gram = m @ m.t()  # (out, out)
        off = gram - torch.diag_embed(torch.diagonal(gram))
        term = off.pow(2).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("orthogonal regularisation found no weight matrix")
    return total
