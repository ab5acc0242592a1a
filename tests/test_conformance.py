"""One suite over every preset this version can train: a new preset is tested the moment it exists.

For each: it builds, takes CPU steps on tiny data with finite losses, writes a checkpoint
that loads back bit-exactly, and the same seed gives the same sample.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gancli import checkpoints
from gancli.presets import availability
from gancli.inference import generate, load_generator
from gancli.presets import list_presets, resolve_preset

from conftest import TINY, no_traceback, tiny_overrides

ALL = [r.name for r in list_presets()]
AVAILABLE = [n for n in ALL if availability(resolve_preset(n)) is None]


def test_every_builtin_preset_is_available():
    assert set(AVAILABLE) == set(ALL)


@pytest.mark.parametrize("preset", AVAILABLE)
def test_preset_trains_saves_loads_and_samples(preset, tmp_path, cli):
    r = cli("train", preset, *TINY, *tiny_overrides(preset), "--out", str(tmp_path), "--json")
    assert r.code == 0, r.err
    events = [json.loads(line) for line in r.out.splitlines()]  # --json: nothing else on stdout
    steps = [e for e in events if e["event"] == "step"]
    assert steps and all(np.isfinite(v) for e in steps for k, v in e.items()
                         if isinstance(v, float))
    done = events[-1]
    assert done["event"] == "done" and done["step"] == 4
    run = tmp_path / f"{preset}-001"
    assert (run / "config.yaml").is_file() and (run / "metrics.jsonl").is_file()
    assert list((run / "samples").glob("step-*.png"))

    ckpt = checkpoints.load(checkpoints.resolve(run))
    assert ckpt.meta["preset"] == preset and ckpt.step == 4
    if ckpt.meta["task"] in ("translation", "multi-domain"):
        check_translator(run)
        return
    model = load_generator(run, "cpu")
    loaded = {k: v for k, v in model.G.state_dict().items()}
    prefix = "G_ema" if any(k.startswith("G_ema.") for k in ckpt.tensors) else "G"
    for k, v in loaded.items():
        assert torch.equal(v, ckpt.tensors[f"{prefix}.{k}"]), k

    la = lb = None
    if model.conditional:
        la, lb = torch.tensor([1, 0, 1]), torch.tensor([1, 1])
        same_seed = generate(model, [3, 3], labels=torch.tensor([0, 1]))
        assert not torch.allclose(same_seed[0], same_seed[1]), "the label must change the sample"
    a = generate(model, [3, 5, 8], labels=la)
    b = generate(load_generator(run, "cpu"), [8, 3], labels=lb)  # other batch-mates, other order
    # equal up to float rounding: CPU kernels block a batch of 2 and one of 3 differently
    assert torch.allclose(a[0], b[1], atol=1e-5) and torch.allclose(a[2], b[0], atol=1e-5)
    assert torch.isfinite(a).all()


def check_translator(run):
    """A translation model loads as a translator (and not as a sampler) and keeps sizes."""
    from gancli.errors import GancliError
    from gancli.inference import load_translator

    with pytest.raises(GancliError, match="translation model"):
        load_generator(run, "cpu")
    tr = load_translator(run, "cpu")
    x = torch.rand(2, tr.channels, 12, 16) * 2 - 1  # not the training size, not square
    args = {"direction": "b2a"} if tr.kind == "cycle" else {"target": len(tr.domains) - 1}
    y = tr(x, **args)
    assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() <= 1


def test_unavailable_preset_is_refused_clearly(cli, tmp_path, monkeypatch):
    """A preset naming an objective this version lacks is refused before anything is made."""
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "future.yaml").write_text("extends: dcgan\nname: future\nobjective: nosuch\n")
    monkeypatch.setenv("GANCLI_PRESETS", str(presets))
    out = tmp_path / "runs"
    r = cli("train", "future", "--out", str(out))
    assert r.code != 0 and "cannot be trained yet" in r.err and no_traceback(r.err)
    assert not out.exists() or not list(out.iterdir()), "a refused run leaves no folder behind"
