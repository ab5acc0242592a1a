"""``gancli train``: train a preset, or resume a run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer

from gancli.cli._options import DeviceOpt, JsonOpt, QuietOpt, state
from gancli.errors import ConfigError, GancliError, PresetError

# what may change when a run is resumed: its length and cadence, nothing that shapes it
RESUMABLE = {"train.steps", "train.sample_every", "train.ckpt_every", "train.log_every", "train.keep"}


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
                   train__ckpt_every=ckpt_every, train__log_every=log_every)
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
        cfg = resolve([("checkpoint", ckpt.meta["config"]), ("--set", sets), ("flags", flags)])
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
    from gancli.data import load_dataset
    from gancli.reporting import make_reporter
    from gancli.runs import create_run_dir, write_config
    from gancli.runtime import resolve_device
    from gancli.training.loop import train as run_training

    missing = availability(cfg)
    if missing:
        raise PresetError(f"preset '{cfg.name}' cannot be trained yet: {missing}",
                          hint="`gancli zoo` marks which presets this version can train")
    device = resolve_device(device_name)
    dataset = load_dataset(cfg.data, cfg.train.seed)  # fail on bad data before making folders
    fresh = ckpt is None or ckpt.path.parent.name != "checkpoints"
    run_dir = (create_run_dir(cfg.run.out, cfg.run.name or cfg.name) if fresh
               else ckpt.path.parent.parent)
    write_config(run_dir, cfg)
    reporter = make_reporter(json_out, quiet)
    try:
        run_training(cfg, run_dir, device, reporter, resume=ckpt, data=dataset)
    except GancliError:
        if fresh and not (run_dir / "metrics.jsonl").exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing happened: leave no empty run
        raise
    finally:
        reporter.close()
