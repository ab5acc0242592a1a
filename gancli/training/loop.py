"""The training loop: one function for every GAN.

Per generator step: the objective's ``on_step`` hook, ``n_critic`` discriminator steps
(each on a fresh real batch), then one generator step, then EMA (``train_step``), then the
cadence actions: a log row, a sample grid, a checkpoint, a stop (``train``). What differs
between GANs lives in the objective (``training/objectives/base.py``), not here: the loop
never asks which objective, family or preset it runs.
"""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

import gancli
from gancli import checkpoints, validate
from gancli.conditioning import Conditioning
from gancli.config import Config
from gancli.data import load_dataset
from gancli.data.base import Dataset
from gancli.data.batches import Batches
from gancli.errors import CheckpointError, ConfigError, GancliError, Interrupted, signal_exit_code
from gancli.fileio import clean_temporary
from gancli.models import DataSpec, build_nets
from gancli.regularizers import clip_weights
from gancli.reporting import Reporter, guard_output
from gancli.runlog import append_jsonl, trim_metrics
from gancli.runtime import Precision, compile_problem, configure_backends, seeded_rng

from gancli.training.ema import ema_decay, make_ema, recompute_bn_stats, update_ema
from gancli.training.guard import FiniteGuard, check_finite_stats, check_finite_weights
from gancli.training.objectives import Objective, validate_run
from gancli.training.parallel import RANK_SEED_STRIDE, Dist, current, sync_batchnorm
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


@dataclass
class TrainState:
    """Everything the loop carries from step to step: the networks and optimisers, the run's
    random generator and data position (all saved in a checkpoint), and the bookkeeping of
    the cadence actions (last checkpoint, timers, warnings said)."""

    cfg: Config
    run_dir: Path
    device: torch.device
    reporter: Reporter
    data: Dataset
    spec: DataSpec
    dist: Dist  # torchrun's job, or a single process (see training/parallel.py)
    conditioning: Conditioning
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module | None  # train.ema: the averaged G that previews and sampling use
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    amp: Precision
    rng: torch.Generator  # every random draw of a step (latents, labels, pool, augmentation)
    batches: Batches
    objective: Objective
    data_meta: dict  # the data spec and names stored in every checkpoint
    step: int = 0  # generator steps done
    elapsed: float = 0.0  # seconds trained before this process started (a resumed run)
    lr_factor: float = 1.0  # this step's learning-rate decay factor (lr_factor)
    preview: Preview | None = None
    meter: Meter = field(default_factory=Meter)
    guard: FiniteGuard | None = None  # NaN/inf in losses and gradients, read at log and save time
    t0: float = 0.0  # time.perf_counter() when this process's loop began
    tick: tuple[float, int] = (0.0, 0)  # (time, step) of the last log row: the rate since
    saved_at: float = 0.0  # time.monotonic() of the last checkpoint (train.ckpt_minutes)
    last_ckpt: Path | None = None
    last_grid: Path | None = None  # the newest sample grid, named in the closing line
    in_step: bool = False  # between the start of a step and `step += 1`: no whole state
    ema_settled_at: int = -1  # the step G_ema's batch-norm statistics were re-estimated at
    warned: set[str] = field(default_factory=set)  # kinds of optional writes that failed
    prepared: str | None = None  # what the objective's prepare() fitted, for the user
    d_params: list[torch.nn.Parameter] = field(default_factory=list)
    g_params: list[torch.nn.Parameter] = field(default_factory=list)

    @property
    def metrics_log(self) -> Path:
        return self.run_dir / "metrics.jsonl"


