"""docs/adding-a-gan.md, walked through: a throw-away family and objective with a config section
of its own, registered from the test, train, resume bit-identically and sample; no file of
gancli is edited. Plus the
contracts that make that possible (every objective module registers, nothing compares a
conditioning name)."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gancli import checkpoints
from gancli.conditioning import CONDITIONINGS, Conditioning
from gancli.config import build, config_field, parse_set, register_section, schema_keys
from gancli.errors import ConfigError
from gancli.models import base
from gancli.models.base import DataSpec, Nets, register_family
from gancli.registry import FAMILIES, OBJECTIVES, SECTIONS
from gancli.reporting import Reporter
from gancli.runs import create_run_dir
from gancli.training.loop import train
from gancli.training.objectives import MODULES, Objective, validate_run

# -- step 1 of the guide: a family -------------------------------------------------------------


class TinyGenerator(nn.Module):
    def __init__(self, cfg, spec: DataSpec, conditioning: Conditioning):
        super().__init__()
        self.shape = spec.shape
        self.cond_width = conditioning.g_input_width(spec, cfg)
        self.net = nn.Sequential(nn.Linear(cfg.z_dim + self.cond_width, cfg.g_width), nn.ReLU(),
                                 nn.Linear(cfg.g_width, spec.shape[0] * spec.shape[1] * spec.shape[2]),
                                 nn.Tanh())

    def forward(self, z, y=None):
        if self.cond_width:
            z = torch.cat([z, base.condition(y, self.cond_width)], 1)
        return self.net(z).view(-1, *self.shape)


class TinyDiscriminator(base.Discriminator):
    def __init__(self, cfg, spec: DataSpec, conditioning: Conditioning):
        super().__init__(cfg.pack)
        self.label_width = spec.num_classes if conditioning.d_input else 0
        size = spec.shape[0] * spec.shape[1] * spec.shape[2] * cfg.pack + self.label_width
        self.body = nn.Sequential(nn.Linear(size, cfg.d_width), nn.LeakyReLU(0.2))
        self.head = nn.Linear(cfg.d_width, 1)
        width = conditioning.aux_head_width(spec, cfg)
        self.classes = nn.Linear(cfg.d_width, width) if width else None

    def _features(self, x, y):
        x = x.flatten(1)
        if self.label_width:
            x = torch.cat([x, base.one_hot(y, self.label_width)], 1)
        return self.body(x)


def build_tiny(cfg, spec, conditioning):
    return Nets(G=TinyGenerator(cfg, spec, conditioning), D=TinyDiscriminator(cfg, spec, conditioning))


# -- step 3 of the guide: an objective with a schedule and state of its own --------------------


@dataclass
class ScheduleConfig:
    """The objective's own knobs: section ``scheduled_lsgan`` (registered by the fixture)."""

    target_step: float = config_field(0.05, "how much the real target drops every 2 steps",
                                      min=0, max=0.5)


