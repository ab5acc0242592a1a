"""Progressive growing as a schedule of the objective (Karras et al. 2018, ProGAN, sec. 2).

Training runs in phases of ``progressive.phase_images`` real images (steps x batch size): the 4x4
networks first, then for every further octave a fade-in phase, in which the new blocks'
weight ``alpha`` rises linearly from 0 to 1, and a stabilisation phase at alpha 1. After
the last octave's fade-in the networks stay at the data's resolution until the last step.

The loop knows nothing of this: it calls ``on_step(step)`` at the start of every step, and
the objective sets G's and D's ``stage`` and ``alpha`` (buffers of the ``progan`` family,
saved with the weights) as a pure function of ``step``, so a resumed run, even in the middle
of a fade-in, continues bit-identically. ``on_step`` returns True at every phase boundary
while the networks still grow: the loop then clears both optimisers' state, as the paper's
official code does (``reset_opt_for_new_lod``: Adam's moments start afresh whenever new
layers come in or a fade-in ends).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gancli.config import config_field, register_section
from gancli.models.progan import fade_reals
from gancli.registry import OBJECTIVES
from gancli.training.objectives.adversarial import AdversarialObjective
from gancli.training.objectives.base import Stats


@register_section("progressive")
@dataclass
class ProgressiveConfig:
    """The progressive objective's own knobs (section ``progressive``)."""

    phase_images: int = config_field(
        0, "real images per phase, counted as steps x batch_size; each stage's fade-in and its "
        "stabilisation take one phase (Karras et al. 2018: 800,000); 0 = the full-resolution "
        "network from the first step", min=0)


def phase_steps(phase_images: int, batch_size: int) -> int:
    """Steps per phase: ``phase_images`` / ``batch_size`` rounded up (0 = no growing)."""
    return math.ceil(phase_images / batch_size) if phase_images else 0


def growth_at(step: int, steps_per_phase: int, stages: int) -> tuple[int, float]:
    """(stage, alpha) of the 0-based training ``step``.

    Phase p = step // steps_per_phase: phase 0 trains stage 0 (4x4) at alpha 1; phase 2k - 1
    fades stage k in, alpha = (step mod steps_per_phase) / steps_per_phase, from 0 up to
    (not reaching) 1; phase 2k stabilises stage k at alpha 1; from phase 2 * stages on, the
    last stage at alpha 1. ``steps_per_phase`` 0: (stages, 1.0) from the start.
    """
    if not steps_per_phase:
        return stages, 1.0
    phase, into = divmod(step, steps_per_phase)
    if phase >= 2 * stages:
        return stages, 1.0
    stage = (phase + 1) // 2
    return stage, (into / steps_per_phase if phase % 2 else 1.0)


class ProgressiveObjective(AdversarialObjective):
    """Any adversarial loss and regulariser (ProGAN: WGAN-GP plus the drift term) on networks
    that grow: G's and D's stage and fade-in weight follow ``growth_at``, real images are
    shown to D at the stage's resolution (``fade_reals``). Stats: ``stage`` and ``alpha``."""

    families = ("progan",)
    families_need = "networks that grow (a progressive family)"

    def __init__(self, cfg, G, D, rng, device, num_classes=0):
        super().__init__(cfg, G, D, rng, device, num_classes)
        self.stages = G.stages
        self.steps_per_phase = phase_steps(cfg.section(ProgressiveConfig).phase_images,
                                           cfg.train.batch_size)
        self.now = (self.stages, 1.0)

    def on_step(self, step: int) -> bool:
        """Set the networks' stage and alpha for ``step``; True at a phase boundary while they
        still grow (the loop then resets the optimisers' moments)."""
        stage, alpha = growth_at(step, self.steps_per_phase, self.stages)
        for net in (self.G, self.D):
            net.grow(stage, alpha)
        self.now = (stage, float(self.G.alpha))  # float32, as the networks blend with it
        k = self.steps_per_phase
        return bool(k) and step > 0 and step % k == 0 and step // k <= 2 * self.stages

    def d_step(self, real, labels, progress) -> tuple[torch.Tensor, Stats]:
        stage, alpha = self.now
        if stage < self.stages or alpha < 1.0:
            real = fade_reals(real, stage, alpha)
        loss, stats = super().d_step(real, labels, progress)
        stats["stage"] = torch.tensor(float(stage), device=loss.device)
        stats["alpha"] = torch.tensor(alpha, device=loss.device)
        return loss, stats


OBJECTIVES.register("progressive", ProgressiveObjective, tasks={"unconditional"})
