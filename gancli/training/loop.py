"""The training loop: one function for every GAN.

Per generator step: ``n_critic`` discriminator steps (each on a fresh real batch),
then one generator step, then EMA, then logging / samples / checkpoints on their
cadence. What differs between GANs lives in the objective, not here.
"""

from __future__ import annotations

import json
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

import gancli
from gancli import checkpoints
from gancli.config import Config
from gancli.data import load_dataset
from gancli.data.base import Dataset
from gancli.data.batches import Batches
from gancli.errors import ConfigError, Interrupted, TrainingDiverged
from gancli.fileio import atomic_write_bytes, clean_temporary
from gancli.models import DataSpec, build_nets
from gancli.registry import OBJECTIVES
from gancli.regularizers import clip_weights
from gancli.reporting import Reporter
from gancli.runtime import generator
from gancli.training import state as st
from gancli.training.ema import make_ema, update_ema
from gancli.training.preview import Preview


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    seconds: float


def make_optimizer(cfg: Config, params, lr: float) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(o.beta1, o.beta2))
    if o.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=o.beta1)


def lr_factor(cfg: Config, step: int) -> float:
    """1 until ``optim.decay_start``, then linear to 0 at the last step (CycleGAN's schedule)."""
    start, total = cfg.optim.decay_start, cfg.train.steps
    if not start or step < start or total <= start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / (total - start))


