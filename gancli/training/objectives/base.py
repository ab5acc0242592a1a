"""The objective contract: what the training loop asks of every kind of GAN.

The loop owns the schedule (optimisers, ``n_critic``, EMA, learning-rate decay, cadence);
an objective owns the maths. Per generator step the loop calls, in this order::

    objective.on_step(step)                    # once, before the D phase (True: fresh Adam moments)
    for _ in range(n_critic):
        loss, stats = objective.d_step(real, labels, progress)   # then backward + opt_D
    loss, stats = objective.g_step(batch_size, progress)         # then backward + opt_G

and around the run ``validate`` (before anything is built), ``prepare`` (the data, once, before
the first step), ``compile`` (``train.compile``),
``state`` / ``load`` (checkpoints). Nothing else: the loop never asks what kind of objective
it runs (no ``isinstance``), and never branches on a preset or family name.

A new objective subclasses ``Objective`` (or ``AdversarialObjective`` when it is G(z) against
real data with extra terms), registers itself with ``@OBJECTIVES.register(name,
tasks={...})`` in a module of this package, and that module is listed in the package's
``__init__``. See docs/adding-a-gan.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from gancli.conditioning import NONE, Conditioning
from gancli.config import Config
from gancli.errors import ConfigError
from gancli.models.base import DataSpec
from gancli.reporting import Reporter
from gancli.runtime import compile_children

Tensor = torch.Tensor
Stats = dict[str, Tensor]  # name -> 0-dim tensor, shown and logged by the loop (means per log row)


class Objective(ABC):
    """What one D step and one G step compute, for one kind of GAN.

    Constructor: ``(cfg, G, D, rng, device, num_classes)``; ``rng`` is the run's random
    generator (a ``torch.Generator`` on the CPU, saved in every checkpoint): every random draw
    of a step comes from it, so a seed and a checkpoint replay a run bit for bit.

    Class attributes:

    - ``conditioning``: a ``gancli.conditioning.Conditioning``, what the networks take beside
      their input (class labels, InfoGAN codes, a target domain, an image to translate). The
      model builder, previews, inference and export read it; nothing compares its name.
    - ``families``: the model families whose networks this objective drives (networks that
      grow, a style-based G), with ``families_need`` saying what they have; empty = any.
      ``validate_run`` checks it before anything is built, ``--dry-run`` included.

    Instance attribute ``train_size``: the samples in this process's training data, set by
    the loop after construction (schedules counted in epochs read it; 0 = not known).
    """

    train_size: int = 0
    conditioning: ClassVar[Conditioning] = NONE
    families: ClassVar[tuple[str, ...]] = ()
    families_need: ClassVar[str] = ""

    def __init__(self, cfg: Config, G: torch.nn.Module, D: torch.nn.Module,
                 rng: torch.Generator, device: torch.device, num_classes: int = 0):
        self.G, self.D, self.rng, self.device = G, D, rng, device
        self.num_classes = num_classes

    @classmethod  # noqa: B027 (a default: accepts everything)
    def validate(cls, cfg: Config, spec: DataSpec | None) -> None:
        """Refuse a config (and data, when ``spec`` is given) this objective cannot train, with
        a ``ConfigError`` (one line and a hint). Called once before any network is built,
        ``--dry-run`` included (there ``spec`` is None: the data is not read). Pure: no
        networks, no random draws. The default accepts everything."""

    @classmethod  # noqa: B027 (a default: accepts any data)
    def check_data(cls, data) -> None:
        """Refuse loaded data this objective cannot train, beyond what ``DataSpec`` says (a
        ``gancli.data.Dataset``; e.g. pix2pix refuses CycleGAN's unpaired ``trainA``/``trainB``),
        with a ``ConfigError``. Called once after the data is loaded, before any network is
        built; ``--dry-run`` reads no data and skips it. The default accepts everything."""

    def prepare(self, data) -> str | None:
        """Called by the loop once at the start of a new run, after the networks are built and
        before G's EMA copy and the first step, with the training data (a
        ``gancli.data.Dataset``): the place to fit what the networks take from the data
        (``self_conditional``'s clusters). What it sets must live in G's or D's buffers or in
        ``state()``: a resumed run skips ``prepare`` and loads them from the checkpoint.
        Returns a line to show the user, or None. The default does nothing."""
        return None

    def on_step(self, step: int) -> bool:
        """Called by the loop once at the start of every training step (``step`` counts the
        generator steps done so far, 0 for the first), before the D phase: the place for
        growth schedules, lazy regularisation and augmentation controllers. Whatever it
        changes must be a pure function of ``step`` and of the state saved by ``state()``, so
        ``--resume`` stays bit-identical. Returns True to ask the loop to clear both
        optimisers' moments before this step (new layers came in: ProGAN's official code
        resets Adam at every phase boundary). The default does nothing and returns False."""
        return False

    @abstractmethod
    def d_step(self, real: Tensor, labels: Tensor | None, progress: float) -> tuple[Tensor, Stats]:
        """D's loss (a 0-dim tensor to minimise) and its stats, for one real batch.

        ``real``: (B, C, H, W) images in [-1, 1], (B, 2) points, or (B, 2, C, H, W) pairs;
        float32 on the run's device. ``labels``: (B,) int64 class indices, (B, K) float 0/1
        attributes, or None. ``progress``: step / steps in [0, 1), for annealed terms."""

    @abstractmethod
    def g_step(self, batch_size: int, progress: float) -> tuple[Tensor, Stats]:
        """G's loss (0-dim) and its stats, for ``batch_size`` samples; runs after the D steps
        of the same generator step (a translation objective reuses their last real batch)."""

    def state(self) -> dict[str, Tensor]:
        """Tensors to save in a checkpoint beside the networks (image pools, step-to-step
        state), with names prefixed by their owner (``pool.images``). Default: none."""
        return {}

    def load(self, tensors: dict[str, Tensor]) -> None:  # noqa: B027 (a default: no state)
        """Take back what ``state`` saved (``tensors`` is the whole checkpoint; pick your
        names). Default: nothing to take."""

    def compile(self, cfg: Config, reporter: Reporter) -> None:
        """``train.compile``: compile what the two phases run. Default: G's and D's
        sub-networks (``compile_children``); D stays eager under a gradient penalty or R1,
        whose double backward cannot run through a compiled module. ``AdversarialObjective``
        compiles its two loss functions whole instead."""
        compile_children(self.G)
        if cfg.reg.gp or cfg.reg.r1:
            reporter.event("message", text="--compile: D runs eagerly (its gradient penalty / R1 "
                                           "differentiates it twice)")
        else:
            compile_children(self.D)


def check_task(cfg: Config, tasks: set[str] | frozenset[str] | None) -> None:
    """The preset's ``task`` must be one the objective trains (its registration's ``tasks``)."""
    if tasks and cfg.task not in tasks:
        raise ConfigError(f"objective '{cfg.objective}' cannot train a {cfg.task} model",
                          hint=f"it trains: {', '.join(sorted(tasks))}")
