"""The training loop: one function for every GAN.

Per generator step: the objective's ``on_step(step)`` hook when it has one (schedules such
as progressive growing), ``n_critic`` discriminator steps (each on a fresh real batch),
then one generator step, then EMA, then logging / samples / checkpoints on their
cadence. What differs between GANs lives in the objective, not here.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

import gancli
from gancli import checkpoints, validate
from gancli.config import Config
from gancli.data import load_dataset
from gancli.data.base import Dataset
from gancli.data.batches import Batches
from gancli.errors import (CheckpointError, ConfigError, GancliError, Interrupted, TrainingDiverged,
                           signal_exit_code)
from gancli.fileio import clean_temporary
from gancli.models import DataSpec, build_nets
from gancli.registry import OBJECTIVES
from gancli.regularizers import clip_weights
from gancli.reporting import Reporter, guard_output
from gancli.runlog import append_jsonl, trim_metrics
from gancli.runtime import Precision, compile_children, compile_problem, configure_backends, generator
from gancli.sampling import draw_codes
from gancli.training import state as st
from gancli.training.ema import make_ema, recompute_bn_stats, update_ema
from gancli.training.guard import FiniteGuard, check_finite_weights
from gancli.training.objectives import AdversarialObjective
from gancli.training.parallel import RANK_SEED_STRIDE, current, sync_batchnorm
from gancli.training.preview import Preview


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    seconds: float
    G: torch.nn.Module | None = None  # the trained networks, as this process holds them
    D: torch.nn.Module | None = None


def make_optimizer(cfg: Config, params, lr: float) -> torch.optim.Optimizer:
    """Adam and SGD fused (one kernel for all parameters), RMSprop multi-tensor (foreach):
    a few launches per step instead of several per parameter tensor."""
    o = cfg.optim
    if o.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(o.beta1, o.beta2), fused=True)
    if o.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    return torch.optim.SGD(params, lr=lr, momentum=o.beta1, fused=True)


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

    def read(self, reduce=None) -> dict[str, float]:
        """Means since the last read; ``reduce`` (e.g. a mean over processes) sees the sums."""
        sums = reduce(self.sums) if reduce is not None else self.sums
        out = {k: float(v) / self.n for k, v in sums.items()}
        self.sums, self.n = {}, 0
        return out


# What stops a run cleanly: Ctrl-C, kill / docker stop / systemd / SLURM (SIGTERM), a closed
# terminal (SIGHUP), and SIGUSR1 (what `sbatch --signal=USR1@...` sends before a time limit).
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1")
                     if hasattr(signal, n))


class StopRequest:
    """The first stop signal this process received (``signum``, None if none yet)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.run_dir: Path | None = None  # named in the message of a second signal

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @staticmethod
    def name_of(signum: int) -> str:
        try:
            return signal.Signals(signum).name
        except ValueError:
            return f"signal {signum}"

    @property
    def name(self) -> str:
        return self.name_of(self.signum) if self.signum is not None else ""


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """The first SIGINT/SIGTERM/SIGHUP/SIGUSR1 asks the loop to stop after the current step and
    save a checkpoint (the loop then raises ``Interrupted`` with exit code 130 for SIGINT,
    128 + signum for the others); a second one, while that is under way, stops at once with
    ``Interrupted`` (one line, no traceback; the checkpoints already on disk are complete, as
    every write is atomic). Outside the main thread the handlers are left alone."""
    request = StopRequest()

    def handler(signum, frame):  # noqa: ARG001
        if request.signum is not None:
            where = f"gancli train --resume {request.run_dir}" if request.run_dir else "--resume RUN"
            raise Interrupted(f"stopped at once by a second {request.name_of(signum)} (after "
                              f"{request.name}); the checkpoints on disk are complete",
                              hint=f"continue from the newest one with: {where}",
                              exit_code=signal_exit_code(signum))
        request.signum = signum

    previous = {}
    for sig in STOP_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread, or not on this platform
            pass
    try:
        yield request
    finally:
        for sig, old in previous.items():
            if old is not None:  # None: installed from C; cannot be put back from Python
                signal.signal(sig, old)


