"""TSTR next to TRTR: the same budget on the same data gives the same score; noise labels do not."""

from __future__ import annotations

import torch

from gancli.data.digits import load_digits
from gancli.metrics.digits import digits_split
from gancli.metrics.tstr import tstr_digits


def _real_train():
    d = load_digits(16)
    idx, _ = digits_split()
    return d.x[idx].float() / 127.5 - 1, d.y[idx]


def test_real_digits_as_fakes_score_exactly_trtr():
    x, y = _real_train()
    r = tstr_digits(x, y, epochs=4)
    assert r["gap"] == 0.0 and r["tstr"] == r["trtr"] > 0.85
    assert r["train_samples"] == len(x) and r["test_samples"] == 500


def test_shuffled_labels_score_near_chance():
    x, y = _real_train()
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    r = tstr_digits(x, shuffled, epochs=4)
    assert r["tstr"] < 0.3 < r["trtr"]


def test_class_sorted_fakes_are_subsampled_across_all_classes():
    """Generated sets come sorted by class; taking the first n would drop the last classes."""
    x, y = _real_train()
    order = y.argsort(stable=True)
    xs, ys = x[order].repeat(2, 1, 1, 1), y[order].repeat(2)  # 2x the real count, class-sorted
    r = tstr_digits(xs, ys, epochs=4)
    assert r["train_samples"] == len(x)
    assert r["tstr"] > 0.85  # the first n of a 2x sorted set hold only classes 0-4: < 0.5


def test_per_class_recall_finds_the_class_the_fakes_lack():
    """Fakes with no 1s at all (their 1s relabelled as 7s): the TSTR classifier never predicts
    1, so its recall on real 1s is 0 while the other classes stay recognised."""
    x, y = _real_train()
    y = torch.where(y == 1, torch.tensor(7), y)
    r = tstr_digits(x, y, epochs=4, per_class=True)
    recall = r["tstr_recall"]
    assert len(recall) == 10 and recall[1] == 0.0
    assert min(recall[k] for k in (0, 2, 3, 4, 5, 6, 8, 9)) > 0.7
    assert recall == [round(v, 3) for v in recall]
    assert "tstr_recall" not in tstr_digits(x[:200], y[:200], epochs=1)
