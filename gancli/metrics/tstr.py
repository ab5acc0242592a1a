"""Train on Synthetic, Test on Real (TSTR) on the built-in digits, next to TRTR.

A fresh ``DigitsNet`` is trained on generated labelled samples and tested on the held-out
real digits; the same network, budget and seed trained on the same number of real digits
gives TRTR. The gap says how much of the class-conditional distribution the GAN captured
(Ravuri & Vinyals 2019 call the TSTR accuracy the Classification Accuracy Score).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gancli.errors import GancliError
from gancli.imaging import from_uint8
from gancli.metrics.digits import DigitsNet, digits_split, prepare


def held_out_note(source: str) -> str | None:
    """Why a TSTR score may flatter a model trained on ``source`` (its ``data.source``), or None.

    TSTR tests on the 500 held-out digits; only ``digits:train`` keeps them out of training.
    """
    if source == "digits:train":
        return None
    return (f"tstr tests on the 500 held-out digits, and this model trained on '{source}', which "
            "holds them: train on digits:train for a TSTR on digits it never saw")


def fit_classifier(x: torch.Tensor, y: torch.Tensor, seed: int = 0, epochs: int = 30,
                   batch_size: int = 64, lr: float = 2e-3) -> DigitsNet:
    """Train a DigitsNet on images (any size; through ``prepare``) and labels, deterministically."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = prepare(x)
    model = DigitsNet()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: DigitsNet, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(prepare(x)).argmax(1) == y).float().mean())


def tstr_digits(fake_x: torch.Tensor, fake_y: torch.Tensor, seed: int = 0,
                epochs: int = 30, per_class: bool = False) -> dict:
    """TSTR on ``fake_*`` and TRTR on as many real training digits, both tested on held-out real.

    There are 1,297 real training digits; with more fakes, TSTR trains on a random subset of
    that size (the same for a given ``seed``), so both classifiers see the same count. With
    ``per_class``, also ``tstr_recall``: for each class k, the share of held-out real k's the
    TSTR classifier labels k (a class whose samples lack some of the real variety scores low).
    """
    from gancli.data.digits import load_digits

    digits = load_digits(16)
    train_idx, test_idx = digits_split()
    real_x = from_uint8(digits.x[train_idx])
    real_y = digits.y[train_idx]
    test_x, test_y = from_uint8(digits.x[test_idx]), digits.y[test_idx]
    n = min(len(fake_x), len(real_x))
    # a random subset (kept in order) when there are more fakes than real training digits:
    # generated sets often come sorted by class, and their first n would miss classes
    pick = torch.randperm(len(fake_x), generator=torch.Generator().manual_seed(seed))[:n].sort()[0]
    on_fakes = fit_classifier(fake_x[pick], fake_y[pick], seed, epochs)
    with torch.no_grad():  # one pass gives the accuracy and, when asked, each class's recall
        predicted = on_fakes(prepare(test_x)).argmax(1)
    tstr = float((predicted == test_y).float().mean())
    trtr = accuracy(fit_classifier(real_x[:n], real_y[:n], seed, epochs), test_x, test_y)
    out = {"tstr": tstr, "trtr": trtr, "gap": trtr - tstr, "train_samples": n,
           "test_samples": len(test_x)}
    if per_class:
        out["tstr_recall"] = [round(float((predicted[test_y == k] == k).float().mean()), 3)
                              for k in range(int(test_y.max()) + 1)]
    return out


TSTR_MAX = 1_297  # trains on at most as many fakes as there are real training digits


def tstr_score(inp) -> dict:
    """``tstr`` for ``gancli evaluate`` (``catalog``): a class-conditional model trained on
    digits, or labelled samples."""
    fake = inp.fake
    if fake.kind == "generator":
        m = fake.model
        if not m.conditional:
            raise GancliError("tstr needs a class-conditional model (cgan, acgan, adcgan)",
                              hint=f"{fake.spec} is {m.cfg.name} ({m.cfg.objective})")
        if m.data.get("name") != "digits" or len(m.classes) != 10:
            raise GancliError("tstr tests on the held-out real digits: the model must be trained on digits",
                              hint=f"{fake.spec} was trained on {m.data.get('name')}")
    elif fake.y is None:
        raise GancliError(f"tstr needs labelled samples; {fake.spec} has no labels",
                          hint="sample a conditional model to an .npz (it stores `labels`)")
    if inp.progress is not None:
        inp.progress(f"tstr: training a classifier on generated digits (seed {inp.seed})")
    x, y = inp.samples(min(inp.n, TSTR_MAX))
    r = tstr_digits(x, y, seed=inp.seed, epochs=inp.settings.tstr_epochs)
    return {"tstr": r["tstr"], "trtr": r["trtr"], "tstr_gap": r["gap"],
            "tstr_train_samples": r["train_samples"], "tstr_test_samples": r["test_samples"]}
