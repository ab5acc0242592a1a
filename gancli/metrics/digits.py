"""A small shipped classifier for the built-in ``digits`` data, and the ``digits`` metric.

Generated digits are scored by ``DigitsNet``, a CNN trained once on part of the
1,797 UCI digits (``python -m gancli.metrics.train_digits_classifier``) and shipped
as ``digits_classifier.safetensors`` next to this file, so scoring needs no
download. ``digit_scores`` answers "are the samples recognisable digits, and are
all ten classes present?"; ``DigitsNet.features`` (128-d, penultimate layer) is
meant for a Frechet distance on digits, and ``digits_split`` fixes the train /
held-out split that train-on-synthetic, test-on-real (TSTR) code should reuse.

Every image goes through ``prepare`` first: grey, 16x16, values in [-1, 1]. That
makes the score independent of the resolution (8..64 px) and channel count a
generator was trained at. The classifier was also shown junk (noise, blank
images, blobs, dots) with a flat target, so non-digits get a top probability
near 0.1 instead of being called a confident "1" or "8".
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from gancli.data.digits import digits_split  # noqa: F401  (re-exported)
from gancli.errors import DataError, GancliError
from gancli.imaging import from_uint8

WEIGHTS_FILE = Path(__file__).with_name("digits_classifier.safetensors")
# Written into the safetensors metadata; a file with another value is not ours.
WEIGHTS_FORMAT = "gancli-digits-classifier/1"
INPUT_SIZE = 16
NUM_CLASSES = 10
FEATURE_DIM = 128
RETRAIN_HINT = "rebuild it with: python -m gancli.metrics.train_digits_classifier"


class DigitsNet(nn.Module):
    """CNN on (N, 1, 16, 16) images in [-1, 1]: two conv blocks, a 128-d feature layer, 10 logits.

    conv3x3(32) -> ReLU -> maxpool 2 -> conv3x3(64) -> ReLU -> maxpool 2 (64x4x4)
    -> linear 128 -> ReLU (``features``) -> dropout -> linear 10 (``forward``).
    No batch norm, so train and eval differ only by dropout.
    """

    def __init__(self, dropout: float = 0.3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 4 * 4, FEATURE_DIM)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, (N, 128), non-negative (after ReLU)."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, (N, 10)."""
        return self.head(self.dropout(self.features(x)))


