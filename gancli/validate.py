"""Checks of a checkpoint's contents before any of it is used.

A checkpoint is a file a user can copy, edit, truncate or fetch from elsewhere. Before
``gancli train --resume`` or an inference command copies one tensor out of it, the checks
here compare it with what the run's config builds: the metadata's types, every tensor the
networks, the optimisers and the random generator need, each tensor's shape and dtype,
each optimiser moment's shape against its parameter's, and the finiteness of weights and
moments. The first problem is a ``CheckpointError`` (exit 1) naming the tensor or key, what
was expected and what was found. Nothing is loaded on a refusal, so a damaged file can never
make a fused optimiser kernel read or write past the end of a moment tensor.

Only PyTorch's own optimiser constructors judge the hyper-parameter values (betas, eps, ...);
everything else is plain structure.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import torch

from gancli.errors import CheckpointError, DataError

_HINT = "the file is damaged or was edited; resume or sample from an earlier checkpoint of the run"


def _bad(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path}: {what}", hint=_HINT)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _type(v: Any) -> str:
    return "null" if v is None else type(v).__name__


# ---------------------------------------------------------------------------------------------
# metadata


def check_data_meta(data: Any, path: Path) -> None:
    """``meta["data"]``: the data spec the networks were sized for (kind, shape, classes...)."""
    if not isinstance(data, dict):
        raise _bad(path, f"metadata 'data' must be a mapping, found {_type(data)}")
    if data.get("kind") not in ("images", "pairs", "points"):
        raise _bad(path, f"metadata data.kind must be 'images', 'pairs' or 'points', found "
                         f"{data.get('kind')!r}")
    shape = data.get("shape")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 4
            or not all(_is_int(s) and 1 <= s <= 65536 for s in shape)):
        raise _bad(path, f"metadata data.shape must be a list of 1 to 4 positive sizes, found {shape!r}")
    n = data.get("num_classes", 0)
    if not _is_int(n) or n < 0:
        raise _bad(path, f"metadata data.num_classes must be an integer >= 0, found {n!r}")
    for key in ("classes", "domains"):
        names = data.get(key)
        if names is not None and (not isinstance(names, list)
                                  or not all(isinstance(s, str) for s in names)):
            raise _bad(path, f"metadata data.{key} must be a list of names, found {_type(names)}")
    if len(data.get("classes") or []) != n:  # a label indexes the names: one name per class
        raise _bad(path, f"metadata data.classes names {len(data.get('classes') or [])} classes, "
                         f"data.num_classes says {n}")
    modes = data.get("modes")
    if modes is not None and (not isinstance(modes, list) or not all(
            isinstance(m, list) and len(m) == 2 and all(_is_real(c) for c in m) for m in modes)):
        raise _bad(path, "metadata data.modes must be a list of finite (x, y) pairs")
    sigma = data.get("sigma")
    if sigma is not None and not _is_real(sigma):
        raise _bad(path, f"metadata data.sigma must be a finite number, found {sigma!r}")
    for key in ("name",):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise _bad(path, f"metadata data.{key} must be text, found {_type(data[key])}")
    if not isinstance(data.get("multi_label", False), bool):
        raise _bad(path, f"metadata data.multi_label must be true or false, found "
                         f"{data['multi_label']!r}")


def check_inference_meta(meta: dict, path: Path) -> None:
    """What ``sample``/``interpolate``/``translate``/``evaluate`` read: ``config`` and ``data``."""
    if not isinstance(meta.get("config"), dict):
        raise _bad(path, f"metadata 'config' must be a mapping, found {_type(meta.get('config'))}")
    check_data_meta(meta.get("data"), path)
    step = meta.get("step", 0)
    if not _is_int(step) or step < 0:
        raise _bad(path, f"metadata 'step' must be an integer >= 0, found {step!r}")


def check_training_meta(meta: dict, path: Path) -> None:
    """Everything ``train --resume`` reads from the metadata, by type, before it is used."""
    check_inference_meta(meta, path)
    for key in ("step", "data_pos"):
        if not _is_int(meta.get(key)) or meta[key] < 0:
            raise _bad(path, f"metadata '{key}' must be an integer >= 0, found {meta.get(key)!r}")
    elapsed = meta.get("elapsed", 0.0)
    if not _is_real(elapsed) or elapsed < 0:
        raise _bad(path, f"metadata 'elapsed' must be a finite number of seconds >= 0, found "
                         f"{elapsed!r}")
    world = meta.get("world_size", 1)
    if not _is_int(world) or world < 1:
        raise _bad(path, f"metadata 'world_size' must be an integer >= 1, found {world!r}")
    for key in ("preset", "family", "task", "gancli_version"):
        if key in meta and not isinstance(meta[key], str):
            raise _bad(path, f"metadata '{key}' must be text, found {_type(meta[key])}")
    opts = meta.get("optimizers")
    if not isinstance(opts, dict):
        raise _bad(path, f"metadata 'optimizers' must be a mapping, found {_type(opts)}")
    for name in ("opt_G", "opt_D"):
        o = opts.get(name)
        if not isinstance(o, dict) or not isinstance(o.get("param_groups"), list) or not all(
                isinstance(g, dict) for g in o["param_groups"]):
            raise _bad(path, f"metadata optimizers.{name} must hold a list of param_groups")
        scalars = o.get("scalars", {})
        if not isinstance(scalars, dict) or not all(isinstance(v, dict) for v in scalars.values()):
            raise _bad(path, f"metadata optimizers.{name}.scalars must map parameter indices to "
                             "mappings")
    scalers = meta.get("scalers")
    if scalers is not None and (not isinstance(scalers, dict)
                                or not all(isinstance(v, dict) for v in scalers.values())):
        raise _bad(path, f"metadata 'scalers' must map phases to mappings, found {_type(scalers)}")


# ---------------------------------------------------------------------------------------------
# tensors


def _describe(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def _finite(t: torch.Tensor) -> bool:
    return not t.is_floating_point() or bool(torch.isfinite(t).all())


def check_module(tensors: dict[str, torch.Tensor], prefix: str, module: torch.nn.Module,
                 path: Path) -> None:
    """Every entry of ``module.state_dict()`` is in ``tensors`` under ``prefix.`` with the same
    shape and dtype and only finite values, and nothing else is stored under ``prefix.``."""
    wanted = module.state_dict()
    p = prefix + "."
    for k, ref in wanted.items():
        t = tensors.get(p + k)
        if t is None:
            raise _bad(path, f"tensor {p}{k} is missing (the config builds {_describe(ref)})")
        if t.shape != ref.shape or t.dtype != ref.dtype:
            raise _bad(path, f"tensor {p}{k} is {_describe(t)}, the config builds {_describe(ref)}")
        if not _finite(t):
            raise _bad(path, f"tensor {p}{k} holds NaN or inf")
    extra = sorted(k for k in tensors if k.startswith(p) and k[len(p):] not in wanted)
    if extra:
        raise _bad(path, f"tensor {extra[0]} is not part of the network the config builds")


def _state_keys(opt: torch.optim.Optimizer, group: dict) -> tuple[set[str], set[str], set[str]]:
    """(keys shaped like the parameter, scalar keys, keys that must be >= 0) of one parameter's
    state for the optimisers gancli makes; (None-like: empty sets) for any other optimiser."""
    if isinstance(opt, torch.optim.Adam):
        shaped = {"exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if group.get("amsgrad") else set())
        return shaped, {"step"}, {"exp_avg_sq", "max_exp_avg_sq"}
    if isinstance(opt, torch.optim.RMSprop):
        shaped = {"square_avg"} | ({"momentum_buffer"} if group.get("momentum") else set())
        shaped |= {"grad_avg"} if group.get("centered") else set()
        return shaped, {"step"}, {"square_avg"}
    if isinstance(opt, torch.optim.SGD):
        return ({"momentum_buffer"} if group.get("momentum") else set()), set(), set()
    return set(), set(), set()


# implementation switches: how a step runs, not what it computes; the constructor check
# below leaves them out (a fused kernel needs real device parameters to accept them)
_HOW = ("foreach", "fused", "capturable", "differentiable")


def _check_group(opt: torch.optim.Optimizer, live: dict, saved: dict, where: str,
                 path: Path) -> None:
    for key, ref in live.items():
        if key == "params" or key not in saved:
            continue
        v = saved[key]
        if isinstance(ref, bool) or (ref is None and key in _HOW):
            ok = v is None or isinstance(v, bool)
        elif _is_real(ref):
            ok = _is_real(v)
        elif isinstance(ref, (tuple, list)):
            ok = isinstance(v, list) and len(v) == len(ref) and all(_is_real(x) for x in v)
        else:
            ok = v is None or isinstance(v, type(ref))
        if not ok:
            raise _bad(path, f"{where}.{key} is {v!r}, expected a value like {ref!r}")
    # the optimiser's own constructor judges the values (betas in [0, 1), eps >= 0, ...)
    accepted = inspect.signature(type(opt)).parameters
    hyper = {k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items()
             if k in live and k in accepted and k not in ("params", *_HOW)}
    try:
        type(opt)([torch.zeros(1, requires_grad=True)], **hyper)
    except (ValueError, TypeError, RuntimeError) as e:
        raise _bad(path, f"{where} is refused by {type(opt).__name__}: "
                         f"{str(e).splitlines()[0][:160]}") from None


def check_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict,
                    prefix: str, path: Path) -> None:
    """An optimiser's stored state against the live optimiser ``opt`` (built by the config):

    ``meta["param_groups"]`` has the same groups, each with the parameter indices
    ``opt.state_dict()`` gives them and hyper-parameters of the right types and values;
    every tensor ``prefix.<index>.<name>`` names a parameter that exists and a state entry
    this optimiser keeps; a parameter with any state has all of it (Adam: ``step``,
    ``exp_avg``, ``exp_avg_sq``); moments have exactly their parameter's shape, are
    floating point and finite (second moments >= 0); ``step`` is one finite number >= 0.
    """
    params = [p for g in opt.param_groups for p in g["params"]]
    owner = _check_param_groups(opt, meta["param_groups"], prefix, path)
    state = _stored_state(tensors, meta, owner, len(params), prefix, path)
    for pid, entries in sorted(state.items()):
        _check_param_state(opt, params[pid], owner[pid], entries, f"{prefix}.{pid}", path)


def _check_param_groups(opt: torch.optim.Optimizer, saved_groups: list, prefix: str,
                        path: Path) -> dict[int, dict]:
    """The stored parameter groups against the live ones; returns, for every parameter index,
    its group's hyper-parameters as ``load_optimizer`` fills them in (stored over live)."""
    live_groups = opt.state_dict()["param_groups"]
    if len(saved_groups) != len(live_groups):
        raise _bad(path, f"{prefix} has {len(saved_groups)} parameter group(s), the config builds "
                         f"{len(live_groups)}")
    owner: dict[int, dict] = {}
    for i, (live, saved) in enumerate(zip(live_groups, saved_groups)):
        where = f"{prefix}.param_groups[{i}]"
        if saved.get("params") != live["params"]:
            got = saved.get("params")
            got = f"{len(got)} parameters" if isinstance(got, list) else repr(got)
            raise _bad(path, f"{where} lists {got}, the config builds "
                             f"{len(live['params'])} parameters")
        _check_group(opt, live, saved, where, path)
        merged = {**live, **saved}  # as load_optimizer fills it in
        owner.update({pid: merged for pid in live["params"]})
    return owner


