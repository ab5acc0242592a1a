"""``gancli evaluate`` end to end on tiny trained runs, offline (digits features, toy modes, TSTR)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, no_traceback, tiny_overrides


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs: dcgan (digits images), wgan-gp-toy (2-D points), cgan (conditional digits)."""
    from gancli.cli import main

    out = tmp_path_factory.mktemp("runs")
    for preset in ("dcgan", "wgan-gp-toy", "cgan"):
        try:
            main(["train", preset, *TINY, *tiny_overrides(preset), "--out", str(out), "--quiet"])
        except SystemExit as e:
            assert e.code in (0, None)
    return {"images": out / "dcgan-001", "points": out / "wgan-gp-toy-001", "conditional": out / "cgan-001"}


def _json(result) -> dict:
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_digits_features_end_to_end_and_cache_hit(cli, runs):
    args = ["evaluate", "fid", "kid", "is", "prdc", "--features", "digits", "--fake", str(runs["images"]),
            "--real", "digits", "--n", "200", "--json"]
    first = _json(cli(*args))
    v = first["values"]
    for key in ("fd_digits", "kd_digits", "kd_digits_std", "cs_digits", "cs_digits_std", "precision",
                "recall", "density", "coverage"):
        assert key in v and v[key]["std"] is None and len(v[key]["per_seed"]) == 1
    assert "fid" not in v  # digits features never pass for FID
    assert first["samples"] == {"fake": 200, "real": 1797}
    assert first["features"]["name"] == "digits" and len(first["features"]["sha256"]) == 64
    assert first["real"]["cache"] == "miss" and Path(first["real"]["cache_file"]).is_file()
    assert first["settings"]["kid_subset_size"] == 200
    assert any("KID subsets hold 200" in n for n in first["notes"])
    assert v["fd_digits"]["mean"] > 0 and 1 <= v["cs_digits"]["mean"] <= 10
    second = _json(cli(*args))
    assert second["real"]["cache"] == "hit"
    assert second["values"] == first["values"]  # same seeds, same numbers, real side from the cache


def test_npz_samples_and_the_run_give_the_same_numbers(cli, runs, tmp_path):
    npz = tmp_path / "s.npz"
    assert cli("sample", str(runs["images"]), "--n", "120", "--out", str(npz), "--quiet").code == 0
    common = ["evaluate", "fid", "is", "--features", "digits", "--real", "digits", "--json"]
    from_run = _json(cli(*common, "--fake", str(runs["images"]), "--n", "120"))
    from_npz = _json(cli(*common, "--fake", str(npz)))
    assert from_npz["samples"]["fake"] == 120
    assert from_npz["values"]["fd_digits"]["mean"] == pytest.approx(from_run["values"]["fd_digits"]["mean"],
                                                                    rel=1e-12)
    assert from_npz["values"]["cs_digits"] == from_run["values"]["cs_digits"]


def test_stats_file_as_real_gives_the_same_fid(cli, runs):
    common = ["evaluate", "fid", "--features", "digits", "--fake", str(runs["images"]), "--n", "100",
              "--json"]
    first = _json(cli(*common, "--real", "digits"))
    stats = first["real"]["cache_file"]
    with np.load(stats, allow_pickle=False) as z:
        assert z["mu"].dtype == np.float64 and z["sigma"].shape == (128, 128)
        assert json.loads(str(z["meta"]))["extractor"]["name"] == "digits"
    again = _json(cli(*common, "--real", stats))
    assert again["real"]["cache"] == "file"
    assert again["values"]["fd_digits"]["mean"] == pytest.approx(first["values"]["fd_digits"]["mean"],
                                                                 rel=1e-12)


def test_seeds_give_mean_and_std(cli, runs):
    # the 4-step generator draws near-blank images (all-zero digits features whatever the seed),
    # so the seed repeats are shown on subsets of real digits: seed 0 the first N, others random
    r = _json(cli("evaluate", "fid", "--features", "digits", "--fake", "digits", "--real",
                  "digits", "--n", "300", "--seeds", "0,1,2", "--json"))
    v = r["values"]["fd_digits"]
    assert len(v["per_seed"]) == 3 and len(set(v["per_seed"])) == 3
    assert v["mean"] == pytest.approx(np.mean(v["per_seed"])) and v["std"] == pytest.approx(
        np.std(v["per_seed"], ddof=1))
    assert r["seeds"] == [0, 1, 2]
    from_run = _json(cli("evaluate", "fid", "--features", "digits", "--fake", str(runs["images"]),
                         "--real", "digits", "--n", "50", "--seeds", "3,4", "--json"))
    assert len(from_run["values"]["fd_digits"]["per_seed"]) == 2