class Meter:
    """Running sums of step statistics, kept on the device: no host sync until ``read``."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.n += 1

    def read(self) -> dict[str, float]:
        out = {k: float(v) / self.n for k, v in self.sums.items()}
        self.sums, self.n = {}, 0
        return out


@contextmanager
def stop_on_sigint() -> Iterator[dict]:
    """The first Ctrl-C asks the loop to stop after the current step; a second one kills."""
    flag = {"stop": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):  # noqa: ARG001
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        previous = None
    try:
        yield flag
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def train(cfg: Config, run_dir: Path, device: torch.device, reporter: Reporter,
          resume: checkpoints.Checkpoint | None = None, data: Dataset | None = None
          ) -> TrainResult:
    t = cfg.train
    if data is None:
        data = load_dataset(cfg.data, t.seed)
    spec = DataSpec(data.kind, data.shape, data.num_classes)
    objective_cls = OBJECTIVES.get(cfg.objective)
    torch.manual_seed(t.seed)  # weight init; every later random draw uses `gen` below
    nets = build_nets(cfg.model, spec, objective_cls.conditioning)
    G, D = nets.G.to(device), nets.D.to(device)
    G_ema = make_ema(G) if t.ema else None
    opt_G = make_optimizer(cfg, G.parameters(), cfg.optim.lr_g)
    opt_D = make_optimizer(cfg, D.parameters(), cfg.optim.lr_d)
    gen = generator(t.seed + 1)
    batches = Batches(data, t.batch_size, t.seed, device, cfg.data.flip)
    objective = objective_cls(cfg, G, D, gen, device, spec.num_classes)
    tasks = OBJECTIVES.meta(cfg.objective).get("tasks")
    if tasks and cfg.task not in tasks:
        raise ConfigError(f"objective '{cfg.objective}' cannot train a {cfg.task} model",
                          hint=f"it trains: {', '.join(sorted(tasks))}")
    if cfg.train.augment and data.kind != "images":
        raise ConfigError("DiffAugment works on images, not on 2-D points",
                          hint="set train.augment to an empty string")
    data_meta = {**spec.to_dict(), "classes": data.classes,
                 "modes": data.modes.tolist() if data.modes is not None else None,
                 "sigma": data.sigma, "name": data.name}

    step, elapsed = 0, 0.0
    if resume is not None:
        step, elapsed = restore(resume, G, D, G_ema, opt_G, opt_D, gen, batches, objective)
    preview = Preview(cfg, data, G_ema if G_ema is not None else G, device,
                      conditioning=objective_cls.conditioning)
    metrics_log = run_dir / "metrics.jsonl"
    trim_metrics(metrics_log, step)
    clean_temporary(run_dir / "checkpoints")

    def save() -> Path:
        path = checkpoints.step_path(run_dir / "checkpoints", step)
        tensors = {**st.module_tensors("G", G), **st.module_tensors("D", D), **objective.state()}
        if G_ema is not None:
            tensors.update(st.module_tensors("G_ema", G_ema))
        opt_meta = {}
        for name, opt in (("opt_G", opt_G), ("opt_D", opt_D)):
            tens, opt_meta[name] = st.optimizer_state(name, opt)
            tensors.update(tens)
        tensors["rng.noise"] = gen.get_state()
        checkpoints.save(path, tensors, {
            "gancli_version": gancli.__version__, "preset": cfg.name, "family": cfg.model.family,
            "task": cfg.task, "step": step, "data_pos": batches.pos,
            "elapsed": elapsed + (time.perf_counter() - t0), "config": cfg.to_dict(),
            "data": data_meta, "optimizers": opt_meta})
        checkpoints.mark_latest(run_dir / "checkpoints", path)
        checkpoints.prune(run_dir / "checkpoints", t.keep)
        reporter.event("checkpoint", step=step, path=str(path))
        return path

    reporter.start({"run_dir": str(run_dir), "preset": cfg.name, "device": str(device),
                    "steps": t.steps, "start_step": step, "data": data.name,
                    "samples": len(data), "data_info": data.info,
                    "params_G": sum(p.numel() for p in G.parameters()),
                    "params_D": sum(p.numel() for p in D.parameters())})
    meter, t0 = Meter(), time.perf_counter()
    tick_time, tick_step = t0, step
    last_ckpt: Path | None = resume.path if resume is not None else None
    with stop_on_sigint() as sigint:
        while step < t.steps:
            progress = step / t.steps
            factor = lr_factor(cfg, step)
            for opt, lr in ((opt_G, cfg.optim.lr_g), (opt_D, cfg.optim.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr * factor

            D.requires_grad_(True)
            for _ in range(t.n_critic):
                real, labels = batches.next()
                d_loss, d_stats = objective.d_step(real, labels, progress)
                opt_D.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_D.step()
                if cfg.reg.clip:
                    clip_weights(D, cfg.reg.clip)
            D.requires_grad_(False)  # G's step needs no gradients for D's weights
            g_loss, g_stats = objective.g_step(t.batch_size, progress)
            opt_G.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_G.step()
            if G_ema is not None:
                update_ema(G_ema, G, t.ema)
            step += 1
            meter.add({**d_stats, **g_stats})

            last = step == t.steps
            if step % t.log_every == 0 or last or sigint["stop"]:
                stats = meter.read()
                check_finite(stats, step, last_ckpt)
                now = time.perf_counter()
                rate = (step - tick_step) / max(now - tick_time, 1e-9)
                tick_time, tick_step = now, step
                row = {"step": step, "steps": t.steps, **stats, "lr_g": cfg.optim.lr_g * factor,
                       "lr_d": cfg.optim.lr_d * factor,
                       "img_s": rate * t.batch_size * t.n_critic,
                       "eta_s": (t.steps - step) / max(rate, 1e-9),
                       "elapsed_s": elapsed + now - t0}
                append_jsonl(metrics_log, row)
                reporter.step(row)
            if (t.sample_every and step % t.sample_every == 0) or last:
                path, extra = preview.write(run_dir / "samples", step)
                if extra:
                    append_jsonl(metrics_log, {"step": step, **extra})
                reporter.event("sample", step=step, path=str(path), **extra)
            if (t.ckpt_every and step % t.ckpt_every == 0) or last or sigint["stop"]:
                last_ckpt = save()
            if sigint["stop"] and not last:
                raise Interrupted(f"interrupted at step {step}; checkpoint saved: {last_ckpt}",
                                  hint=f"continue with: gancli train --resume {run_dir}")
    seconds = elapsed + time.perf_counter() - t0
    assert last_ckpt is not None
    reporter.done({"run_dir": str(run_dir), "checkpoint": str(last_ckpt), "step": step,
                   "seconds": seconds})
    return TrainResult(run_dir, last_ckpt, step, seconds)


def restore(ckpt: checkpoints.Checkpoint, G, D, G_ema, opt_G, opt_D, gen, batches,
            objective) -> tuple[int, float]:
    tensors, meta = ckpt.tensors, ckpt.meta
    st.load_module(G, tensors, "G")
    st.load_module(D, tensors, "D")
    if G_ema is not None:
        st.load_module(G_ema, tensors, "G_ema")
    st.load_optimizer(opt_G, tensors, meta["optimizers"]["opt_G"], "opt_G")
    st.load_optimizer(opt_D, tensors, meta["optimizers"]["opt_D"], "opt_D")
    gen.set_state(tensors["rng.noise"])
    batches.pos = int(meta["data_pos"])
    objective.load(tensors)
    return int(meta["step"]), float(meta.get("elapsed", 0.0))


def check_finite(stats: dict[str, float], step: int, last_ckpt: Path | None) -> None:
    bad = [k for k, v in stats.items() if not math.isfinite(v)]
    if bad:
        kept = f"the last good checkpoint is {last_ckpt}" if last_ckpt else "no checkpoint yet"
        raise TrainingDiverged(
            f"{', '.join(bad)} became NaN/inf by step {step}; {kept}",
            hint="lower the learning rates (--set optim.lr_d=... optim.lr_g=...), add a "
                 "gradient penalty, or train in fp32")


def append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def trim_metrics(path: Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint: they are about to be redone."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
    atomic_write_bytes(path, ("\n".join(keep) + "\n" if keep else "").encode())