def train(cfg: Config, run_dir: Path, device: torch.device, reporter: Reporter,
          resume: checkpoints.Checkpoint | None = None, data: Dataset | None = None
          ) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (checkpoints, samples, metrics.jsonl), from scratch or
    from ``resume``; returns where it ended. Errors: ``ConfigError`` before anything is built,
    ``TrainingDiverged`` (NaN/inf), ``Interrupted`` (a stop signal, after a checkpoint),
    ``GancliError`` for a file that cannot be written (after a checkpoint when possible)."""
    reporter = guard_output(reporter)  # a closed stdout or terminal stops output, not training
    if data is None:
        data = load_dataset(cfg.data, cfg.train.seed, cfg.task)
    # checked, then built: networks, optimisers, the random generator, batches, the objective
    s = build_state(cfg, run_dir, device, reporter, data, fresh=resume is None)
    # a resumed run continues bit for bit: weights, optimisers, generator, data position
    if resume is not None:
        restore(s, resume)
        s.last_ckpt = resume.path
    s.preview = Preview(cfg, data, s.G_ema if s.G_ema is not None else s.G, device,
                        conditioning=s.conditioning)
    if s.dist.main:  # only rank 0 writes: logs, samples, checkpoints
        trim_metrics(s.metrics_log, s.step)
        clean_temporary(run_dir / "checkpoints")
    start_report(s)
    with stop_on_signals() as stop, save_on_write_error(s):
        stop.run_dir = run_dir
        while s.step < cfg.train.steps:
            train_step(s)  # the objective's hook, n_critic D steps, one G step, EMA
            stop_signal, time_due = decide_stop(s, stop)
            last = s.step == cfg.train.steps
            if s.step % cfg.train.log_every == 0 or last or stop_signal:
                log_row(s)
            if (cfg.train.sample_every and s.step % cfg.train.sample_every == 0) or last:
                write_samples(s)
            if not s.dist and stop.requested:  # also a signal that came while logging
                stop_signal = stop.signum
            if ((cfg.train.ckpt_every and s.step % cfg.train.ckpt_every == 0) or last
                    or stop_signal or time_due):
                s.last_ckpt = save_checkpoint(s)
                s.saved_at = time.monotonic()
            if stop_signal and not last:
                raise Interrupted(f"interrupted at step {s.step} by "
                                  f"{StopRequest.name_of(stop_signal)}; checkpoint saved: "
                                  f"{s.last_ckpt}",
                                  hint=f"continue with: gancli train --resume {run_dir}",
                                  exit_code=signal_exit_code(stop_signal))
    return finish(s)


def build_state(cfg: Config, run_dir: Path, device: torch.device, reporter: Reporter,
                data: Dataset, fresh: bool = True) -> TrainState:
    """Validate, then build everything a step needs, in a fixed order (the weight init draws
    from torch's global generator seeded here, so a seed gives the same networks).
    ``fresh``: a new run, so the objective's ``prepare`` fits what it takes from the data (a
    resumed run loads it from the checkpoint instead)."""
    t = cfg.train
    spec = DataSpec(data.kind, data.shape, data.num_classes)
    objective_cls = validate_run(cfg, spec)  # before anything is built
    objective_cls.check_data(data)  # e.g. pix2pix refuses unpaired data
    dist = current(device)
    if t.global_batch and t.global_batch != t.batch_size * dist.world:
        raise ConfigError(f"train.global_batch {t.global_batch} != train.batch_size {t.batch_size}"
                          f" x {dist.world} process(es)", hint="set train.global_batch=0, or a "
                          "per-process train.batch_size of global_batch / processes")
    configure_backends(device, t.tf32)
    torch.manual_seed(t.seed)  # weight init; every later random draw uses `rng` below
    conditioning = objective_cls.conditioning
    nets = build_nets(cfg.model, spec, conditioning)
    if t.sync_bn and dist:
        nets.G, nets.D = sync_batchnorm(nets.G, device), sync_batchnorm(nets.D, device)
    G, D = nets.G.to(device), nets.D.to(device)
    if t.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    dist.broadcast_module(G, D)  # the same initial weights on every rank
    opt_G = make_optimizer(cfg, G.parameters(), cfg.optim.lr_g)
    opt_D = make_optimizer(cfg, D.parameters(), cfg.optim.lr_d)
    amp = Precision(t.precision, device)
    rng = seeded_rng(t.seed + 1 + RANK_SEED_STRIDE * dist.rank)  # ranks draw different noise
    batches = Batches(data, t.batch_size, t.seed, device, cfg.data.flip, dist.rank, dist.world,
                      read_threads=cfg.data.read_threads)
    objective = objective_cls(cfg, G, D, rng, device, spec.num_classes)
    objective.train_size = len(data)
    prepared = objective.prepare(data) if fresh else None  # e.g. clusters of the data
    G_ema = make_ema(G) if t.ema else None  # after prepare: it copies G's buffers
    if t.compile:
        compile_nets(G, D, cfg, device, reporter, objective)
    data_meta = {**spec.to_dict(), "classes": data.classes,
                 "modes": data.modes.tolist() if data.modes is not None else None,
                 "sigma": data.sigma, "name": data.name, "domains": data.domains,
                 "multi_label": data.y is not None and data.y.is_floating_point()}
    return TrainState(cfg, run_dir, device, reporter, data, spec, dist, conditioning, G, D,
                      G_ema, opt_G, opt_D, amp, rng, batches, objective, data_meta,
                      guard=FiniteGuard(device), d_params=list(D.parameters()),
                      g_params=list(G.parameters()), prepared=prepared)


def start_report(s: TrainState) -> None:
    """Tell the reporter what runs, and start the clocks."""
    s.reporter.start({"run_dir": str(s.run_dir), "preset": s.cfg.name, "device": str(s.device),
                      "steps": s.cfg.train.steps, "start_step": s.step, "data": s.data.name,
                      "samples": len(s.data), "data_info": s.data.info,
                      "params_G": sum(p.numel() for p in s.G.parameters()),
                      "params_D": sum(p.numel() for p in s.D.parameters())})
    if s.prepared:  # a fresh run: what prepare() fitted (a resumed run loaded it)
        s.reporter.event("message", text=s.prepared)
    s.meter, s.t0 = Meter(), time.perf_counter()
    s.tick = (s.t0, s.step)
    s.saved_at, s.in_step = time.monotonic(), False


def train_step(s: TrainState) -> None:
    """One generator step: the learning rates, the objective's ``on_step`` hook, ``n_critic``
    D steps (each on a fresh real batch), one G step, the EMA; then ``s.step`` counts it."""
    cfg, t = s.cfg, s.cfg.train
    s.in_step = True  # an OSError from here to `step += 1` leaves a partial step: no save
    progress = s.step / t.steps
    s.lr_factor = lr_factor(cfg, s.step)
    for opt, lr in ((s.opt_G, cfg.optim.lr_g), (s.opt_D, cfg.optim.lr_d)):
        for group in opt.param_groups:
            group["lr"] = lr * s.lr_factor
    # growth schedules, lazy regularisation, ADA: before D; True asks for fresh optimiser
    # moments (new layers came in: ProGAN's official code resets Adam at every phase)
    if s.objective.on_step(s.step):
        for opt in (s.opt_G, s.opt_D):
            opt.state.clear()

    s.D.requires_grad_(True)
    for _ in range(t.n_critic):
        real, labels = s.batches.next()
        if t.channels_last and real.dim() == 4:
            real = real.contiguous(memory_format=torch.channels_last)
        with s.amp.autocast("D"):
            d_loss, d_stats = s.objective.d_step(real, labels, progress)
        optimise(s, "D", d_loss, s.opt_D)
        if cfg.reg.clip:
            clip_weights(s.D, cfg.reg.clip)
    s.D.requires_grad_(False)  # G's step needs no gradients for D's weights
    with s.amp.autocast("G"):
        g_loss, g_stats = s.objective.g_step(t.batch_size, progress)
    optimise(s, "G", g_loss, s.opt_G)
    s.dist.broadcast_buffers(s.G, s.D)  # batch-norm statistics follow rank 0, as with DDP
    if s.G_ema is not None:
        update_ema(s.G_ema, s.G, ema_decay(t.ema, s.step, t.ema_start, t.ema_rampup))
    s.step += 1
    s.in_step = False
    s.meter.add({**d_stats, **g_stats})


def optimise(s: TrainState, net: str, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
    """Backward through ``loss``, average the gradients over processes, watch them for
    NaN/inf, step the optimiser of ``net`` ("D" or "G")."""
    params = s.d_params if net == "D" else s.g_params
    opt.zero_grad(set_to_none=True)
    s.amp.backward(net, loss)
    s.dist.average_gradients(params)
    s.guard.watch(s.step + 1, net, loss, () if s.amp.scaled else params)
    s.amp.step(net, opt)


# -- the cadence actions, after a step --------------------------------------------------------


def decide_stop(s: TrainState, stop: StopRequest) -> tuple[int, bool]:
    """(the signal to stop on, or 0; whether a time-based checkpoint is due), the same on
    every rank: a single process decides at every step; under torchrun the ranks agree at
    log steps (one all-reduce of the maximum), so all of them stop or save after the same
    step, whichever rank saw the signal or the clock first."""
    t = s.cfg.train
    due = bool(t.ckpt_minutes) and time.monotonic() - s.saved_at >= 60 * t.ckpt_minutes
    if not s.dist:
        return stop.signum or 0, due
    if s.step % t.log_every and s.step != t.steps:
        return 0, False
    signum, due = s.dist.max_ints([stop.signum or 0, int(due)])
    return signum, bool(due)


def log_row(s: TrainState) -> None:
    """The means since the last row (checked finite), the rate and ETA: to metrics.jsonl
    (rank 0) and the reporter."""
    cfg, t, step = s.cfg, s.cfg.train, s.step
    stats = s.meter.read(s.dist.average_stats)
    s.guard.check(cfg, s.last_ckpt)
    check_finite_stats(stats, cfg, step, s.last_ckpt)
    now = time.perf_counter()
    rate = (step - s.tick[1]) / max(now - s.tick[0], 1e-9)
    s.tick = (now, step)
    row = {"step": step, "steps": t.steps, **stats, "lr_g": cfg.optim.lr_g * s.lr_factor,
           "lr_d": cfg.optim.lr_d * s.lr_factor,
           "img_s": rate * t.batch_size * s.dist.world * t.n_critic,
           "eta_s": (t.steps - step) / max(rate, 1e-9),
           "elapsed_s": s.elapsed + now - s.t0}
    if s.dist.main:
        optional_write(s, "metrics rows to", append_jsonl, s.metrics_log, row)
    s.reporter.step(row)


def write_samples(s: TrainState) -> None:
    """A preview grid (rank 0) from G_ema with settled batch-norm statistics, or from G; the
    toy data's mode coverage goes to metrics.jsonl too."""
    settle_ema(s)  # on every rank: a SyncBatchNorm average all-reduces
    if not s.dist.main:
        return
    written = optional_write(s, "sample grids to", s.preview.write, s.run_dir / "samples", s.step)
    if written is None:
        return
    path, extra = written
    s.last_grid = path
    if extra:
        optional_write(s, "metrics rows to", append_jsonl, s.metrics_log, {"step": s.step, **extra})
    s.reporter.event("sample", step=s.step, path=str(path), **extra)