def prepare(images: torch.Tensor) -> torch.Tensor:
    """Bring any generated or real images to the classifier's input: (N, 1, 16, 16) float32 in [-1, 1].

    Accepts float images in [-1, 1] (a generator's output; values outside are
    clamped and NaN becomes 0 so one diverged sample cannot poison a batch) or
    uint8 images in 0..255 (a ``Dataset``'s ``x``), shape (N, 1 or 3, H, W) with
    any H, W. RGB becomes grey as the channel mean; the resize is bilinear with
    antialias, the same resampling ``load_digits`` uses to upsample.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"digit images must be (N, 1|3, H, W), not {tuple(images.shape)}",
                        hint="pass a batch of grey or RGB images")
    if images.dtype == torch.uint8:
        x = from_uint8(images)
    elif images.is_floating_point():
        x = torch.nan_to_num(images.float(), nan=0.0).clamp(-1.0, 1.0)
    else:
        raise DataError(f"digit images must be float in [-1, 1] or uint8, not {images.dtype}",
                        hint="convert with images.float() / 127.5 - 1")
    x = x.mean(1, keepdim=True)
    if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                          align_corners=False, antialias=True)
    return x.clamp(-1.0, 1.0).contiguous()


def load_classifier(device: str | torch.device = "cpu", path: str | Path | None = None) -> DigitsNet:
    """The shipped ``DigitsNet`` in eval mode on ``device``.

    Weights come from ``digits_classifier.safetensors`` (or ``path``) through
    safetensors, never pickle. A missing, damaged or foreign file raises
    ``GancliError`` with a hint to retrain.
    """
    from safetensors import safe_open

    path = Path(path) if path is not None else WEIGHTS_FILE
    if not path.is_file():
        raise GancliError(f"the digits classifier weights {path} are missing", hint=RETRAIN_HINT)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types, OSError, ValueError...
        raise GancliError(f"the digits classifier weights {path} are damaged ({exc})",
                          hint=RETRAIN_HINT) from exc
    if meta.get("format") != WEIGHTS_FORMAT:
        raise GancliError(f"{path} is not a gancli digits classifier (format {meta.get('format')!r})",
                          hint=RETRAIN_HINT)
    model = DigitsNet()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # missing / unexpected keys or wrong shapes
        raise GancliError(f"the digits classifier weights {path} do not fit DigitsNet",
                          hint=RETRAIN_HINT) from exc
    return model.to(device).eval()


def classifier_metadata(path: str | Path | None = None) -> dict[str, str]:
    """The metadata stored with the weights (seed, split, accuracy, torch version...)."""
    from safetensors import safe_open

    path = Path(path) if path is not None else WEIGHTS_FILE
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise GancliError(f"cannot read the digits classifier weights {path} ({exc})",
                          hint=RETRAIN_HINT) from exc


# The default classifier, loaded once per device: metrics are computed repeatedly
# during training and re-reading the file each time would be wasted work.
_DEFAULT: dict[str, DigitsNet] = {}


def _default_classifier(device: torch.device) -> DigitsNet:
    key = str(device)
    if key not in _DEFAULT:
        _DEFAULT[key] = load_classifier(device)
    return _DEFAULT[key]


@torch.no_grad()
def predict_proba(images: torch.Tensor, classifier: DigitsNet | None = None,
                  batch_size: int = 512) -> torch.Tensor:
    """Softmax class probabilities (N, 10) on the CPU, for any images ``prepare`` accepts.

    Without ``classifier`` the shipped one runs on the images' device.
    """
    if classifier is None:
        classifier = _default_classifier(images.device)
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()  # dropout off, whatever the caller left it in
    try:
        out = [F.softmax(classifier(prepare(images[i:i + batch_size]).to(device)).float(), dim=1).cpu()
               for i in range(0, len(images), batch_size)]
    finally:
        classifier.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, NUM_CLASSES)


def digit_scores(images: torch.Tensor, threshold: float = 0.9,
                 classifier: DigitsNet | None = None) -> dict:
    """Score images as digits with the shipped classifier (or ``classifier``).

    Returns:
        n: number of images.
        confident: share whose top softmax probability is > ``threshold``.
        class_counts: 10 ints, how many images are predicted (argmax) as each digit.
        class_evenness: entropy of that histogram / log 10; 1 = perfectly even,
            0 = one class only (mode collapse).
        classes_present: how many digits get at least 1% of the images (10 = all).
        mean_confidence: mean top softmax probability.
    """
    images = images.detach()
    probs = predict_proba(images, classifier)
    n = int(probs.shape[0])
    if n == 0:
        return {"n": 0, "confident": 0.0, "class_counts": [0] * NUM_CLASSES, "class_evenness": 0.0,
                "classes_present": 0, "mean_confidence": 0.0}
    top, pred = probs.max(1)
    counts = torch.bincount(pred, minlength=NUM_CLASSES)
    p = counts.double() / n
    nz = p[p > 0]
    entropy = float(-(nz * nz.log()).sum())
    return {
        "n": n,
        "confident": float((top > threshold).double().mean()),
        "class_counts": [int(c) for c in counts],
        "class_evenness": entropy / math.log(NUM_CLASSES),
        "classes_present": int((counts >= max(1.0, 0.01 * n)).sum()),
        "mean_confidence": float(top.double().mean()),
    }


def digits_score(inp) -> dict:
    """``digits`` for ``gancli evaluate`` (``catalog``)."""
    if inp.fake.sample_kind != "images":
        raise GancliError("the digits score needs images",
                          hint=f"{inp.fake.spec} holds {inp.fake.sample_kind}")
    x, _ = inp.samples(inp.n)
    r = digit_scores(x)
    return {"digits_confident": r["confident"], "digits_evenness": r["class_evenness"],
            "digits_classes_present": r["classes_present"]}
