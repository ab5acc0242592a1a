"""Objectives: what one D step and one G step compute, per kind of GAN.

The contract every objective implements is ``Objective`` (``base.py``). Each module below
registers its objectives in ``OBJECTIVES`` when imported; ``OBJECTIVES.get(name)`` imports
this package, which imports every module of ``MODULES``. A new objective is a new module
here, added to ``MODULES`` (see docs/adding-a-gan.md).
"""

from __future__ import annotations

from gancli.config import Config
from gancli.errors import ConfigError
from gancli.models.base import DataSpec, check_family
from gancli.registry import FAMILIES, OBJECTIVES
from gancli.training.objectives import (adversarial, conditional, infogan, pix2pix, progressive,
                                        self_conditional, stylegan2, translation)
from gancli.training.objectives.adversarial import AdversarialObjective, flip_logits
from gancli.training.objectives.base import Objective, Stats, check_task
from gancli.training.objectives.conditional import ACGANObjective, ConditionalObjective
from gancli.training.objectives.infogan import InfoGANObjective
from gancli.training.objectives.translation import CycleObjective, StarGANObjective

MODULES = (adversarial, conditional, infogan, pix2pix, progressive, self_conditional, stylegan2,
           translation)  # each registers its objectives

__all__ = ["ACGANObjective", "AdversarialObjective", "ConditionalObjective", "CycleObjective",
           "InfoGANObjective", "MODULES", "Objective", "StarGANObjective", "Stats",
           "validate_run", "flip_logits"]


def validate_run(cfg: Config, spec: DataSpec | None = None) -> type[Objective]:
    """Everything a config (and the data, when ``spec`` is given) must satisfy before a
    network is built: the objective exists and trains ``cfg.task``, the objective's own
    ``validate``, the model family exists (and models ``spec.kind``), and what the objective's
    conditioning needs of the model config and the data. ``--dry-run`` calls it with
    ``spec=None`` (no data read). Returns the objective's class. Raises ``ConfigError`` /
    ``RegistryError`` (one line and a hint)."""
    objective_cls: type[Objective] = OBJECTIVES.get(cfg.objective)
    check_task(cfg, OBJECTIVES.meta(cfg.objective).get("tasks"))
    objective_cls.validate(cfg, spec)
    family = FAMILIES.get(cfg.model.family)
    if objective_cls.families and cfg.model.family not in objective_cls.families:
        raise ConfigError(f"objective '{cfg.objective}' needs {objective_cls.families_need}; "
                          f"family '{cfg.model.family}' has none",
                          hint=f"--set model.family={objective_cls.families[0]} "
                               "(or another objective, e.g. --set objective=unconditional"
                               + (" --set model.z_clusters=0" if cfg.model.z_clusters else "")
                               + ")")
    if spec is not None:
        check_family(family, spec)
    objective_cls.conditioning.check(cfg.model, spec)
    return objective_cls
