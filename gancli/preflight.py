"""Checks made before a run starts, so that what can be foreseen fails in a second, not in an hour.

* sizes: absurd ``--set`` values (``train.batch_size=10**12``, ``model.g_width=10**9``,
  ``data.size=10**12``) are refused by comparing an estimate of the memory they need with
  the machine's (RAM on the CPU, the GPU's memory on CUDA) *before* anything is allocated.
  The networks are built on PyTorch's ``meta`` device, which records shapes and allocates
  nothing, so the parameter count is exact for every family.
* disk: the output folder must be writable (a real probe file, which also catches read-only
  mounts and root-owned folders) and hold at least one more checkpoint than it has now.

What cannot be foreseen (a disk that fills up during the run) is handled where it happens:
checkpoint writes are atomic, so a failed write leaves the previous checkpoint and ``latest``
untouched (see ``gancli.fileio`` and ``docs/reliability.md``).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gancli.config import Config
from gancli.errors import ConfigError, GancliError

# Room left for everything the estimate does not count (activations of deep nets, the
# allocator's slack, the OS): a run may plan to use at most this share of the memory.
MEMORY_SHARE = 0.8
# Extra free space wanted beside a checkpoint: sample grids, metrics.jsonl, config.yaml.
DISK_SLACK = 16 << 20
# Optimiser state per parameter, in parameter-sized slots.
_OPT_SLOTS = {"adam": 2, "rmsprop": 1, "sgd": 1}


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB"


def memory_bytes(device: str = "cpu") -> int | None:
    """Total memory of the device (RAM for the CPU); None when it cannot be told."""
    if device.startswith("cuda"):
        try:
            import torch

            return int(torch.cuda.mem_get_info(torch.device(device))[1])
        except Exception:  # noqa: BLE001 - no answer means no check, never a failure
            return None
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not Linux / macOS
        return None


def _data_bytes(cfg: Config) -> tuple[int, str] | None:
    """Bytes that generated data (toy points, shapes, shapes-colours) will take in memory, and
    the key that sets it. Image folders and stores are read per batch and not counted here."""
    source, size = cfg.data.source.strip(), cfg.data.size
    side = round(cfg.data.resolution * cfg.data.crop_scale)
    if source.startswith("toy:"):
        return (size * 2 * 4, "data.size") if size else None
    if source == "shapes":  # the uint8 images and their uint8 masks while drawing
        return (size or 10_000) * side ** 2 * ((cfg.data.channels or 3) + 1), "data.size"
    if source == "domains:shapes-colours":  # always RGB
        return (size or 8000) * side ** 2 * 4, "data.size"
    return None


def check_data_size(cfg: Config, device: str = "cpu") -> None:
    """Before loading data: refuse generated data that cannot fit in memory (more than
    ``MEMORY_SHARE`` of the RAM). Image folders (also translation and attribute folders) and
    dataset stores are read from disk per batch whatever their size; the disk space of the
    store a folder is prepared into is checked by ``gancli.data.prepare.check_disk``, before
    anything is decoded.

    Raises:
        ConfigError (exit 2): the generated data would not fit.
    """
    need = _data_bytes(cfg)
    have = memory_bytes("cpu")
    if need and have and need[0] > MEMORY_SHARE * have:
        key = need[1]
        if not cfg.data.size:  # the built-in's default count at a large resolution
            side = round(cfg.data.resolution * cfg.data.crop_scale)
            raise ConfigError(f"{cfg.data.source.strip()} at {side} px needs about {_gb(need[0])} of "
                              f"memory for the data; this machine has {_gb(have)}",
                              hint="lower data.resolution, or data.size (samples drawn)")
        raise ConfigError(f"{key}={cfg.data.size} needs about {_gb(need[0])} of memory for the data; "
                          f"this machine has {_gb(have)}", hint=f"lower {key}")


@dataclass
class Estimate:
    params_G: int
    params_D: int
    checkpoint_bytes: int
    train_bytes: int
    batch_bytes: int


def estimate(cfg: Config, shape: tuple[int, ...], kind: str, num_classes: int) -> Estimate | None:
    """Parameter counts and byte estimates, from networks built on the ``meta`` device.

    Returns None when the family cannot be built on ``meta`` (then no size check is made).
    Raises ConfigError when the shapes alone overflow (a width of 10**9 in a conv net).
    """
    import torch

    from gancli.models import DataSpec, build_nets
    from gancli.registry import OBJECTIVES

    spec = DataSpec(kind, shape, num_classes)
    conditioning = OBJECTIVES.get(cfg.objective).conditioning
    try:
        with torch.device("meta"):
            nets = build_nets(cfg.model, spec, conditioning)
    except GancliError:
        raise
    except RuntimeError as e:
        if "overflow" in str(e):  # "Storage size calculation overflowed with sizes=[...]"
            raise _too_big(cfg, math.inf, memory_bytes("cpu") or 0) from None
        return None
    except Exception:  # noqa: BLE001 - a family that cannot live on meta: skip the check
        return None
    n_g = sum(p.numel() for p in nets.G.parameters())
    n_d = sum(p.numel() for p in nets.D.parameters())
    n_buf = sum(b.numel() for net in (nets.G, nets.D) for b in net.buffers())
    slots = _OPT_SLOTS.get(cfg.optim.name, 2)
    ema = 1 if cfg.train.ema else 0
    ckpt = 4 * (n_g * (1 + slots + ema) + n_d * (1 + slots) + n_buf)
    # weights + gradients + optimiser state (+ EMA copy) for training
    train = 4 * (n_g * (2 + slots + ema) + n_d * (2 + slots) + n_buf)
    # one real and one fake batch, their gradients and the first layer's activations: a floor
    sample = math.prod(shape)
    batch = 4 * cfg.train.batch_size * (4 * sample + cfg.model.z_dim)
    return Estimate(n_g, n_d, ckpt, train, batch)


def _too_big(cfg: Config, need: float, have: int) -> ConfigError:
    m = cfg.model
    sizes = f"model.g_width={m.g_width}, model.d_width={m.d_width}, model.z_dim={m.z_dim}"
    amount = "more memory than can be addressed" if math.isinf(need) else f"about {_gb(need)} of memory"
    return ConfigError(f"the networks would need {amount} ({sizes}); "
                       f"this machine has {_gb(have)}",
                       hint="lower the widths, for example --set model.g_width=64 --set model.d_width=64")


def check_sizes(cfg: Config, est: Estimate | None, device: str = "cpu") -> None:
    """Refuse networks or batches that cannot fit in the device's memory."""
    have = memory_bytes(device)
    if est is None or not have:
        return
    budget = MEMORY_SHARE * have
    if est.train_bytes > budget:
        raise _too_big(cfg, est.train_bytes, have)
    if est.batch_bytes > budget:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} needs about {_gb(est.batch_bytes)} "
                          f"of memory per batch; this machine has {_gb(have)}",
                          hint="lower train.batch_size (64 is a common choice)")
    if est.train_bytes + est.batch_bytes > budget:
        raise ConfigError(f"the networks and one batch need about "
                          f"{_gb(est.train_bytes + est.batch_bytes)} of memory; this machine has "
                          f"{_gb(have)}", hint="lower train.batch_size or the model widths")