def _stored_state(tensors: dict[str, torch.Tensor], meta: dict, owner: dict[int, dict],
                  n_params: int, prefix: str, path: Path) -> dict[int, dict[str, Any]]:
    """Per parameter index, its stored state entries: tensors ``prefix.<index>.<name>`` and
    the scalars in ``meta["scalars"]``; a name that fits no parameter, a non-number scalar or
    one entry stored both ways is refused."""
    state: dict[int, dict[str, Any]] = {}
    p = prefix + "."
    for name, t in tensors.items():
        if not name.startswith(p):
            continue
        pid, _, key = name[len(p):].partition(".")
        if not pid.isdigit() or int(pid) not in owner or not key:
            raise _bad(path, f"tensor {name} names no parameter of {prefix} (it has "
                             f"{n_params})")
        state.setdefault(int(pid), {})[key] = t
    for pid, extra in meta.get("scalars", {}).items():
        if not str(pid).isdigit() or int(pid) not in owner:
            raise _bad(path, f"{prefix}.scalars names no parameter: {pid!r}")
        for key, v in extra.items():
            if not (v is None or isinstance(v, bool) or _is_real(v)):
                raise _bad(path, f"{prefix}.scalars.{pid}.{key} is {v!r}, not a number")
            if key in state.get(int(pid), {}):  # load_optimizer would let it replace the tensor
                raise _bad(path, f"{prefix}.scalars.{pid}.{key} is stored twice (also as a tensor)")
            state.setdefault(int(pid), {})[key] = v
    return state