def train(cfg: Config, run_dir: Path, device: torch.device, reporter: Reporter,
          resume: checkpoints.Checkpoint | None = None, data: Dataset | None = None
          ) -> TrainResult:
    t = cfg.train
    reporter = guard_output(reporter)  # a closed stdout or terminal stops output, not training
    if data is None:
        data = load_dataset(cfg.data, t.seed, cfg.task)
    spec = DataSpec(data.kind, data.shape, data.num_classes)
    objective_cls = OBJECTIVES.get(cfg.objective)
    dist = current(device)  # torchrun's job, or a single process (see training/parallel.py)
    if t.global_batch and t.global_batch != t.batch_size * dist.world:
        raise ConfigError(f"train.global_batch {t.global_batch} != train.batch_size {t.batch_size}"
                          f" x {dist.world} process(es)", hint="set train.global_batch=0, or a "
                          "per-process train.batch_size of global_batch / processes")
    configure_backends(device, t.tf32)
    torch.manual_seed(t.seed)  # weight init; every later random draw uses `gen` below
    nets = build_nets(cfg.model, spec, objective_cls.conditioning)
    if t.sync_bn and dist:
        nets.G, nets.D = sync_batchnorm(nets.G, device), sync_batchnorm(nets.D, device)
    G, D = nets.G.to(device), nets.D.to(device)
    if t.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    dist.broadcast_module(G, D)  # the same initial weights on every rank
    G_ema = make_ema(G) if t.ema else None
    opt_G = make_optimizer(cfg, G.parameters(), cfg.optim.lr_g)
    opt_D = make_optimizer(cfg, D.parameters(), cfg.optim.lr_d)
    amp = Precision(t.precision, device)
    gen = generator(t.seed + 1 + RANK_SEED_STRIDE * dist.rank)  # ranks draw different noise
    batches = Batches(data, t.batch_size, t.seed, device, cfg.data.flip, dist.rank, dist.world)
    objective = objective_cls(cfg, G, D, gen, device, spec.num_classes)
    if t.compile:
        compile_nets(G, D, cfg, device, reporter, objective)
    tasks = OBJECTIVES.meta(cfg.objective).get("tasks")
    if tasks and cfg.task not in tasks:
        raise ConfigError(f"objective '{cfg.objective}' cannot train a {cfg.task} model",
                          hint=f"it trains: {', '.join(sorted(tasks))}")
    if cfg.train.augment and data.kind != "images":
        raise ConfigError("DiffAugment works on images, not on 2-D points",
                          hint="set train.augment to an empty string")
    data_meta = {**spec.to_dict(), "classes": data.classes,
                 "modes": data.modes.tolist() if data.modes is not None else None,
                 "sigma": data.sigma, "name": data.name, "domains": data.domains,
                 "multi_label": data.y is not None and data.y.is_floating_point()}

    step, elapsed = 0, 0.0
    if resume is not None:
        step, elapsed = restore(resume, G, D, G_ema, opt_G, opt_D, gen, batches, objective,
                                amp, dist, spec)
    preview = Preview(cfg, data, G_ema if G_ema is not None else G, device,
                      conditioning=objective_cls.conditioning)
    metrics_log = run_dir / "metrics.jsonl"
    if dist.main:  # only rank 0 writes: logs, samples, checkpoints
        trim_metrics(metrics_log, step)
        clean_temporary(run_dir / "checkpoints")

    def save() -> Path:
        path = checkpoints.step_path(run_dir / "checkpoints", step)
        guard.check(cfg, last_ckpt)  # never write weights that came from a NaN/inf step
        tensors = {**st.module_tensors("G", G), **st.module_tensors("D", D), **objective.state()}
        if G_ema is not None:
            settle_ema(step)
            tensors.update(st.module_tensors("G_ema", G_ema))
        check_finite_weights(tensors, cfg, step, last_ckpt)
        opt_meta = {}
        for name, opt in (("opt_G", opt_G), ("opt_D", opt_D)):
            tens, opt_meta[name] = st.optimizer_state(name, opt)
            tensors.update(tens)
        tensors["rng.noise"] = gen.get_state()
        dist.check_same(G, D)
        # every other rank's own noise generator and objective state (image pool), as rankN.*
        tensors.update(dist.gather_rank_state({"rng.noise": gen.get_state(), **objective.state()}))
        if not dist.main:
            return path
        checkpoints.save(path, tensors, {
            "gancli_version": gancli.__version__, "preset": cfg.name, "family": cfg.model.family,
            "task": cfg.task, "step": step, "data_pos": batches.pos,
            "elapsed": elapsed + (time.perf_counter() - t0), "config": cfg.to_dict(),
            "data": data_meta, "optimizers": opt_meta, "scalers": amp.state(),
            "world_size": dist.world})
        checkpoints.mark_latest(run_dir / "checkpoints", path)
        checkpoints.prune(run_dir / "checkpoints", t.keep)
        reporter.event("checkpoint", step=step, path=str(path))
        return path

    settled = {"step": -1}

    def settle_ema(step: int) -> None:
        """Give G_ema batch-norm statistics of its own weights before it is shown or saved
        (update_ema copies the live G's, which do not fit the average); once per step."""
        if G_ema is None or settled["step"] == step:
            return
        settled["step"] = step
        bn_stats_for_ema(G_ema, cfg, objective_cls.conditioning, spec.num_classes)

    warned: set[str] = set()

    def optional_write(what: str, write, *args):
        """Previews and metrics rows are not worth a run: on OSError (disk full, a read-only
        folder) warn once per kind, skip the write, go on training; None when it failed."""
        try:
            return write(*args)
        except OSError as e:
            if what not in warned:
                warned.add(what)
                where = f" {e.filename}" if e.filename else ""
                reporter.event("warning", text=f"warning: cannot write {what}{where}: "
                               f"{e.strerror or e}; training goes on without them (said once)")
            return None

    def decide(step: int) -> tuple[int, bool]:
        """(the signal to stop on, or 0; whether a time-based checkpoint is due), the same on
        every rank: a single process decides at every step; under torchrun the ranks agree at
        log steps (one all-reduce of the maximum), so all of them stop or save after the same
        step, whichever rank saw the signal or the clock first."""
        due = bool(t.ckpt_minutes) and time.monotonic() - saved_at >= 60 * t.ckpt_minutes
        if not dist:
            return stop.signum or 0, due
        if step % t.log_every and step != t.steps:
            return 0, False
        signum, due = dist.max_ints([stop.signum or 0, int(due)])
        return signum, bool(due)

    @contextmanager
    def save_on_write_error():
        """Any other OSError in the loop (a file that cannot be written or read): save a
        checkpoint if the state is a whole step and this is a single process (under torchrun the
        other ranks could not join the save), then stop with one line naming the file."""
        try:
            yield
        except OSError as e:
            what = f"{e.strerror or type(e).__name__}" + (f" ({e.filename})" if e.filename else "")
            if in_step or dist:
                kept = (f"the last checkpoint is {last_ckpt}" if last_ckpt
                        else "no checkpoint was written yet")
            else:
                try:
                    kept = f"checkpoint saved: {save()}"
                except (CheckpointError, OSError) as e2:
                    kept = (f"the checkpoint failed too ({getattr(e2, 'message', e2)}); "
                            f"the last one is {last_ckpt}")
            again = (f"gancli train --resume {run_dir}" if last_ckpt or not kept.startswith("no")
                     else "the same command")
            raise GancliError(f"{what} at step {step}; {kept}",
                              hint=f"free disk space or fix the permissions, then: {again}") from None

    reporter.start({"run_dir": str(run_dir), "preset": cfg.name, "device": str(device),
                    "steps": t.steps, "start_step": step, "data": data.name,
                    "samples": len(data), "data_info": data.info,
                    "params_G": sum(p.numel() for p in G.parameters()),
                    "params_D": sum(p.numel() for p in D.parameters())})
    meter, t0 = Meter(), time.perf_counter()
    tick_time, tick_step = t0, step
    last_ckpt: Path | None = resume.path if resume is not None else None
    guard = FiniteGuard(device)  # NaN/inf in losses and gradients, read at log and save time
    d_params, g_params = list(D.parameters()), list(G.parameters())
    saved_at, in_step = time.monotonic(), False
    last_grid: Path | None = None  # the newest sample grid, named in the closing line
    with stop_on_signals() as stop, save_on_write_error():
        stop.run_dir = run_dir
        while step < t.steps:
            in_step = True  # an OSError from here to `step += 1` leaves a partial step: no save
            # the objective's own schedule (progressive growing, ...): a pure function of `step`
            # and its saved state; True asks for fresh optimiser moments (new layers came in)
            if hasattr(objective, "on_step") and objective.on_step(step):
                for opt in (opt_G, opt_D):
                    opt.state.clear()
            progress = step / t.steps
            factor = lr_factor(cfg, step)
            for opt, lr in ((opt_G, cfg.optim.lr_g), (opt_D, cfg.optim.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr * factor

            D.requires_grad_(True)
            for _ in range(t.n_critic):
                real, labels = batches.next()
                if t.channels_last and real.dim() == 4:
                    real = real.contiguous(memory_format=torch.channels_last)
                with amp.autocast("D"):
                    d_loss, d_stats = objective.d_step(real, labels, progress)
                opt_D.zero_grad(set_to_none=True)
                amp.backward("D", d_loss)
                dist.average_gradients(d_params)
                guard.watch(step + 1, "D", d_loss, () if amp.scaled else d_params)
                amp.step("D", opt_D)
                if cfg.reg.clip:
                    clip_weights(D, cfg.reg.clip)
            D.requires_grad_(False)  # G's step needs no gradients for D's weights
            with amp.autocast("G"):
                g_loss, g_stats = objective.g_step(t.batch_size, progress)
            opt_G.zero_grad(set_to_none=True)
            amp.backward("G", g_loss)
            dist.average_gradients(g_params)
            guard.watch(step + 1, "G", g_loss, () if amp.scaled else g_params)
            amp.step("G", opt_G)
            dist.broadcast_buffers(G, D)  # batch-norm statistics follow rank 0, as with DDP
            if G_ema is not None:
                update_ema(G_ema, G, t.ema if step >= t.ema_start else 0.0)
            step += 1
            in_step = False
            meter.add({**d_stats, **g_stats})

            last = step == t.steps
            stop_signal, time_due = decide(step)
            if step % t.log_every == 0 or last or stop_signal:
                stats = meter.read(dist.average_stats)
                guard.check(cfg, last_ckpt)
                check_finite(stats, step, last_ckpt)
                now = time.perf_counter()
                rate = (step - tick_step) / max(now - tick_time, 1e-9)
                tick_time, tick_step = now, step
                row = {"step": step, "steps": t.steps, **stats, "lr_g": cfg.optim.lr_g * factor,
                       "lr_d": cfg.optim.lr_d * factor,
                       "img_s": rate * t.batch_size * dist.world * t.n_critic,
                       "eta_s": (t.steps - step) / max(rate, 1e-9),
                       "elapsed_s": elapsed + now - t0}
                if dist.main:
                    optional_write("metrics rows to", append_jsonl, metrics_log, row)
                reporter.step(row)
            if (t.sample_every and step % t.sample_every == 0) or last:
                settle_ema(step)  # on every rank: a SyncBatchNorm average all-reduces
            if ((t.sample_every and step % t.sample_every == 0) or last) and dist.main:
                written = optional_write("sample grids to", preview.write, run_dir / "samples", step)
                if written is not None:
                    path, extra = written
                    last_grid = path
                    if extra:
                        optional_write("metrics rows to", append_jsonl, metrics_log,
                                       {"step": step, **extra})
                    reporter.event("sample", step=step, path=str(path), **extra)
            if not dist and stop.requested:  # also a signal that came while logging
                stop_signal = stop.signum
            if ((t.ckpt_every and step % t.ckpt_every == 0) or last or stop_signal
                    or time_due):
                last_ckpt = save()
                saved_at = time.monotonic()
            if stop_signal and not last:
                raise Interrupted(f"interrupted at step {step} by {StopRequest.name_of(stop_signal)}"
                                  f"; checkpoint saved: {last_ckpt}",
                                  hint=f"continue with: gancli train --resume {run_dir}",
                                  exit_code=signal_exit_code(stop_signal))
    seconds = elapsed + time.perf_counter() - t0
    assert last_ckpt is not None
    reporter.done({"run_dir": str(run_dir), "checkpoint": str(last_ckpt), "step": step,
                   "seconds": seconds, "samples": str(last_grid) if last_grid else None,
                   "task": cfg.task, "data": data.name, "data_kind": data.kind})
    return TrainResult(run_dir, last_ckpt, step, seconds, G, D)


def bn_stats_for_ema(G_ema: torch.nn.Module, cfg: Config, conditioning: str,
                     num_classes: int) -> None:
    """Re-estimate G_ema's batch-norm statistics for its own weights (see
    ``recompute_bn_stats``), feeding the conditioning G takes: random class labels, InfoGAN
    codes, or none. Translation generators (image inputs) keep the copied statistics."""
    if conditioning in ("translation", "domain"):
        return
    m = cfg.model
    condition = None
    if conditioning in ("concat", "classifier"):
        def condition(n, gen):
            return torch.randint(num_classes, (n,), generator=gen)
    elif conditioning == "info":
        def condition(n, gen):
            return draw_codes(n, m.info_cat, m.info_cont, gen)
    recompute_bn_stats(G_ema, m.z_dim, m.z_dist, cfg.train.batch_size, condition=condition)


def compile_nets(G, D, cfg: Config, device: torch.device, reporter: Reporter,
                 objective) -> None:
    """``train.compile``: compile the objective's two loss functions whole (G's and D's
    forward passes, the losses and any gradient penalty in one graph each, with its
    backward), or, for the translation objectives (their own phases), G's and D's
    sub-networks; or say in one line why not."""
    problem = compile_problem(device)
    if problem:
        reporter.event("message", text=f"--compile: torch.compile is unavailable here ({problem}); "
                                       "training eagerly")
        return
    if isinstance(objective, AdversarialObjective):  # its phases run through d_loss / g_loss
        for name in getattr(objective, "compiled_phases", ("d_loss", "g_loss")):
            setattr(objective, name, torch.compile(getattr(objective, name)))
        return
    compile_children(G)
    if cfg.reg.gp or cfg.reg.r1:  # the penalty's double backward cannot run through them
        reporter.event("message", text="--compile: D runs eagerly (its gradient penalty / R1 "
                                       "differentiates it twice)")
    else:
        compile_children(D)


def restore(ckpt: checkpoints.Checkpoint, G, D, G_ema, opt_G, opt_D, gen, batches,
            objective, amp: Precision | None = None, dist=None, spec: DataSpec | None = None
            ) -> tuple[int, float]:
    """Load a checkpoint into the live run; every tensor and metadata value is checked first
    (``gancli.validate``), so a damaged file is a one-line ``CheckpointError`` and nothing is
    half-loaded."""
    tensors, meta = ckpt.tensors, ckpt.meta
    validate.check_training_meta(meta, ckpt.path)
    if dist is not None and dist.rank > 0:  # this rank's own noise and pool, when saved
        mine = dist.rank_state(tensors)
        if mine is None:  # a checkpoint from fewer processes: fresh noise, an empty pool
            mine = {"rng.noise": gen.get_state()}
        tensors = {**{k: v for k, v in tensors.items() if not k.startswith(("rng.", "pool."))},
                   **mine}
    sample_shape = None
    if spec is not None:  # one sample as G makes it (a CycleGAN pair's data is (2, C, H, W))
        sample_shape = tuple(spec.shape[-3:]) if len(spec.shape) == 4 else tuple(spec.shape)
    validate.check_training_state(ckpt.path, meta, tensors, G, D, G_ema, opt_G, opt_D, gen,
                                  objective, amp, sample_shape)
    if amp is not None:
        amp.load(meta.get("scalers"))
    st.load_module(G, tensors, "G")
    st.load_module(D, tensors, "D")
    if G_ema is not None:
        st.load_module(G_ema, tensors, "G_ema")
    st.load_optimizer(opt_G, tensors, meta["optimizers"]["opt_G"], "opt_G")
    st.load_optimizer(opt_D, tensors, meta["optimizers"]["opt_D"], "opt_D")
    for opt in (opt_G, opt_D):
        match_layout(opt)
    gen.set_state(tensors["rng.noise"])
    batches.pos = int(meta["data_pos"])
    objective.load(tensors)
    return int(meta["step"]), float(meta.get("elapsed", 0.0))


@torch.no_grad()
def match_layout(opt: torch.optim.Optimizer) -> None:
    """Give loaded optimiser state its parameter's memory layout (checkpoints store tensors
    contiguous; a channels_last weight's moments must be channels_last too, or a fused
    step pairs the wrong elements)."""
    for group in opt.param_groups:
        for p in group["params"]:
            for key, v in opt.state.get(p, {}).items():
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    opt.state[p][key] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def check_finite(stats: dict[str, float], step: int, last_ckpt: Path | None) -> None:
    bad = [k for k, v in stats.items() if not math.isfinite(v)]
    if bad:
        kept = f"the last good checkpoint is {last_ckpt}" if last_ckpt else "no checkpoint yet"
        raise TrainingDiverged(
            f"{', '.join(bad)} became NaN/inf by step {step}; {kept}",
            hint="lower the learning rates (--set optim.lr_d=... optim.lr_g=...), add a "
                 "gradient penalty, or train in fp32", step=step, last_good=last_ckpt)