def _existing_parent(path: Path) -> Path:
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(folder: Path) -> None:
    """The folder (or the nearest existing parent it would be created in) takes a new file."""
    target = _existing_parent(folder)
    if not target.is_dir():
        raise GancliError(f"cannot write to {folder}: {target} is a file, not a folder",
                          hint="choose another --out")
    try:
        with tempfile.TemporaryFile(dir=target, prefix=".gancli-probe-"):
            pass
    except OSError as e:
        raise GancliError(f"output folder {target} is not writable: {e.strerror or e}",
                          hint="choose another --out, or fix the folder's permissions") from None


def check_disk(folder: Path, checkpoint_bytes: int) -> None:
    """At least one more checkpoint (and a little slack) must fit on the output's disk."""
    target = _existing_parent(folder)
    try:
        free = shutil.disk_usage(target).free
    except OSError:
        return
    need = checkpoint_bytes + DISK_SLACK
    if free < need:
        raise GancliError(f"not enough free space in {target}: {_size(free)} free, a checkpoint "
                          f"needs about {_size(checkpoint_bytes)} (plus {_size(DISK_SLACK)} for samples "
                          "and logs)",
                          hint="free some space, or choose another --out")


def check_run(cfg: Config, data, device, folder: Path) -> None:
    """Everything foreseeable before a run's folder is made: sizes, a writable folder, space."""
    est = estimate(cfg, tuple(data.shape), data.kind, data.num_classes)
    check_sizes(cfg, est, str(device))
    check_writable(folder)
    if est is not None:
        check_disk(folder, est.checkpoint_bytes)


def check_checkpoint_shapes(model_cfg, spec, conditioning, tensors: dict, prefix: str,
                            path: Path) -> None:
    """Before building a generator from a checkpoint's stored config, check on the ``meta``
    device that its shapes are the ones stored in the file: a tampered config (a width of
    10**9) is then a one-line error instead of a huge allocation."""
    import torch

    from gancli.errors import CheckpointError
    from gancli.models import build_nets

    try:
        with torch.device("meta"):
            G = build_nets(model_cfg, spec, conditioning).G
    except GancliError:
        raise
    except RuntimeError as e:
        if "overflow" not in str(e):
            return
        raise CheckpointError(f"checkpoint {path} does not match its own config (its sizes overflow)",
                              hint="the file may be tampered with") from None
    except Exception:  # noqa: BLE001 - a family that cannot live on meta: no check
        return
    from gancli.checkpoints import section

    stored = {k: tuple(v.shape) for k, v in section(tensors, prefix).items()}
    wanted = {k: tuple(v.shape) for k, v in G.state_dict().items()}
    bad = sorted(k for k in wanted if k not in stored or stored[k] != wanted[k])
    if bad:
        raise CheckpointError(f"checkpoint {path} does not match its own config ({prefix}.{bad[0]}: "
                              f"config wants {wanted[bad[0]]}, file holds {stored.get(bad[0])})",
                              hint="the file may be tampered with")