def _check_param_state(opt: torch.optim.Optimizer, param: torch.Tensor, group: dict,
                       entries: dict[str, Any], where: str, path: Path) -> None:
    """One parameter's state entries (named ``where.<key>`` in messages): all that this
    optimiser keeps for it, nothing else; counters one finite number >= 0; moments finite,
    floating point, of the parameter's shape, second moments >= 0."""
    shaped, scalar, nonneg = _state_keys(opt, group)
    known = shaped | scalar
    for key in sorted(known - entries.keys()):
        raise _bad(path, f"tensor {where}.{key} is missing (parameter {where.rpartition('.')[2]} "
                         f"has {', '.join(sorted(entries))})")
    for key, t in sorted(entries.items()):
        name = f"{where}.{key}"
        if known and key not in known:
            raise _bad(path, f"{name} is not state that {type(opt).__name__} keeps")
        if not torch.is_tensor(t):
            if key in known:
                raise _bad(path, f"{name} must be a tensor, found {t!r}")
            continue
        if key in scalar or (not known and t.dim() == 0):
            if t.numel() != 1 or t.dtype.is_complex or t.dtype == torch.bool:
                raise _bad(path, f"tensor {name} must be one number, found {_describe(t)}")
            if not _finite(t) or float(t) < 0:
                raise _bad(path, f"tensor {name} must be finite and >= 0, found {float(t)}")
            continue
        if t.shape != param.shape or not t.is_floating_point():
            raise _bad(path, f"tensor {name} is {_describe(t)}, its parameter is "
                             f"{_describe(param.detach())}")
        if not _finite(t):
            raise _bad(path, f"tensor {name} holds NaN or inf")
        if key in nonneg and bool((t < 0).any()):
            raise _bad(path, f"tensor {name} holds negative values (a second moment is >= 0)")