def settle_ema(s: TrainState) -> None:
    """Give G_ema batch-norm statistics of its own weights before it is shown or saved
    (update_ema copies the live G's, which do not fit the average); once per step."""
    if s.G_ema is None or s.ema_settled_at == s.step:
        return
    s.ema_settled_at = s.step
    bn_stats_for_ema(s.G_ema, s.cfg, s.conditioning, s.spec.num_classes)


def optional_write(s: TrainState, what: str, write, *args):
    """Previews and metrics rows are not worth a run: on OSError (disk full, a read-only
    folder) warn once per kind, skip the write, go on training; None when it failed."""
    try:
        return write(*args)
    except OSError as e:
        if what not in s.warned:
            s.warned.add(what)
            where = f" {e.filename}" if e.filename else ""
            s.reporter.event("warning", text=f"warning: cannot write {what}{where}: "
                             f"{e.strerror or e}; training goes on without them (said once)")
        return None


def save_checkpoint(s: TrainState) -> Path:
    """Write the checkpoint of step ``s.step`` (rank 0; every rank joins the gathers): the
    networks, optimisers, the generator's state, the objective's state, every other rank's
    generator and objective state; then keep the newest ``train.keep``. Refuses weights that
    came from a NaN/inf step (``TrainingDiverged``)."""
    cfg, step = s.cfg, s.step
    path = checkpoints.step_path(s.run_dir / "checkpoints", step)
    s.guard.check(cfg, s.last_ckpt)  # never write weights that came from a NaN/inf step
    tensors = {**checkpoints.module_tensors("G", s.G), **checkpoints.module_tensors("D", s.D),
               **s.objective.state()}
    if s.G_ema is not None:
        settle_ema(s)
        tensors.update(checkpoints.module_tensors("G_ema", s.G_ema))
    check_finite_weights(tensors, cfg, step, s.last_ckpt)
    opt_meta = {}
    for name, opt in (("opt_G", s.opt_G), ("opt_D", s.opt_D)):
        tens, opt_meta[name] = checkpoints.optimizer_state(name, opt)
        tensors.update(tens)
    tensors["rng.noise"] = s.rng.get_state()
    s.dist.check_same(s.G, s.D)
    # every other rank's own noise generator and objective state (image pool), as rankN.*
    tensors.update(s.dist.gather_rank_state({"rng.noise": s.rng.get_state(),
                                             **s.objective.state()}))
    if not s.dist.main:
        return path
    checkpoints.save(path, tensors, {
        "gancli_version": gancli.__version__, "preset": cfg.name, "family": cfg.model.family,
        "task": cfg.task, "step": step, "data_pos": s.batches.pos,
        "elapsed": s.elapsed + (time.perf_counter() - s.t0), "config": cfg.to_dict(),
        "data": s.data_meta, "optimizers": opt_meta, "scalers": s.amp.state(),
        "world_size": s.dist.world})
    checkpoints.mark_latest(s.run_dir / "checkpoints", path)
    checkpoints.prune(s.run_dir / "checkpoints", cfg.train.keep)
    s.reporter.event("checkpoint", step=step, path=str(path))
    return path


