"""Fuzzing damaged checkpoints: every mutation of a real checkpoint resumes correctly (finite
weights) or is refused with one line and exit 1/2; never an internal error, never a NaN read
from memory past the end of a tensor, never an empty run folder left behind."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gancli import checkpoints
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train

from conftest import no_traceback
from test_resume import tiny_cfg


@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory) -> checkpoints.Checkpoint:
    """A real 2-step DCGAN checkpoint with every kind of state: BN buffers, EMA, Adam moments,
    the image pool and the noise generator."""
    cfg = tiny_cfg("dcgan", 2, ["objective=unconditional", "model.z_clusters=0",  # a pool
                                "train.ema=0.9", "train.pool_size=4"])
    run = create_run_dir(tmp_path_factory.mktemp("good"), "good")
    write_config(run, cfg)
    train(cfg, run, torch.device("cpu"), Reporter())
    return Good(checkpoints.load(checkpoints.resolve(run)))


class Good(checkpoints.Checkpoint):
    """The fixture's checkpoint, with a short repr for hypothesis' failure reports."""

    def __init__(self, ckpt: checkpoints.Checkpoint):
        super().__init__(ckpt.path, ckpt.meta, ckpt.tensors)

    def __repr__(self) -> str:
        return f"<checkpoint {self.path.name}: {len(self.tensors)} tensors>"


ODD_VALUES = [None, "x", "", -1, 0, 1.5, 10**12, -(10**12), [], [1], {}, {"a": 1}, True,
              float("nan"), float("inf")]
META_PATHS = ["step", "data_pos", "elapsed", "config", "data", "optimizers", "world_size",
              "scalers", "preset", "gancli_format", "data.kind", "data.shape", "data.num_classes",
              "data.classes", "data.modes", "data.sigma", "config.model", "config.model.g_width",
              "config.data.channels", "optimizers.opt_G", "optimizers.opt_D.param_groups",
              "optimizers.opt_G.param_groups.0", "optimizers.opt_G.param_groups.0.betas",
              "optimizers.opt_G.param_groups.0.lr", "optimizers.opt_G.param_groups.0.eps",
              "optimizers.opt_D.param_groups.0.params", "optimizers.opt_G.param_groups.0.fused",
              "optimizers.opt_D.param_groups.0.amsgrad", "optimizers.opt_G.scalars",
              "optimizers.opt_D.scalars.0", "optimizers.opt_G.scalars.0.exp_avg",
              "optimizers.opt_D.param_groups.0.betas.1"]


def _set(meta: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = meta
    for p in parents:
        try:
            node = node.setdefault(p, {}) if isinstance(node, dict) else node[int(p)]
        except (IndexError, TypeError, ValueError):
            return
    if isinstance(node, list):
        if int(leaf) < len(node):
            node[int(leaf)] = value
    elif isinstance(node, dict):
        node[leaf] = value


def _delete(meta: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node = meta
    for p in parents:
        try:
            node = node[int(p) if isinstance(node, list) else p]
        except (KeyError, IndexError, TypeError, ValueError):
            return
    if isinstance(node, dict):
        node.pop(leaf, None)


def _resized(t: torch.Tensor, how: int) -> torch.Tensor:
    flat = t.reshape(-1)
    if how == 0:  # one element more
        return torch.cat([flat, flat[:1]]) if flat.numel() else torch.zeros(1, dtype=t.dtype)
    if how == 1:  # one element less
        return flat[:-1].clone()
    if how == 2:  # twice as big along the first axis
        return torch.cat([t, t]) if t.dim() else flat.repeat(2)
    if how == 3:  # the same elements, another shape
        return flat.clone()
    return t[:1].clone() if t.dim() else t.reshape(1, 1)  # the first row only


mutation = st.one_of(
    st.tuples(st.just("meta"), st.sampled_from(META_PATHS), st.sampled_from(ODD_VALUES)),
    st.tuples(st.just("meta_del"), st.sampled_from(META_PATHS), st.none()),
    st.tuples(st.just("drop"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("scramble"), st.integers(0, 10**6), st.integers(0, 2**31 - 1)),
    st.tuples(st.just("resize"), st.integers(0, 10**6), st.integers(0, 4)),
    st.tuples(st.just("resize_moment"), st.integers(0, 10**6), st.integers(0, 4)),
    st.tuples(st.just("dtype"), st.integers(0, 10**6),
              st.sampled_from([torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool])),
    st.tuples(st.just("nonfinite"), st.integers(0, 10**6),
              st.sampled_from([float("nan"), float("inf"), -float("inf")])),
    st.tuples(st.just("negate_moment"), st.integers(0, 10**6), st.none()),
)


def mutate(ckpt: checkpoints.Checkpoint, changes) -> tuple[dict, dict]:
    tensors = {k: v.clone() for k, v in ckpt.tensors.items()}
    meta = copy.deepcopy(ckpt.meta)
    for kind, a, b in changes:
        names = sorted(tensors)
        if kind == "meta":
            _set(meta, a, b)
            continue
        if kind == "meta_del":
            _delete(meta, a)
            continue
        if kind in ("resize_moment", "negate_moment"):
            names = [k for k in names if k.startswith("opt_")] or names
        if not names:
            continue
        name = names[a % len(names)]
        t = tensors[name]
        if kind == "drop":
            del tensors[name]
        elif kind in ("resize", "resize_moment"):
            tensors[name] = _resized(t, b)
        elif kind == "scramble":  # random content of the same shape and dtype (rng.noise too)
            g = torch.Generator().manual_seed(b)
            if t.dtype == torch.uint8:
                tensors[name] = torch.randint(0, 256, t.shape, generator=g, dtype=torch.uint8)
            elif t.is_floating_point():
                tensors[name] = torch.randn(t.shape, generator=g).to(t.dtype)
        elif kind == "dtype":
            tensors[name] = t.to(b)
        elif kind == "nonfinite" and t.is_floating_point() and t.numel():
            t.view(-1)[a % t.numel()] = b
        elif kind == "negate_moment" and t.is_floating_point():
            tensors[name] = -t - 1
    return tensors, meta


def finite_run(run: Path) -> bool:
    final = checkpoints.load(checkpoints.resolve(run)).tensors
    return all(bool(torch.isfinite(v).all()) for v in final.values() if v.is_floating_point())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(mutation, min_size=1, max_size=2))
def test_a_damaged_checkpoint_resumes_correctly_or_is_refused_in_one_line(
        good_ckpt, cli, tmp_path_factory, changes):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "step-0000002.safetensors"
    tensors, meta = mutate(good_ckpt, changes)
    checkpoints.save(path, tensors, meta)  # a mutated meta["gancli_format"] replaces save()'s
    out = folder / "runs"
    r = cli("train", "--resume", str(path), "--steps", "3", "--out", str(out), "--quiet")
    event(f"exit {r.code}")  # pytest --hypothesis-show-statistics: how the cases ended
    assert "internal error" not in r.err, (changes, r.err[-800:])
    assert no_traceback(r.err), (changes, r.err[-800:])
    if r.code == 0:
        made = list(out.iterdir()) if out.exists() else []
        if not made:  # a stored step at or past --steps: nothing to train, and no folder made
            assert "nothing to do" in r.err, (changes, r.err[-500:])
        else:
            (run,) = made
            assert finite_run(run), (changes, "non-finite weights after a resume that succeeded")
    else:
        assert r.code in (1, 2), (changes, r.code, r.err[-500:])
        lines = r.err.strip().splitlines()
        assert lines[0].startswith("error: ") and len(lines) <= 2, (changes, r.err[-800:])
        assert not out.exists() or not any(out.iterdir()), (changes, "a failed resume left a run")


def test_the_unchanged_checkpoint_resumes(good_ckpt, cli, tmp_path):
    """The fuzz baseline: with no mutation the copy resumes and trains a step."""
    tensors, meta = mutate(good_ckpt, [])
    path = tmp_path / "step-0000002.safetensors"
    checkpoints.save(path, tensors, meta)
    r = cli("train", "--resume", str(path), "--steps", "3", "--out", str(tmp_path / "runs"),
            "--quiet")
    assert r.code == 0, r.err
    (run,) = list((tmp_path / "runs").iterdir())
    assert checkpoints.load(checkpoints.resolve(run)).step == 3 and finite_run(run)