def check_rng(tensors: dict[str, torch.Tensor], gen: torch.Generator, path: Path) -> None:
    """``rng.noise``: a uint8 state of exactly the length ``gen.get_state()`` has."""
    t, ref = tensors.get("rng.noise"), gen.get_state()
    if t is None:
        raise _bad(path, f"tensor rng.noise is missing (the generator state, {_describe(ref)})")
    if t.dtype != torch.uint8 or t.shape != ref.shape:
        raise _bad(path, f"tensor rng.noise is {_describe(t)}, a generator state is {_describe(ref)}")
    try:  # PyTorch's own check of the content (an mt19937 state must be valid)
        torch.Generator(device=gen.device).set_state(t)
    except RuntimeError as e:
        raise _bad(path, f"tensor rng.noise is not a valid generator state "
                         f"({str(e).splitlines()[0][:120]})") from None


def check_pools(tensors: dict[str, torch.Tensor], objective, sample_shape: tuple[int, ...] | None,
                path: Path) -> None:
    """Image history pools (``pool.images``, ``pool_a.images``...): at most the pool's size of
    finite floating samples, each of ``sample_shape`` (one image, or one 2-D point)."""
    from gancli.training.image_pool import ImagePool

    pools = {name: v for name, v in vars(objective).items() if isinstance(v, ImagePool)}
    for name, pool in pools.items():
        t = tensors.get(f"{name}.images")
        if t is None:
            continue
        where = f"tensor {name}.images"
        if not t.is_floating_point() or t.dim() < 2 or not 1 <= len(t) <= max(pool.size, 0):
            raise _bad(path, f"{where} is {_describe(t)}, expected at most {pool.size} "
                             "floating-point samples")
        if sample_shape is not None and tuple(t.shape[1:]) != tuple(sample_shape):
            raise _bad(path, f"{where} holds samples of {tuple(t.shape[1:])}, the networks make "
                             f"{tuple(sample_shape)}")
        if not _finite(t):
            raise _bad(path, f"{where} holds NaN or inf")


