"""``gancli export``: ONNX and TorchScript files that reproduce `gancli sample` / `translate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from gancli import load_config
from gancli.inference import generate, load_generator, load_translator
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.sampling import latents_for_seeds
from gancli.training.loop import train

from conftest import no_traceback, tiny_overrides

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # our run_file loads TorchScript


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny trained run per preset (dcgan with an EMA generator)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    # progan: stopped at the start of its first fade-in (stage 1, alpha 0): both paths traced
    for preset, extra in (("dcgan", ["train.ema=0.9"]), ("cgan", []), ("cyclegan", []),
                          ("progan", ["progressive.phase_images=8"]), ("biggan", []),
                          ("stylegan2", [])):
        sets = [s for s in tiny_overrides(preset) if s != "--set"] + extra + [
            "train.steps=3", "train.batch_size=4", "train.log_every=3", "train.sample_every=0",
            "train.ckpt_every=0"]
        cfg = load_config(preset, sets)
        run = create_run_dir(root, preset)
        write_config(run, cfg)
        train(cfg, run, torch.device("cpu"), Reporter())
        out[preset] = run
    return out


def run_file(path: Path, fmt: str, *inputs: torch.Tensor) -> torch.Tensor:
    """Run an exported file the way a user without gancli would."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return torch.from_numpy(session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})[0])
    return torch.jit.load(str(path))(*inputs)


@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
# biggan: a batch norm without affine parameters (its conditional BN), which the ONNX
# exporter cannot size under a dynamic batch unless export gives it unit ones
@pytest.mark.parametrize("preset", ["dcgan", "cgan", "cyclegan", "progan", "biggan", "stylegan2"])
def test_exported_file_matches_pytorch(cli, runs, tmp_path, preset, fmt, suffix):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    out = tmp_path / f"G{suffix}"
    r = cli("export", str(runs[preset]), "--format", fmt, "--out", str(out), "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["bytes"] == out.stat().st_size > 0
    assert 0 <= report["max_abs_diff"] <= 1e-4
    seeds = [11, 12, 13]  # not the seeds export checked, and a third batch size
    if preset == "cyclegan":
        tr = load_translator(runs[preset], "cpu")
        x = torch.rand(3, tr.channels, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
        expected, got = tr(x, direction="a2b"), run_file(out, fmt, x)
        assert report["inputs"] == ["image"] and report["dynamic"] == ["batch", "height", "width"]
        x12 = torch.rand(2, tr.channels, 12, 16) * 2 - 1  # another size divisible by 4
        assert (run_file(out, fmt, x12) - tr(x12)).abs().max() <= 1e-4
    else:
        model = load_generator(runs[preset], "cpu")
        z = latents_for_seeds(seeds, model.cfg.model.z_dim)
        if preset in ("cgan", "biggan"):
            labels = torch.tensor([3, 0, 9])
            expected = generate(model, seeds, labels=labels).clamp(-1, 1)
            got = run_file(out, fmt, z, labels)
        else:
            assert report["weights"] == "G_ema"  # EMA by default, as `gancli sample` uses
            # clamped: stylegan2's and progan's G end without a tanh; the file's images do not
            expected, got = generate(model, seeds).clamp(-1, 1), run_file(out, fmt, z)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-4
    assert expected.abs().max() <= 1.0  # images in [-1, 1]


def test_no_ema_exports_the_raw_generator(cli, runs, tmp_path):
    out = tmp_path / "raw.pt"
    r = cli("export", str(runs["dcgan"]), "--no-ema", "--out", str(out), "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["weights"] == "G"
    raw, ema = (load_generator(runs["dcgan"], "cpu", ema=e) for e in (False, True))
    z = latents_for_seeds([0, 1], raw.cfg.model.z_dim)
    got = run_file(out, "torchscript", z)
    assert (got - generate(raw, [0, 1])).abs().max() <= 1e-4
    assert (got - generate(ema, [0, 1])).abs().max() > 1e-3


def test_a_mismatch_writes_nothing_and_keeps_the_old_file(cli, runs, tmp_path, monkeypatch):
    import gancli.export

    monkeypatch.setattr(gancli.export, "TOLERANCE", -1.0)  # every difference is too large
    out = tmp_path / "G.pt"
    out.write_bytes(b"an earlier export")
    r = cli("export", str(runs["dcgan"]), "--out", str(out))
    assert r.code == 1 and "differs from the PyTorch generator" in r.err and no_traceback(r.err)
    assert out.read_bytes() == b"an earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["G.pt"]  # no temporary file left


def test_onnx_without_the_extra_is_one_line(cli, runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    r = cli("export", str(runs["dcgan"]), "--out", str(tmp_path / "G.onnx"))
    assert r.code == 1 and no_traceback(r.err)
    assert "needs the Python package 'onnxruntime'" in r.err
    assert 'pip install "gancli[export]"' in r.err and len(r.err.strip().splitlines()) == 2
    assert not any(tmp_path.iterdir())
    # TorchScript needs no extra
    assert cli("export", str(runs["dcgan"]), "--out", str(tmp_path / "G.pt")).code == 0


@pytest.mark.parametrize("args, words", [
    (["--format", "onnx", "--out", "G.pt"], "does not match the file name"),
    (["--out", "G.bin"], "cannot tell the format"),
    (["--format", "tflite", "--out", "G.tflite"], "unknown format 'tflite'"),
    (["--direction", "b2a", "--out", "G.pt"], "--direction is for CycleGAN"),
])
def test_bad_arguments_are_one_line(cli, runs, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    r = cli("export", str(runs["dcgan"]), *args)
    assert r.code == 2 and words in r.err and no_traceback(r.err)  # a usage error (docs/cli.md)
    assert not any(tmp_path.iterdir())


def test_missing_run_is_one_line(cli, tmp_path):
    r = cli("export", str(tmp_path / "nope"), "--out", str(tmp_path / "G.pt"))
    assert r.code == 1 and "no such run or checkpoint" in r.err and no_traceback(r.err)
