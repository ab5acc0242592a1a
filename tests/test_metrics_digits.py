"""The shipped digits classifier and the ``digits`` metric (fast: a few seconds on the CPU)."""

from __future__ import annotations

import pytest
import torch

from gancli.data.digits import NUM_SAMPLES, load_digits
from gancli.errors import DataError, GancliError
from gancli.metrics.digits import (FEATURE_DIM, WEIGHTS_FILE, WEIGHTS_FORMAT, DigitsNet, classifier_metadata,
                                   digit_scores, digits_split, load_classifier, predict_proba, prepare)


@pytest.fixture(scope="module")
def clf() -> DigitsNet:
    return load_classifier()


@pytest.fixture(scope="module")
def held_out() -> torch.Tensor:
    return digits_split()[1]


@pytest.fixture(scope="module")
def served() -> dict:
    """The digits as served at 8, 16 and 32 px (grey), read once for the module."""
    return {r: load_digits(resolution=r) for r in (8, 16, 32)}


@pytest.mark.parametrize(("resolution", "channels"), [(8, 1), (16, 1), (32, 1), (32, 3)])
def test_shipped_classifier_reads_held_out_digits(clf, held_out, served, resolution, channels):
    ds = served[resolution]
    x = ds.x[held_out].float() / 127.5 - 1.0  # as a generator would emit them
    x = x.repeat(1, channels, 1, 1)
    y = ds.y[held_out]
    probs = predict_proba(x, clf)
    acc = float((probs.argmax(1) == y).double().mean())
    scores = digit_scores(x, classifier=clf)
    # Shipped weights score 0.992 accuracy and ~0.967 confident share at every size.
    assert acc >= 0.95
    assert scores["confident"] >= 0.95
    assert scores["confident"] == pytest.approx(float((probs.max(1).values > 0.9).double().mean()))
    assert scores["n"] == len(held_out)
    assert scores["classes_present"] == 10
    assert scores["class_evenness"] > 0.99
    assert sum(scores["class_counts"]) == len(held_out)


@pytest.mark.parametrize("resolution", [8, 16, 32, 64])
def test_noise_is_not_called_a_confident_digit(clf, resolution):
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(300, 3, resolution, resolution, generator=gen) * 2 - 1
    scores = digit_scores(noise, classifier=clf)
    # Measured 0.0 at every size (outlier exposure in training); a plain CNN gave up to ~0.25.
    assert scores["confident"] < 0.5
    assert scores["mean_confidence"] < 0.5


@pytest.mark.parametrize("value", [-1.0, 0.0, 1.0])
def test_blank_images_are_not_confident_digits(clf, value):
    # A collapsed generator emitting blanks must not look like a confident "1".
    scores = digit_scores(torch.full((20, 1, 32, 32), value), classifier=clf)
    assert scores["confident"] == 0.0


def test_default_classifier_and_empty_batch(served):
    x = served[16].x[:50]
    assert digit_scores(x)["n"] == 50  # uint8 input, default (shipped) classifier
    empty = digit_scores(torch.zeros(0, 1, 16, 16))
    assert empty["n"] == 0 and empty["class_counts"] == [0] * 10


def test_collapse_shows_in_evenness(clf, served):
    ds = served[16]
    sevens = ds.x[ds.y == 7][:100]
    scores = digit_scores(sevens, classifier=clf)
    assert scores["classes_present"] == 1
    assert scores["class_evenness"] < 0.1
    assert scores["class_counts"][7] >= 95


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_prepare_shapes_and_range(size, channels):
    x = torch.rand(4, channels, size, size) * 2 - 1
    out = prepare(x)
    assert out.shape == (4, 1, 16, 16) and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_prepare_uint8_matches_float_and_rgb_matches_grey():
    u8 = load_digits(32, channels=3).x[:8]
    as_float = u8.float() / 127.5 - 1.0
    assert torch.allclose(prepare(u8), prepare(as_float), atol=1e-6)
    assert torch.allclose(prepare(u8), prepare(u8[:, :1]), atol=1e-6)
    # At 16 px there is nothing to resize.
    x16 = torch.rand(2, 1, 16, 16) * 2 - 1
    assert torch.equal(prepare(x16), x16)


def test_prepare_clamps_and_rejects_bad_input():
    x = torch.full((1, 1, 16, 16), 5.0)
    x[0, 0, 0, 0] = float("nan")
    out = prepare(x)
    assert torch.isfinite(out).all() and out.max() <= 1.0
    with pytest.raises(DataError):
        prepare(torch.zeros(2, 2, 16, 16))
    with pytest.raises(DataError):
        prepare(torch.zeros(16, 16))
    with pytest.raises(DataError):
        prepare(torch.zeros(1, 1, 16, 16, dtype=torch.int32))


def test_split_is_disjoint_complete_and_deterministic():
    train, test = digits_split()
    assert len(test) == 500 and len(train) == NUM_SAMPLES - 500
    both = torch.cat([train, test])
    assert torch.equal(both.sort().values, torch.arange(NUM_SAMPLES))  # disjoint and covering
    again = digits_split(seed=0, test=500)
    assert torch.equal(train, again[0]) and torch.equal(test, again[1])
    assert not torch.equal(test, digits_split(seed=1)[1])


def test_features_and_logits_shapes(clf, served):
    x = prepare(served[16].x[:5])
    with torch.no_grad():
        assert clf.features(x).shape == (5, FEATURE_DIM)
        assert clf(x).shape == (5, 10)
    assert not clf.training


def test_shipped_file_metadata():
    meta = classifier_metadata()
    assert meta["format"] == WEIGHTS_FORMAT
    for key in ("seed", "split", "test_accuracy", "torch_version", "description"):
        assert meta[key]
    assert float(meta["test_accuracy"]) >= 0.97
    assert WEIGHTS_FILE.stat().st_size < 1_000_000


def test_corrupt_missing_and_foreign_weights_raise(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(WEIGHTS_FILE.read_bytes()[:1000])  # truncated
    with pytest.raises(GancliError, match="damaged") as info:
        load_classifier(path=bad)
    assert "train_digits_classifier" in info.value.hint
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(GancliError):
        load_classifier(path=bad)
    with pytest.raises(GancliError, match="missing"):
        load_classifier(path=tmp_path / "nope.safetensors")

    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "something-else"})
    with pytest.raises(GancliError, match="not a gancli"):
        load_classifier(path=foreign)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"w": torch.zeros(2)}, str(wrong), metadata={"format": WEIGHTS_FORMAT})
    with pytest.raises(GancliError, match="do not fit"):
        load_classifier(path=wrong)


def test_trainer_save_round_trips(tmp_path):
    from gancli.metrics.train_digits_classifier import save

    model = DigitsNet()
    out = tmp_path / "sub" / "w.safetensors"
    save(model, out, {"format": WEIGHTS_FORMAT, "seed": "0"})
    loaded = load_classifier(path=out)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert [p.name for p in out.parent.iterdir()] == ["w.safetensors"]  # no temp file left


def test_registered_as_metric():
    from gancli.registry import METRICS

    from gancli.metrics.digits import digits_score

    metric = METRICS.get("digits")
    assert metric.function() is digits_score and metric.needs == "samples"
    assert METRICS.meta("digits")["kind"] == "samples"