def test_modes_on_a_toy_run_defaults_to_2500_and_its_mixture(cli, runs):
    r = _json(cli("evaluate", "modes", "--fake", str(runs["points"]), "--json"))
    assert r["samples"]["fake"] == 2500 and r["real"]["spec"] == "toy:grid25"
    v = r["values"]
    assert v["modes_total"]["mean"] == 25 and 0 <= v["modes"]["mean"] <= 25
    assert 0.0 <= v["high_quality"]["mean"] <= 1.0


def test_modes_on_real_toy_samples_recovers_every_mode(cli, tmp_path):
    from gancli.data.toy import load_toy

    pts = load_toy("grid25", 2500, seed=3).x.numpy()
    np.savez(tmp_path / "p.npz", samples=pts)
    r = _json(cli("evaluate", "modes", "--fake", str(tmp_path / "p.npz"), "--real", "toy:grid25", "--json"))
    # in 2-D, P(r < 3 sigma) = 1 - exp(-4.5) = 0.989
    assert r["values"]["modes"]["mean"] == 25 and r["values"]["high_quality"]["mean"] > 0.98
    assert r["values"]["reverse_kl"]["mean"] < 0.02


def test_tstr_on_a_conditional_run_next_to_trtr(cli, runs):
    r = _json(cli("evaluate", "tstr", "--fake", str(runs["conditional"]), "--n", "200",
                  "--tstr-epochs", "1", "--json"))
    v = r["values"]
    assert v["tstr_train_samples"]["mean"] == 200 and v["tstr_test_samples"]["mean"] == 500
    assert 0 <= v["tstr"]["mean"] <= 1 and 0 <= v["trtr"]["mean"] <= 1
    assert v["tstr_gap"]["mean"] == pytest.approx(v["trtr"]["mean"] - v["tstr"]["mean"])
    # this run trained on all 1,797 digits, the held-out 500 included: the output says so
    assert any("held-out digits" in n and "digits:train" in n for n in r["notes"])


def test_tstr_on_a_run_that_never_saw_the_held_out_digits_has_no_note(cli, tmp_path):
    from gancli.cli import main

    try:
        main(["train", "cgan", *TINY, *tiny_overrides("cgan"), "--data", "digits:train",
              "--out", str(tmp_path), "--quiet"])
    except SystemExit as e:
        assert e.code in (0, None)
    r = _json(cli("evaluate", "tstr", "--fake", str(tmp_path / "cgan-001"), "--n", "100",
                  "--tstr-epochs", "1", "--json"))
    assert not any("held-out" in n for n in r["notes"])


def test_metrics_that_hold_samples_share_one_generation_pass(cli, runs, monkeypatch):
    """digits + tstr generate once (tstr reuses a prefix) and score as when asked alone."""
    from gancli.metrics.sources import Source

    spec = str(runs["conditional"])
    alone = {m: _json(cli("evaluate", m, "--fake", spec, "--n", "300", "--tstr-epochs", "1",
                          "--json"))["values"] for m in ("digits", "tstr")}
    calls = []
    original = Source._generate
    monkeypatch.setattr(Source, "_generate",
                        lambda self, n, *a, **k: calls.append(n) or original(self, n, *a, **k))
    both = _json(cli("evaluate", "digits", "tstr", "--fake", spec, "--n", "300",
                     "--tstr-epochs", "1", "--json"))["values"]
    assert calls == [300]
    assert both == {**alone["digits"], **alone["tstr"]}


def test_tstr_needs_a_conditional_model(cli, runs):
    r = cli("evaluate", "tstr", "--fake", str(runs["images"]))
    assert r.code == 1 and "tstr needs a class-conditional model" in r.err and no_traceback(r.err)


def test_table_output(cli, runs):
    r = cli("evaluate", "fid", "digits", "--features", "digits", "--fake", str(runs["images"]),
            "--real", "digits", "--n", "100")
    assert r.code == 0, r.err
    assert "FD-digits" in r.out and "confident digits" in r.out and "sha256" in r.out


@pytest.mark.parametrize("args, words", [
    (["evaluate", "fidd", "--fake", "digits", "--real", "digits"], ["unknown metric 'fidd'", "fid"]),
    (["evaluate", "fid", "--features", "digits", "--fake", "toy:grid25", "--real", "digits"],
     ["need images"]),
    (["evaluate", "is", "--fake", "toy:grid25"], ["need images"]),
    (["evaluate", "kid", "--features", "digits", "--fake", "digits"], ["need --real"]),
    (["evaluate", "fid", "--fake", "no/such/dir", "--real", "digits"], ["no such folder"]),
])
def test_user_errors_are_one_line(cli, args, words):
    r = cli(*args)
    assert r.code in (1, 2) and no_traceback(r.err)
    for w in words:
        assert w in r.err


