"""Checkpoints: one safetensors file per save, never pickle.

A checkpoint holds tensors under prefixes (``G.``, ``G_ema.``, ``D.``, ``opt_G.``,
``opt_D.``, ``rng.``, ``pool.``) and string metadata: ``gancli_format``, the preset,
the family, the step, and the full resolved config as JSON. Inference needs only
``G``/``G_ema`` and the config, so ``sample``/``interpolate`` need nothing but the file.

Writes go to a temporary file in the same folder, are fsync'ed, then renamed over the
target: a kill at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gancli.config import upgrade_stored
from gancli.errors import CheckpointError
from gancli.fileio import atomic_write_bytes, clean_temporary  # noqa: F401  (re-exported)

# 2: the config keys that one objective or toolbox reads live in its own section
# (gancli.config.MOVED_KEYS); format 1 kept them in the shared ones
FORMAT = 2
SUFFIX = ".safetensors"
LATEST = "latest"
_STEP_FILE = re.compile(r"^step-(\d+)\.safetensors$")


@dataclass
class Checkpoint:
    path: Path
    meta: dict[str, Any]
    tensors: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    def section(self, prefix: str) -> dict[str, Any]:
        """Tensors under ``prefix.`` with the prefix removed."""
        return section(self.tensors, prefix)


def section(tensors: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries named ``prefix.<rest>``, as ``{rest: value}`` (``prefix`` may itself be
    dotted: ``rank1``, ``opt_G``, ``pool_a``)."""
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


# -- networks and optimisers as flat named tensors -------------------------------------------


def module_tensors(prefix: str, module) -> dict[str, Any]:
    """A module's state dict under ``prefix.`` (``G.net.0.weight``)."""
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(module, tensors: dict[str, Any], prefix: str) -> None:
    """Load what ``module_tensors(prefix, ...)`` saved (strict: every key must match)."""
    module.load_state_dict(section(tensors, prefix))


def optimizer_state(prefix: str, opt) -> tuple[dict[str, Any], dict]:
    """Split an optimiser's state dict into tensors (``prefix.<param id>.<key>``) and a
    JSON-able remainder (param groups, scalar state)."""
    import torch

    sd = opt.state_dict()
    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt, tensors: dict[str, Any], meta: dict, prefix: str) -> None:
    """Load what ``optimizer_state`` split; a setting the file lacks keeps the config's value."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in section(tensors, prefix).items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for pid, extra in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(extra)
    groups = [dict(g) for g in meta["param_groups"]]
    for g, live in zip(groups, opt.param_groups):
        if isinstance(g.get("betas"), list):  # JSON turned tuples into lists
            g["betas"] = tuple(g["betas"])
        for key, value in live.items():
            if key != "params":
                g.setdefault(key, value)
    opt.load_state_dict({"state": state, "param_groups": groups})


def save(path: Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    from safetensors.torch import save as st_save

    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {"gancli_format": str(FORMAT)}
    header.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    try:
        atomic_write_bytes(path, st_save(flat, metadata=header))
    except OSError as e:  # disk full, quota, read-only: the temporary file is already removed
        raise _write_error(path, e) from None


def _write_error(path: Path, e: OSError) -> CheckpointError:
    return CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e}",
                           hint="nothing was overwritten: the earlier checkpoints and `latest` are "
                                "intact; free some space, then continue with gancli train --resume "
                                f"{Path(path).parent.parent}")


def _decode_meta(raw: dict[str, str] | None, path: Path) -> dict[str, Any]:
    if not raw or "gancli_format" not in raw:
        raise CheckpointError(f"{path} is a safetensors file but not a gancli checkpoint",
                              hint="pass a file written by `gancli train` (runs/<name>/checkpoints)")
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except json.JSONDecodeError:
            meta[k] = v
    fmt = meta["gancli_format"]
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise CheckpointError(f"{path}: checkpoint format {fmt!r} is not a version number",
                              hint="the file is damaged or was edited; use an earlier checkpoint")
    if fmt > FORMAT:
        raise CheckpointError(f"{path} was written by a newer gancli (checkpoint format {fmt}; "
                              f"this one reads up to {FORMAT})", hint="upgrade: pip install -U gancli")
    for version in range(fmt, FORMAT):
        MIGRATIONS[version](meta)
    return meta


def _migrate_1_to_2(meta: dict[str, Any]) -> None:
    """Format 1 -> 2: the stored config's objective- and toolbox-specific keys move to their
    owners' sections (``loss.l1_weight`` -> ``pix2pix.l1_weight``; ``upgrade_stored``)."""
    if "config" in meta:
        meta["config"] = upgrade_stored(meta["config"])


