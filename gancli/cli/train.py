"""``gancli train``: train a preset, or resume a run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer

from gancli.cli._options import DeviceOpt, JsonOpt, QuietOpt, state
from gancli.errors import CheckpointError, ConfigError, GancliError, PresetError

# what may change when a run is resumed: its length and cadence, nothing that shapes it
# (run.out only matters when resuming from a loose checkpoint file: a new run folder is made)
RESUMABLE = {"train.steps", "train.sample_every", "train.ckpt_every", "train.log_every", "train.keep",
             "train.on_nan", "train.nan_retries", "run.out",
             "train.compile", "train.channels_last"}  # speed only: same maths


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
    steps: Annotated[Optional[int], typer.Option(help="Generator steps.", min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size.", min=1)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for weights, latents and data order.",
                                                min=0)] = None,
    out: Annotated[Optional[str], typer.Option(help="Folder for run folders [default: runs].",
                                               rich_help_panel="Output")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a config key: --set optim.lr_g=1e-4 (repeatable).",
        show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="YAML file of overrides, applied before --set.", show_default=False)] = None,
    resume: Annotated[Optional[str], typer.Option(
        help="Continue a run: its folder or a checkpoint file.", show_default=False)] = None,
    sample_every: Annotated[Optional[int], typer.Option(help="Steps between sample grids.", min=0,
                                                        rich_help_panel="Output")] = None,
    ckpt_every: Annotated[Optional[int], typer.Option(help="Steps between checkpoints.", min=0,
                                                      rich_help_panel="Output")] = None,
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
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config and stop.")
                       ] = False,
) -> None:
    """Train a GAN from a preset. Ctrl-C saves a checkpoint and exits 130.

    Examples:

      gancli train dcgan                                  # built-in digits, no download

      gancli train wgan-gp --data ./celeba --set data.resolution=64

      gancli train wgan-gp-toy --steps 3000 --json > log.jsonl

      gancli train --resume runs/dcgan-001 --steps 6000   # continue, then go further
    """
    from gancli.config import load_config_file, parse_set, resolve

    app = state(ctx)
    json_out, quiet = json_out or app.json, quiet or app.quiet
    flags = _flags(data__source=data, train__steps=steps, train__batch_size=batch_size,
                   train__seed=seed, run__out=out, train__sample_every=sample_every,
                   train__ckpt_every=ckpt_every, train__log_every=log_every, train__on_nan=on_nan,
                   train__precision=precision, train__channels_last=channels_last,
                   train__compile=compile_)
    sets = parse_set(set_)
    ckpt = None
    if resume:
        from gancli import checkpoints

        ckpt = checkpoints.load(checkpoints.resolve(resume))
        changed = _flat(flags) | _flat(sets) | ({"--config"} if config else set())
        if preset or changed - RESUMABLE:
            bad = sorted((changed - RESUMABLE) | ({"PRESET"} if preset else set()))
            raise ConfigError(f"a resumed run keeps its config; cannot change {', '.join(bad)}",
                              hint=f"only these may change on --resume: {', '.join(sorted(RESUMABLE))}")
        if not isinstance(ckpt.meta.get("config"), dict):
            raise CheckpointError(f"{ckpt.path} holds no run config", hint="resume from a checkpoint "
                                  "written by `gancli train`")
        cfg = resolve([("checkpoint", ckpt.meta["config"]), ("--set", sets), ("flags", flags)])
        if "run.out" not in changed:  # a path stored in a file is never a place to write to
            cfg.run.out = "runs"
    else:
        if not preset:
            raise PresetError("no preset given", hint="gancli train dcgan (see `gancli zoo`), "
                              "or --resume RUN")
        from gancli.presets import load_preset

        layers = [(f"preset {preset}", load_preset(preset))]
        if config:
            layers.append((str(config), load_config_file(config)))
        cfg = resolve(layers + [("--set", sets), ("flags", flags)])
    if dry_run:
        typer.echo(cfg.to_json() if json_out else cfg.to_yaml().rstrip())
        return
    _run(cfg, ckpt, device or app.device, json_out, quiet)


def _run(cfg, ckpt, device_name, json_out: bool, quiet: bool) -> None:
    from gancli.cli.zoo import availability
    from gancli.runtime import init_distributed, resolve_device, shutdown_distributed
    from gancli.training.parallel import current

    missing = availability(cfg)
    if missing:
        raise PresetError(f"preset '{cfg.name}' cannot be trained yet: {missing}",
                          hint="`gancli zoo` marks which presets this version can train")
    device = init_distributed(resolve_device(device_name))  # under torchrun: join the job
    dist = current(device)
    finished = False
    try:
        _train(cfg, ckpt, device, dist, json_out, quiet)
        finished = True
    finally:
        shutdown_distributed(finished)


def _train(cfg, ckpt, device, dist, json_out: bool, quiet: bool) -> None:
    from gancli import preflight
    from gancli.data import load_dataset
    from gancli.reporting import Reporter, make_reporter
    from gancli.runs import create_run_dir, write_config
    from gancli.training.guard import run_with_rollback
    from gancli.runlog import append_jsonl
    from gancli.training.loop import train as run_training

    preflight.check_data_size(cfg)
    preflight.check_data_memory(cfg, cfg.task)  # before decoding anything
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
    fresh = ckpt is None or ckpt.path.parent.name != "checkpoints"
    preflight.check_run(cfg, dataset, device, Path(cfg.run.out) if fresh else ckpt.path.parent)
    run_dir = None
    if dist.main:  # rank 0 makes the run folder and tells the others where it is
        run_dir = (create_run_dir(cfg.run.out, cfg.run.name or cfg.name) if fresh
                   else ckpt.path.parent.parent)
    run_dir = dist.broadcast_object(run_dir)
    reporter = make_reporter(json_out, quiet) if dist.main else Reporter()

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

    try:
        run_with_rollback(once, cfg, ckpt, rolled_back)
    except GancliError:
        if (dist.main and fresh and not (run_dir / "metrics.jsonl").exists()
                and not checkpoints_in(run_dir)):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing happened: leave no empty run
        raise
    finally:
        reporter.close()


def checkpoints_in(run_dir: Path) -> list[Path]:
    folder = run_dir / "checkpoints"
    return list(folder.glob("*.safetensors")) if folder.is_dir() else []