class ScheduledLSGAN(Objective):
    """Least squares (Mao et al. 2017) with a real target that steps down by
    ``scheduled_lsgan.target_step`` every 2 steps (``on_step``), and a running count of D steps
    saved in checkpoints (``state``)."""

    def __init__(self, cfg, G, D, rng, device, num_classes=0):
        super().__init__(cfg, G, D, rng, device, num_classes)
        self.z_dim = cfg.model.z_dim
        self.target_step = cfg.section(ScheduleConfig).target_step
        self.target = 1.0
        self.d_steps = torch.zeros((), dtype=torch.int64)
        self.hook_calls: list[int] = []

    @classmethod
    def validate(cls, cfg, spec):
        if cfg.reg.gp:
            raise ConfigError("the scheduled least-squares objective takes no gradient penalty",
                              hint="set reg.gp=0")

    def on_step(self, step):
        self.hook_calls.append(step)
        self.target = 1.0 - self.target_step * (step // 2)  # a pure function of the step

    def d_step(self, real, labels, progress):
        z = torch.randn(len(real), self.z_dim, generator=self.rng).to(self.device)
        with torch.no_grad():
            fake = self.G(z)
        self.d_steps += 1
        loss = 0.5 * (F.mse_loss(self.D(real), torch.full((len(real),), self.target))
                      + self.D(fake).pow(2).mean())
        return loss, {"d_loss": loss.detach()}

    def g_step(self, batch_size, progress):
        z = torch.randn(batch_size, self.z_dim, generator=self.rng).to(self.device)
        loss = 0.5 * (self.D(self.G(z)) - self.target).pow(2).mean()
        return loss, {"g_loss": loss.detach()}

    def state(self):
        return {"lsgan.d_steps": self.d_steps.clone()}

    def load(self, tensors):
        self.d_steps = tensors["lsgan.d_steps"].clone()


@pytest.fixture
def registered():
    """Register the throw-away family and objective as the guide says, and remove them after
    (the registries are process-wide)."""
    register_family("tiny-test", kinds={"images"}, summary="a test's throw-away MLP")(build_tiny)
    register_section("scheduled_lsgan")(ScheduleConfig)
    OBJECTIVES.register("scheduled-lsgan", ScheduledLSGAN, tasks={"unconditional"})
    yield
    for registry, name in ((FAMILIES, "tiny-test"), (OBJECTIVES, "scheduled-lsgan"),
                           (SECTIONS, "scheduled_lsgan")):
        registry._entries.pop(name)
        registry._meta.pop(name)


def _config(steps: int, **sets):
    # step 4 of the guide: the preset (here as the dict its YAML would load to)
    return build({"name": "tiny-lsgan", "task": "unconditional", "objective": "scheduled-lsgan",
                  "data": {"source": "digits", "resolution": 8, "size": 256},
                  "model": {"family": "tiny-test", "z_dim": 8, "g_width": 16, "d_width": 16},
                  "train": {"steps": steps, "batch_size": 16, "log_every": 2, "sample_every": 0,
                            "ckpt_every": 0, "ckpt_minutes": 0, "seed": 3, **sets},
                  "scheduled_lsgan": {"target_step": 0.1}})


def _tensors(path: Path) -> dict:
    return checkpoints.load(path).tensors


def test_a_family_and_objective_from_outside_train_resume_and_sample(registered, tmp_path):
    from gancli.inference import generate, load_generator

    # one run of 6 steps, and one of 3 steps resumed to 6: the same weights, bit for bit
    whole = train(_config(6), create_run_dir(tmp_path, "whole"), torch.device("cpu"), Reporter())
    half = train(_config(3), create_run_dir(tmp_path, "half"), torch.device("cpu"), Reporter())
    ckpt = checkpoints.load(half.checkpoint)
    resumed = train(_config(6), half.run_dir, torch.device("cpu"), Reporter(), resume=ckpt)
    a, b = _tensors(whole.checkpoint), _tensors(resumed.checkpoint)
    assert a.keys() == b.keys() and "lsgan.d_steps" in a
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["lsgan.d_steps"]) == 6  # n_critic 1: one D step per step, counted across the resume
    # its section is stored with the run and read back by the resumed run
    assert ckpt.meta["config"]["scheduled_lsgan"] == {"target_step": 0.1}

    # the hook ran once per step, before the D phase, with the step's index
    from gancli.training import loop

    calls = []
    real = ScheduledLSGAN.on_step
    ScheduledLSGAN.on_step = lambda self, step: (calls.append(step), real(self, step))[1]
    try:
        loop.train(_config(4), create_run_dir(tmp_path, "hook"), torch.device("cpu"), Reporter())
    finally:
        ScheduledLSGAN.on_step = real
    assert calls == [0, 1, 2, 3]

    # sampling needs nothing but the checkpoint
    model = load_generator(whole.checkpoint, "cpu")
    images = generate(model, [0, 1, 2])
    assert images.shape == (3, 1, 8, 8) and torch.equal(images, generate(model, [0, 1, 2]))