def test_missing_inception_weights_offline(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GANCLI_INCEPTION_WEIGHTS", raising=False)
    r = cli("evaluate", "fid", "--fake", "digits", "--real", "digits")
    assert r.code == 1 and no_traceback(r.err)
    line = r.err.splitlines()[0]
    assert "pt_inception-2015-12-05-6726825d.pth" in line and "https://github.com/mseitzer" in line
    assert "--weights" in r.err and "--download-weights" in r.err
    assert not (tmp_path / "torch").exists()  # nothing was downloaded or created


def test_weights_lookup_order(monkeypatch, tmp_path):
    from gancli.errors import GancliError
    from gancli.metrics.features import INCEPTION_FILE, find_inception_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / INCEPTION_FILE).write_bytes(b"x")
    env, flag = tmp_path / "env.pth", tmp_path / "flag.pth"
    env.write_bytes(b"x")
    flag.write_bytes(b"x")
    monkeypatch.delenv("GANCLI_INCEPTION_WEIGHTS", raising=False)
    assert find_inception_weights() == hub / INCEPTION_FILE
    monkeypatch.setenv("GANCLI_INCEPTION_WEIGHTS", str(env))
    assert find_inception_weights() == env
    assert find_inception_weights(str(flag)) == flag
    with pytest.raises(GancliError, match="does not exist"):
        find_inception_weights(str(tmp_path / "missing.pth"))


def test_wrong_weights_files_are_refused(cli, tmp_path):
    bad_shapes = tmp_path / "bad.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(8, 3, 3, 3)}, bad_shapes)
    r = cli("evaluate", "fid", "--fake", "digits", "--real", "digits", "--weights", str(bad_shapes))
    assert r.code == 1 and no_traceback(r.err)
    assert "does not fit the FID Inception network: wrong shape for Conv2d_1a_3x3.conv.weight" in r.err

    class Evil:  # a pickle that would run code under weights_only=False
        def __reduce__(self):
            return (print, ("owned",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, evil)
    r = cli("evaluate", "fid", "--fake", "digits", "--real", "digits", "--weights", str(evil))
    assert r.code == 1 and no_traceback(r.err) and "owned" not in r.out
    assert "cannot read" in r.err

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a weights file")
    r = cli("evaluate", "fid", "--fake", "digits", "--real", "digits", "--weights", str(junk))
    assert r.code == 1 and "cannot read" in r.err


def test_inception_net_is_torch_fidelitys_network(tmp_path):
    """Same parameter names and shapes as torch-fidelity's extractor, and the same forward."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from gancli.metrics.features import inception_net_class, load_inception

    torch.manual_seed(0)
    ours = inception_net_class()()
    path = tmp_path / "w.pth"
    torch.save(ours.state_dict(), path)
    ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=str(path))
    assert {k: v.shape for k, v in ref.state_dict().items()} == \
        {k: v.shape for k, v in ours.state_dict().items()}
    loaded = load_inception(path)
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    with torch.no_grad():
        a, b = loaded(x), ref(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_image_folder_spec(cli, tmp_path):
    from PIL import Image

    from gancli.data.digits import load_digits

    x = load_digits(16).x[:60, 0].numpy()
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(x):
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    r = _json(cli("evaluate", "fid", "prdc", "--features", "digits", "--fake", str(folder),
                  "--real", "digits", "--json"))
    assert r["samples"]["fake"] == 60 and r["fake"]["kind"] == "images"
    assert r["values"]["precision"]["mean"] > 0.9  # real digits lie on the real manifold


def test_download_failure_is_one_line(cli, monkeypatch, tmp_path):
    import urllib.error

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GANCLI_INCEPTION_WEIGHTS", raising=False)

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    r = cli("evaluate", "fid", "--fake", "digits", "--real", "digits", "--download-weights")
    assert r.code == 1 and no_traceback(r.err) and "could not download the Inception weights" in r.err


def test_statistics_from_another_extractor_are_refused(cli, tmp_path):
    from gancli.metrics.features import inception_net_class

    first = _json(cli("evaluate", "fid", "--features", "digits", "--fake", "digits", "--real", "digits",
                      "--n", "50", "--json"))
    weights = tmp_path / "random.pth"
    torch.save(inception_net_class()().state_dict(), weights)
    r = cli("evaluate", "fid", "--fake", first["real"]["cache_file"], "--real", first["real"]["cache_file"],
            "--weights", str(weights))
    assert r.code == 1 and "was computed with digits" in r.err and no_traceback(r.err)