@contextmanager
def save_on_write_error(s: TrainState):
    """Any other OSError in the loop (a file that cannot be written or read): save a
    checkpoint if the state is a whole step and this is a single process (under torchrun the
    other ranks could not join the save), then stop with one line naming the file."""
    try:
        yield
    except OSError as e:
        what = f"{e.strerror or type(e).__name__}" + (f" ({e.filename})" if e.filename else "")
        if s.in_step or s.dist:
            kept = (f"the last checkpoint is {s.last_ckpt}" if s.last_ckpt
                    else "no checkpoint was written yet")
        else:
            try:
                kept = f"checkpoint saved: {save_checkpoint(s)}"
            except (CheckpointError, OSError) as e2:
                kept = (f"the checkpoint failed too ({getattr(e2, 'message', e2)}); "
                        f"the last one is {s.last_ckpt}")
        again = (f"gancli train --resume {s.run_dir}" if s.last_ckpt or not kept.startswith("no")
                 else "the same command")
        raise GancliError(f"{what} at step {s.step}; {kept}",
                          hint=f"free disk space or fix the permissions, then: {again}") from None


def finish(s: TrainState) -> TrainResult:
    """The closing report, and what the run ended with."""
    seconds = s.elapsed + time.perf_counter() - s.t0
    assert s.last_ckpt is not None
    s.reporter.done({"run_dir": str(s.run_dir), "checkpoint": str(s.last_ckpt), "step": s.step,
                     "seconds": seconds, "samples": str(s.last_grid) if s.last_grid else None,
                     "task": s.cfg.task, "data": s.data.name, "data_kind": s.data.kind})
    return TrainResult(s.run_dir, s.last_ckpt, s.step, seconds, s.G, s.D)