# format N -> N + 1, applied in turn to the metadata of an older checkpoint when it is read
MIGRATIONS = {1: _migrate_1_to_2}


def load(path: Path, tensors: bool = True, device: str = "cpu") -> Checkpoint:
    """Read a checkpoint; anything unreadable is a CheckpointError, never a traceback."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}", hint="pass a run folder or a "
                              ".safetensors file written by `gancli train`")
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = _decode_meta(f.metadata(), path)
            data = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except CheckpointError:
        raise
    except Exception as e:  # safetensors raises its own error types for corrupt headers/data
        raise CheckpointError(f"cannot read checkpoint {path}: {str(e).splitlines()[0][:200]}",
                              hint="the file is truncated or not a safetensors file; use an "
                              "earlier checkpoint from the same folder") from None
    return Checkpoint(path, meta, data)


def step_path(ckpt_dir: Path, step: int) -> Path:
    return ckpt_dir / f"step-{step:07d}{SUFFIX}"


def list_steps(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file in the folder, newest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found, reverse=True)


def mark_latest(ckpt_dir: Path, path: Path) -> None:
    try:
        atomic_write_bytes(ckpt_dir / LATEST, (path.name + "\n").encode())
    except OSError as e:
        raise _write_error(ckpt_dir / LATEST, e) from None


def latest(ckpt_dir: Path) -> Path | None:
    """The newest readable checkpoint: the one ``latest`` names, else the highest step that loads."""
    pointer = ckpt_dir / LATEST
    candidates: list[Path] = []
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8", errors="replace").strip()
        if _STEP_FILE.match(name):  # a plain file name in this folder, never a path elsewhere
            candidates.append(ckpt_dir / name)
    candidates += [p for _, p in list_steps(ckpt_dir)]
    skipped: dict[Path, str] = {}
    for path in candidates:
        try:
            load(path, tensors=False)
        except CheckpointError as e:
            skipped.setdefault(path, str(e))
            continue
        if skipped:  # say so: the user asked for the run, and gets an older step of it
            names = ", ".join(f"{q.name} ({why.split(': ')[-1][:80]})" for q, why in skipped.items())
            sys.stderr.write(f"warning: skipped unreadable checkpoint(s) {names}; using {path.name}\n")
        return path
    return None


def resolve(spec: str | Path) -> Path:
    """A checkpoint file, a run folder or a run's checkpoints folder -> a checkpoint path."""
    p = Path(spec).expanduser()
    if p.is_file():
        return p
    if not p.exists():
        raise CheckpointError(f"no such run or checkpoint: {p}",
                              hint="pass a run folder such as runs/dcgan-001, or a .safetensors file")
    for folder in (p / "checkpoints", p):
        found = latest(folder)
        if found:
            return found
    raise CheckpointError(f"no readable checkpoint in {p}",
                          hint="train first (gancli train PRESET), or pass a .safetensors file")


def prune(ckpt_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (never the one ``latest`` names)."""
    pointer = ckpt_dir / LATEST
    current = pointer.read_text(encoding="utf-8", errors="replace").strip() if pointer.is_file() else None
    for _, path in list_steps(ckpt_dir)[keep:]:
        if path.name != current:
            path.unlink(missing_ok=True)