def check_scalers(state: dict | None, amp, path: Path) -> None:
    """fp16 gradient scalers: each stored phase has every entry of a scaler's state, finite
    numbers, the scale > 0."""
    if not state or amp is None:
        return
    for phase, scaler in amp.scalers.items():
        saved = state.get(phase)
        if saved is None:
            continue
        for key in scaler.state_dict():
            v = saved.get(key)
            if not _is_real(v) or v < 0 or (key == "scale" and v == 0):
                want = "> 0" if key == "scale" else ">= 0"
                raise _bad(path, f"metadata scalers.{phase}.{key} is {v!r}, expected a finite "
                                 f"number {want}")


def check_training_state(path: Path, meta: dict, tensors: dict[str, torch.Tensor], G, D, G_ema,
                         opt_G, opt_D, gen, objective, amp=None,
                         sample_shape: tuple[int, ...] | None = None) -> None:
    """Everything ``restore`` copies, checked before it copies anything."""
    check_training_meta(meta, path)
    check_scalers(meta.get("scalers"), amp, path)
    check_module(tensors, "G", G, path)
    check_module(tensors, "D", D, path)
    if G_ema is not None:
        check_module(tensors, "G_ema", G_ema, path)
    check_optimizer(opt_G, tensors, meta["optimizers"]["opt_G"], "opt_G", path)
    check_optimizer(opt_D, tensors, meta["optimizers"]["opt_D"], "opt_D", path)
    check_rng(tensors, gen, path)
    check_pools(tensors, objective, sample_shape, path)


# ---------------------------------------------------------------------------------------------
# the data a run is resumed on


def data_channels(data_meta: dict) -> int | None:
    """The channel count of a run's images from its stored data spec (None for points)."""
    shape = data_meta.get("shape") or []
    if data_meta.get("kind") not in ("images", "pairs") or len(shape) not in (3, 4):
        return None
    return int(shape[-3])


def check_resume_data(data_meta: dict, dataset, path: Path) -> None:
    """The data a run resumes on has the stored kind, sample shape and class count."""
    was = (data_meta["kind"], tuple(data_meta["shape"]), int(data_meta.get("num_classes", 0)))
    now = (dataset.kind, tuple(dataset.shape), int(dataset.num_classes))
    labels = ("kind", "sample shape", "class count")
    for label, a, b in zip(labels, was, now):
        if a != b:
            raise DataError(f"the data changed since {path.name}: its {label} was {a}, it is now {b}",
                            hint="resume on the data the run started with, or start a new run")