# -- building blocks ----------------------------------------------------------------------------


def bn_stats_for_ema(G_ema: torch.nn.Module, cfg: Config, conditioning: Conditioning,
                     num_classes: int) -> None:
    """Re-estimate G_ema's batch-norm statistics for its own weights (see
    ``recompute_bn_stats``), feeding the conditioning G takes (``Conditioning.draw``: random
    class labels, InfoGAN codes, or none). Translation generators (image inputs) keep the
    copied statistics."""
    if conditioning.translates:
        return
    m = cfg.model

    def condition(n: int, rng: torch.Generator) -> torch.Tensor | None:
        return conditioning.draw(n, num_classes, m, rng)

    recompute_bn_stats(G_ema, m.z_dim, m.z_dist, cfg.train.batch_size, condition=condition)


def compile_nets(G, D, cfg: Config, device: torch.device, reporter: Reporter,
                 objective: Objective) -> None:
    """``train.compile``: what ``objective.compile`` compiles (see ``Objective.compile``), or
    say in one line why nothing can be."""
    problem = compile_problem(device)
    if problem:
        reporter.event("message", text=f"--compile: torch.compile is unavailable here ({problem}); "
                                       "training eagerly")
        return
    objective.compile(cfg, reporter)


def restore(s: TrainState, ckpt: checkpoints.Checkpoint) -> None:
    """Load a checkpoint into the live run (``s.step``, ``s.elapsed`` and everything a step
    reads); every tensor and metadata value is checked first (``gancli.validate``), so a
    damaged file is a one-line ``CheckpointError`` and nothing is half-loaded."""
    tensors, meta = ckpt.tensors, ckpt.meta
    validate.check_training_meta(meta, ckpt.path)
    if s.dist.rank > 0:  # this rank's own noise and pool, when saved
        mine = s.dist.rank_state(tensors)
        if mine is None:  # a checkpoint from fewer processes: fresh noise, an empty pool
            mine = {"rng.noise": s.rng.get_state()}
        tensors = {**{k: v for k, v in tensors.items() if not k.startswith(("rng.", "pool."))},
                   **mine}
    # one sample as G makes it (a CycleGAN pair's data is (2, C, H, W))
    shape = s.spec.shape
    sample_shape = tuple(shape[-3:]) if len(shape) == 4 else tuple(shape)
    validate.check_training_state(ckpt.path, meta, tensors, s.G, s.D, s.G_ema, s.opt_G, s.opt_D,
                                  s.rng, s.objective, s.amp, sample_shape)
    s.amp.load(meta.get("scalers"))
    checkpoints.load_module(s.G, tensors, "G")
    checkpoints.load_module(s.D, tensors, "D")
    if s.G_ema is not None:
        checkpoints.load_module(s.G_ema, tensors, "G_ema")
    checkpoints.load_optimizer(s.opt_G, tensors, meta["optimizers"]["opt_G"], "opt_G")
    checkpoints.load_optimizer(s.opt_D, tensors, meta["optimizers"]["opt_D"], "opt_D")
    for opt in (s.opt_G, s.opt_D):
        match_layout(opt)
    s.rng.set_state(tensors["rng.noise"])
    s.batches.pos = int(meta["data_pos"])
    s.objective.load(tensors)
    s.step, s.elapsed = int(meta["step"]), float(meta.get("elapsed", 0.0))


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