def test_the_objectives_own_section_is_a_config_section_like_the_shared_ones(registered):
    """Declared and registered beside the objective, no edit of gancli/config.py: typed and
    range-checked by --set, listed by the schema, read by the objective."""
    assert "scheduled_lsgan.target_step" in schema_keys()
    assert parse_set(["scheduled_lsgan.target_step=0.2"]) == {"scheduled_lsgan": {"target_step": 0.2}}
    with pytest.raises(ConfigError, match="out of range"):
        parse_set(["scheduled_lsgan.target_step=0.9"])
    objective = ScheduledLSGAN(_config(2), nn.Identity(), nn.Identity(), torch.Generator(),
                               torch.device("cpu"))
    objective.on_step(4)
    assert objective.target == pytest.approx(0.8)  # 1 - 0.1 x (4 // 2): the section's value


def test_the_objectives_validate_runs_before_anything_is_built(registered, tmp_path, monkeypatch):
    from gancli.training import loop

    cfg = _config(2)
    cfg.reg.gp = 1.0
    with pytest.raises(ConfigError, match="no gradient penalty"):
        validate_run(cfg)  # what --dry-run runs: no data, no networks

    def no_build(*args):
        raise AssertionError("networks were built before the config was checked")

    monkeypatch.setattr(loop, "build_nets", no_build)
    with pytest.raises(ConfigError, match="no gradient penalty"):
        train(cfg, create_run_dir(tmp_path, "run"), torch.device("cpu"), Reporter())


def test_dry_run_validates_the_objective_against_the_config(cli):
    r = cli("train", "dcgan", "--set", "objective=infogan", "--dry-run")
    assert r.code == 2 and "InfoGAN needs at least one latent code" in r.err
    r = cli("train", "dcgan", "--set", "objective=cycle", "--dry-run")
    assert r.code == 2 and "cannot train a unconditional model" in r.err
    assert cli("train", "dcgan", "--dry-run").code == 0


def test_a_new_conditioning_kind_is_one_entry():
    """BigGAN-style shared class input: a descriptor the families read field by field."""
    cfg = build({"model": {"family": "mlp", "g_width": 8, "d_width": 8}}).model
    shared = Conditioning("shared-test", class_labels=True, d_input=True)
    nets = base.build_nets(cfg, DataSpec("images", (1, 8, 8), 10), shared)
    assert nets.G.cond_width == 10 and nets.D.label_width == 10 and nets.D.classes is None
    assert shared.draw(4, 10, cfg, torch.Generator().manual_seed(0)).shape == (4,)
    with pytest.raises(ConfigError, match="at least two classes"):
        base.build_nets(cfg, DataSpec("images", (1, 8, 8), 0), shared)


def test_every_objective_module_is_listed_and_registers():
    """An objective file that the package forgets to list would silently not exist."""
    import gancli.training.objectives as package

    folder = Path(package.__file__).parent
    for path in folder.glob("*.py"):
        if path.stem in ("__init__", "base"):
            continue
        module = importlib.import_module(f"gancli.training.objectives.{path.stem}")
        assert module in MODULES, f"{path.name} is not in MODULES"
        registered = [n for n in OBJECTIVES.names() if OBJECTIVES.get(n).__module__ == module.__name__]
        assert registered, f"gancli/training/objectives/{path.name} registers no objective"
    for name in OBJECTIVES.names():
        cls = OBJECTIVES.get(name)
        assert issubclass(cls, Objective) and isinstance(cls.conditioning, Conditioning)
        assert cls.conditioning is CONDITIONINGS[cls.conditioning.name]


def test_no_code_compares_a_conditioning_name():
    pattern = re.compile(r"conditioning\s*(==|!=|\bin\b|\bnot in\b)|conditioning\.name\s*(==|!=|in)")
    root = Path(importlib.import_module("gancli").__file__).parent
    hits = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []
