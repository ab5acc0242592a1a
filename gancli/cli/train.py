"""``gancli train``: train a preset, or resume a run."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer

from gancli.cli._options import DeviceOpt, JsonOpt, QuietOpt, at_least, nonempty_path, output, state
from gancli.errors import CheckpointError, ConfigError, GancliError, PresetError, TrainingDiverged

# what may change when a run is resumed: its length and cadence, nothing that shapes it
# (run.out only matters when resuming from a loose checkpoint file: a new run folder is made)
RESUMABLE = {"train.steps", "train.sample_every", "train.ckpt_every", "train.log_every", "train.keep",
             "train.ckpt_minutes",
             "train.on_nan", "train.nan_retries", "run.out",
             "train.compile", "train.channels_last",  # speed only: same maths
             "train.tensorboard"}  # a view of metrics.jsonl


def _flags(**values) -> dict:
    """Explicit flags as a config layer; a flag left unset never overrides anything."""
    layer: dict = {}
    for dotted, value in values.items():
        if value is None:
            continue
        section, key = dotted.split("__")
        layer.setdefault(section, {})[key] = value
    return layer


def _flat(layer: dict, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for k, v in layer.items():
        keys |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return keys


def train(
    ctx: typer.Context,
    preset: Annotated[Optional[str], typer.Argument(
        help="Preset name (see `gancli zoo`) or a preset .yaml file.", show_default=False)] = None,
    data: Annotated[Optional[str], typer.Option(
        "--data", help="Image folder, digits, shapes, toy:ring8|grid25|spiral, torchvision:NAME.",
        rich_help_panel="Data")] = None,
    direction: Annotated[Optional[str], typer.Option(
        "--direction", help="Paired translation (pix2pix): a2b learns A -> B, b2a learns B -> A "
        "(data.direction).", show_default=False, rich_help_panel="Data")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Generator steps.", min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size.", min=1)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for weights, latents and data order.",
                                                min=0)] = None,
    out: Annotated[Optional[str], typer.Option(help="Folder for run folders [default: runs].",
                                               rich_help_panel="Output", callback=nonempty_path)] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a config key: --set optim.lr_g=1e-4 (repeatable).",
        show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="YAML file of overrides, applied before --set.", show_default=False)] = None,
    resume: Annotated[Optional[str], typer.Option(
        help="Continue a run: its folder or a checkpoint file; or `auto` with a preset and --name: "
             "continue OUT/NAME if it has a checkpoint, else start it (for job scripts).",
        show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="A fixed run folder OUT/NAME (no -NNN number), for job scripts.",
        show_default=False, rich_help_panel="Output")] = None,
    sample_every: Annotated[Optional[int], typer.Option(help="Steps between sample grids.", min=0,
                                                        rich_help_panel="Output")] = None,
    ckpt_every: Annotated[Optional[int], typer.Option(help="Steps between checkpoints.", min=0,
                                                      rich_help_panel="Output")] = None,
    ckpt_minutes: Annotated[Optional[float], typer.Option(
        "--ckpt-minutes", help="Also a checkpoint at least every N minutes of training "
        "(default 15); 0 = off.", callback=at_least(0, "30"), show_default=False, rich_help_panel="Output")] = None,
    log_every: Annotated[Optional[int], typer.Option(help="Steps between logged statistics.",
                                                     min=1, rich_help_panel="Output")] = None,
    on_nan: Annotated[Optional[str], typer.Option(
        "--on-nan", help="On NaN/inf: stop (exit 3) or rollback (reload the last good checkpoint, "
        "halve the learning rates, retry; train.nan_retries times).", show_default=False)] = None,
    precision: Annotated[Optional[str], typer.Option(
        "--precision", help="fp32, or bf16 / fp16 autocast (fp16 with gradient scaling).",
        show_default=False, rich_help_panel="Speed")] = None,
    channels_last: Annotated[Optional[bool], typer.Option(
        "--channels-last", help="NHWC layout for images and conv weights.", show_default=False,
        rich_help_panel="Speed")] = None,
    compile_: Annotated[Optional[bool], typer.Option(
        "--compile", help="torch.compile G and D (eager, with a message, where unsupported).",
        show_default=False, rich_help_panel="Speed")] = None,
    tensorboard: Annotated[Optional[bool], typer.Option(
        "--tensorboard", help="Also write TensorBoard events (scalars, sample grids) to the run "
        "folder; needs gancli[tensorboard].", show_default=False, rich_help_panel="Output")] = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config and stop.")
                       ] = False,
) -> None:
    """Train a GAN from a preset. Ctrl-C (or SIGTERM, SIGHUP, SIGUSR1) saves a checkpoint and
    exits 130 (143, 129, 138).

    Examples:

      gancli train dcgan                                  # built-in digits, no download

      gancli train wgan-gp --data ./celeba --set data.resolution=64

      gancli train wgan-gp-toy --steps 3000 --json > log.jsonl

      gancli train --resume runs/dcgan-001 --steps 6000   # continue, then go further

      gancli train dcgan --name job-42 --resume auto      # job script: start, or continue
    """
    from gancli.config import parse_set, resolve

    app = state(ctx)
    json_out, quiet = (mode := output(ctx, json_out, quiet)).json, mode.quiet
    flags = _flags(data__source=data, data__direction=direction, train__steps=steps, train__batch_size=batch_size,
                   train__seed=seed, run__out=out, train__sample_every=sample_every,
                   train__ckpt_every=ckpt_every, train__ckpt_minutes=ckpt_minutes,
                   train__log_every=log_every, train__on_nan=on_nan,
                   train__precision=precision, train__channels_last=channels_last,
                   train__compile=compile_, train__tensorboard=tensorboard)
    sets = parse_set(set_)
    ckpt, fixed = None, None
    if name is not None and resume not in (None, "auto"):
        raise ConfigError("--name names a new run, or the run that --resume auto continues",
                          hint=f"with --resume {resume} the run folder is already chosen; drop --name")
    if resume == "auto":
        from gancli.runs import check_run_name

        if not preset or name is None:
            raise ConfigError("--resume auto needs the preset and --name NAME",
                              hint="e.g. gancli train dcgan --name job-42 --resume auto: the same "
                                   "command starts the run, or continues it after a stop")
        cfg = _preset_config(preset, config, sets, flags)
        fixed = Path(cfg.run.out).expanduser() / check_run_name(name)
        cfg, ckpt = _auto(ctx, cfg, fixed)
        if ckpt is not None and ckpt.step >= cfg.train.steps and not dry_run:
            typer.echo(f"run {fixed} already finished: step {ckpt.step} of {cfg.train.steps}; "
                       "nothing to do", err=True)
            return
    elif resume:
        from gancli import checkpoints
        from gancli.runs import check_checkpoint_belongs

        run = _run_folder_of(resume)
        if run is not None:  # before reading it: one owner per run
            _own(ctx, run)
        ckpt = checkpoints.load(checkpoints.resolve(resume))
        from gancli.validate import check_training_meta

        check_training_meta(ckpt.meta, ckpt.path)  # every stored type, before any is used
        changed = _flat(flags) | _flat(sets) | ({"--config"} if config else set())
        if preset or changed - RESUMABLE:
            bad = sorted((changed - RESUMABLE) | ({"PRESET"} if preset else set()))
            raise ConfigError(f"a resumed run keeps its config; cannot change {', '.join(bad)}",
                              hint=f"only these may change on --resume: {', '.join(sorted(RESUMABLE))}")
        if not isinstance(ckpt.meta.get("config"), dict):
            raise CheckpointError(f"{ckpt.path} holds no run config", hint="resume from a checkpoint "
                                  "written by `gancli train`")
        if ckpt.path.parent.name == "checkpoints":  # resumed into its own run folder
            check_checkpoint_belongs(ckpt.path.parent.parent, ckpt.path, ckpt.meta)
        cfg = resolve([("checkpoint", ckpt.meta["config"]), ("--set", sets), ("flags", flags)])
        if "run.out" not in changed:  # a path stored in a file is never a place to write to
            cfg.run.out = "runs"
        if cfg.data.channels is None:  # "what the data has" was decided when the run began
            from gancli.validate import data_channels

            cfg.data.channels = data_channels(ckpt.meta["data"])
        if cfg.run.name:  # a name stored in a file is checked like one typed (no ../ escapes)
            from gancli.runs import check_run_name

            check_run_name(cfg.run.name)
        if ckpt.step >= cfg.train.steps and not dry_run:  # no folder made, nothing rewritten
            typer.echo(f"{ckpt.path} is at step {ckpt.step} of {cfg.train.steps}: nothing to do "
                       f"(continue further with --steps N, N > {ckpt.step})", err=True)
            return
    else:
        cfg = _preset_config(preset, config, sets, flags)
        if name is not None:
            from gancli.runs import check_run_name

            fixed = Path(cfg.run.out).expanduser() / check_run_name(name)
    check_trainable(cfg)  # --dry-run included
    if dry_run:
        typer.echo(cfg.to_json() if json_out else cfg.to_yaml().rstrip())
        return
    made = False  # --name made the folder now: a run refused before its first step leaves none
    if fixed is not None and ckpt is None:
        made = not fixed.exists()
        _claim(ctx, fixed, resume == "auto")
    try:
        _run(cfg, ckpt, device or app.device, json_out, quiet, fixed)
    except BaseException:
        if made and not (fixed / "metrics.jsonl").exists() and not checkpoints_in(fixed):
            shutil.rmtree(fixed, ignore_errors=True)
        raise


def check_trainable(cfg) -> None:
    """Before any folder or data: every piece the preset names is in this version, and the
    objective accepts the config (``validate_run``; the data's part is checked once it is read)."""
    from gancli.presets import availability
    from gancli.training.objectives import validate_run

    missing = availability(cfg)
    if missing:
        raise PresetError(f"preset '{cfg.name}' cannot be trained yet: {missing}",
                          hint="`gancli zoo` marks which presets this version can train")
    validate_run(cfg)


def _preset_config(preset, config, sets, flags):
    from gancli.config import load_config_file, resolve
    from gancli.presets import load_preset

    if not preset:
        raise PresetError("no preset given", hint="gancli train dcgan (see `gancli zoo`), "
                          "or --resume RUN")
    layers = [(f"preset {preset}", load_preset(preset))]
    if config:
        layers.append((str(config), load_config_file(config)))
    return resolve(layers + [("--set", sets), ("flags", flags)])


# not compared by --resume auto: what --resume may change, where the run folder is, and the
# learning rates (a `train.on_nan=rollback` halves them in the stored config)
_AUTO_FREE = RESUMABLE | {"run.name", "optim.lr_g", "optim.lr_d"}


def _dotted(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        out.update(_dotted(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def _own(ctx: typer.Context, run: Path) -> None:
    """Take run folder ``run``'s lock (once per command; on rank 0 only under torchrun)."""
    from gancli.runs import run_lock

    held = ctx.meta.setdefault("gancli.locked", set())
    if _launcher_rank() == 0 and str(run) not in held:
        ctx.with_resource(run_lock(run))  # released when the command ends, however it ends
        held.add(str(run))


def _auto(ctx: typer.Context, cfg, run: Path):
    """``--resume auto``: (config, checkpoint) to continue run folder ``run`` from its newest
    readable checkpoint, or (``cfg``, None) to start it. The command must describe the same
    run (every key but those in ``_AUTO_FREE`` equal to the stored config), else ConfigError."""
    from gancli import checkpoints
    from gancli.config import resolve
    from gancli.runs import check_checkpoint_belongs

    if not run.is_dir():
        return cfg, None
    _own(ctx, run)
    found = checkpoints.latest(run / "checkpoints")
    if found is None:  # stopped before its first checkpoint: start it again
        return cfg, None
    ckpt = checkpoints.load(found)
    stored = ckpt.meta.get("config")
    if not isinstance(stored, dict):
        raise CheckpointError(f"{found} holds no run config", hint="resume from a checkpoint "
                              "written by `gancli train`")
    check_checkpoint_belongs(run, found, ckpt.meta)
    mine, theirs = _dotted(cfg.to_dict()), _dotted(stored)
    differ = sorted(k for k in mine.keys() | theirs.keys()
                    if k not in _AUTO_FREE and mine.get(k) != theirs.get(k))
    if differ:
        k = differ[0]
        raise ConfigError(f"run folder {run} holds another run: {k} is {theirs.get(k)!r} there, "
                          f"{mine.get(k)!r} in this command", hint="use another --name, or the "
                          "exact command that started the run")
    now = {}
    for k in RESUMABLE - {"run.out"}:
        section, key = k.split(".")
        now.setdefault(section, {})[key] = mine[k]
    resumed = resolve([("checkpoint", stored), ("this command", now)])
    resumed.run.out = cfg.run.out
    return resumed, ckpt


def _claim(ctx: typer.Context, run: Path, auto: bool) -> None:
    """Make and own the fixed run folder ``run`` of a run that starts now; refuse one that
    already holds a checkpoint unless ``--resume auto`` looked and found none."""
    from gancli import checkpoints

    if _launcher_rank() != 0:
        return
    try:
        for sub in ("samples", "checkpoints"):
            (run / sub).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GancliError(f"cannot create run folder {run}: {e.strerror}",
                          hint="choose another --out") from None
    _own(ctx, run)
    if not auto and checkpoints.latest(run / "checkpoints") is not None:
        raise ConfigError(f"run folder {run} already holds a run",
                          hint="continue it with the same command plus --resume auto, or "
                               "choose another --name")


def _run_folder_of(resume: str) -> Path | None:
    """The run folder a ``--resume`` argument trains into (None for a loose checkpoint file)."""
    p = Path(resume).expanduser()
    if p.is_dir():
        return p.parent if p.name == "checkpoints" else p
    if p.is_file() and p.parent.name == "checkpoints":
        return p.parent.parent
    return None


def _launcher_rank() -> int:
    """This process's rank as torchrun announces it (0 outside torchrun), before the job starts."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _run(cfg, ckpt, device_name, json_out: bool, quiet: bool, fixed: Path | None = None) -> None:
    from gancli.runtime import init_distributed, resolve_device, shutdown_distributed
    from gancli.training.parallel import current

    device = init_distributed(resolve_device(device_name))  # under torchrun: join the job
    dist = current(device)
    finished = False
    try:
        _train(cfg, ckpt, device, dist, json_out, quiet, fixed)
        finished = True
    finally:
        shutdown_distributed(finished)


def _train(cfg, ckpt, device, dist, json_out: bool, quiet: bool, fixed: Path | None = None) -> None:
    from gancli import preflight
    from gancli.data import load_dataset
    from gancli.reporting import Reporter, guard_output, make_reporter
    from gancli.runs import create_run_dir, run_lock, write_config
    from gancli.training.guard import run_with_rollback
    from gancli.runlog import append_jsonl
    from gancli.training.loop import train as run_training

    preflight.check_data_size(cfg)
    if cfg.train.tensorboard:
        from gancli.tblog import check_available

        check_available()  # before any work: a missing package is a one-line error
    progress = None  # preparing an image folder into a store: never a blank screen
    if dist.main and not quiet:
        import sys

        from gancli.data.progress import PrepareProgress

        progress = PrepareProgress("json" if json_out else "auto",
                                   stream=sys.stdout if json_out else None, label="preparing data")
    try:  # fail on bad data before making folders
        dataset = load_dataset(cfg.data, cfg.train.seed, cfg.task, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    if ckpt is not None:
        from gancli.validate import check_resume_data

        check_resume_data(ckpt.meta["data"], dataset, ckpt.path)
    fresh = ckpt is None or ckpt.path.parent.name != "checkpoints"
    preflight.check_run(cfg, dataset, device, Path(cfg.run.out) if fresh else ckpt.path.parent)
    run_dir = None
    if dist.main:  # rank 0 makes the run folder and tells the others where it is
        if fresh and fixed is not None:  # --name: made and owned by the command already
            run_dir = fixed
        else:
            run_dir = (create_run_dir(cfg.run.out, cfg.run.name or cfg.name) if fresh
                       else ckpt.path.parent.parent)
    run_dir = dist.broadcast_object(run_dir)
    reporter = guard_output(make_reporter(json_out, quiet) if dist.main else Reporter())
    if dist.main and cfg.train.tensorboard:
        from gancli.reporting import FanOut
        from gancli.tblog import TensorBoardReporter

        reporter = FanOut(reporter, TensorBoardReporter(run_dir))

    def once(cfg, ckpt):
        if dist.main:
            write_config(run_dir, cfg)
        return run_training(cfg, run_dir, device, reporter, resume=ckpt, data=dataset)

    def rolled_back(row: dict) -> None:  # train.on_nan=rollback: log it, tell the user, go on
        if not dist.main:
            return
        append_jsonl(run_dir / "metrics.jsonl", row)
        reporter.close()
        reporter.event("rollback", **row)
        if not quiet and not json_out:
            typer.echo(f"warning: NaN/inf at step {row['diverged_at']}; rolled back to step "
                       f"{row['step']} with lr_g={row['lr_g']:g}, lr_d={row['lr_d']:g} "
                       f"(attempt {row['attempt']}/{cfg.train.nan_retries})", err=True)

    # a fresh folder is owned from its creation (a resumed one already is: see `train`)
    lock = run_lock(run_dir) if dist.main and fresh and fixed is None else contextlib.nullcontext()
    try:
        with lock:
            run_with_rollback(once, cfg, ckpt, rolled_back)
    except BaseException as e:  # a user error, Ctrl-C or a bug alike
        if (dist.main and fresh and not (run_dir / "metrics.jsonl").exists()
                and not checkpoints_in(run_dir)):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing happened: leave no empty run
        elif dist.main and isinstance(e, TrainingDiverged):  # `gancli runs` shows it diverged
            from gancli.runinfo import diverged_row

            try:
                append_jsonl(run_dir / "metrics.jsonl", diverged_row(e.step, e.message))
            except OSError:  # a full disk must not hide the divergence itself
                pass
        raise
    finally:
        reporter.close()


def checkpoints_in(run_dir: Path) -> list[Path]:
    folder = run_dir / "checkpoints"
    return list(folder.glob("*.safetensors")) if folder.is_dir() else []
