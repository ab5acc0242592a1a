"""What each metric needs, how it is computed and how it is shown: the registry behind
``gancli evaluate``.

``evaluate()`` (``gancli.metrics.evaluate``) loops over the requested metrics in this table's
order; the CLI's argument help, its labels and the "needs --real" rule come from here too.
This module imports no torch (``gancli --help`` stays instant): a metric's maths lives in its
own module, named by ``compute`` ("module:function") and imported when the metric runs.
Adding a metric: docs/adding-a-metric.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from gancli.errors import GancliError
from gancli.registry import METRICS

# what a metric reads of each side:
#   moments   mean and covariance of the feature network's outputs (a statistics file will do)
#   features  the features themselves (a statistics file only when it stores them)
#   logits    the feature network's class logits of the generated side
#   samples   the generated samples themselves (held in memory once per seed, shared)
#   pairs     a paired translation model's outputs on a paired test set, against the true
#             targets (pix2pix): computed by ``gancli.metrics.paired.evaluate_paired``, which
#             also scores fid/kid of the outputs against the targets
Needs = Literal["moments", "features", "logits", "samples", "pairs"]


@dataclass(frozen=True)
class Metric:
    """One registered metric.

    - ``needs``: see ``Needs``; the first three share one pass of the feature network.
    - ``real``: ``required`` (``--real``, or the model's training data, must be given),
      ``optional`` (used when given; the model's training data by default), ``none``.
    - ``labels``: output key -> the CLI's label, in output order; ``digits_keys`` renames keys
      when the features come from the digits CNN (the numbers are then not "Inception" ones).
    - ``compute``: "module:function", called as ``function(MetricInputs) -> {key: number}``.
    - ``default_n``: generated samples per seed when ``--n`` is not given (the largest of the
      requested metrics' wins).
    """

    name: str
    summary: str
    needs: Needs
    compute: str
    labels: dict[str, str]
    real: Literal["required", "optional", "none"] = "none"
    digits_keys: dict[str, str] = field(default_factory=dict)
    default_n: int = 10_000

    @property
    def uses_features(self) -> bool:
        """Computed on the feature network's outputs (fid, kid, is, prdc)."""
        return self.needs not in ("samples", "pairs")

    def function(self) -> Callable[[MetricInputs], dict]:
        import importlib

        module, name = self.compute.split(":")
        return getattr(importlib.import_module(module), name)


@dataclass
class MetricInputs:
    """What ``evaluate`` hands a metric's ``compute`` for one generation seed.

    Feature metrics read ``real_side`` (``{"mu", "sigma", "features", "count"}``, float64 mu
    (D,) and sigma (D, D), float32 features (N, D)), ``fake_features`` (n, D) and
    ``fake_logits`` (n, K) or None. Sample metrics read the sources and call ``samples(n)``
    for (x, labels) held once per seed (x float32 in [-1, 1], on the CPU).
    """

    fake: Any  # gancli.metrics.sources.Source
    real: Any | None
    n: int
    seed: int
    settings: Any  # gancli.metrics.evaluate.Settings
    real_side: dict | None = None
    fake_features: Any = None
    fake_logits: Any = None
    samples: Callable[[int], tuple[Any, Any]] | None = None
    progress: Callable[[str], None] | None = None


def register_metric(metric: Metric) -> Metric:
    METRICS.register(metric.name, metric, kind=metric.needs, summary=metric.summary)
    return metric


register_metric(Metric(
    "fid", "Fréchet distance of Gaussian fits to features (FID on Inception pool_3)",
    needs="moments", real="required", compute="gancli.metrics.frechet:fid_score",
    labels={"fid": "FID", "fd_digits": "FD-digits"}, digits_keys={"fid": "fd_digits"}))
register_metric(Metric(
    "kid", "kernel distance: unbiased polynomial MMD^2, 100 subsets x 1000",
    needs="features", real="required", compute="gancli.metrics.scores:kid_score",
    labels={"kid": "KID", "kid_std": "KID std (subsets)", "kd_digits": "KD-digits",
            "kd_digits_std": "KD-digits std (subsets)"},
    digits_keys={"kid": "kd_digits", "kid_std": "kd_digits_std"}))
register_metric(Metric(
    "is", "Inception Score, 10 splits, logits without bias",
    needs="logits", compute="gancli.metrics.scores:is_score",
    labels={"is": "IS", "is_std": "IS std (splits)", "cs_digits": "digits classifier score",
            "cs_digits_std": "classifier score std (splits)"},
    digits_keys={"is": "cs_digits", "is_std": "cs_digits_std"}))
register_metric(Metric(
    "prdc", "precision/recall (k=3) and density/coverage (k=5) on the same features",
    needs="features", real="required", compute="gancli.metrics.scores:prdc_score",
    labels={"precision": "precision (k=3)", "recall": "recall (k=3)", "density": "density (k=5)",
            "coverage": "coverage (k=5)"}))
register_metric(Metric(
    "modes", "toy-mixture mode coverage, high-quality share, reverse KL (PacGAN)",
    needs="samples", real="optional", compute="gancli.metrics.toy:modes_score", default_n=2_500,
    labels={"modes": "modes recovered", "modes_total": "modes in the mixture",
            "high_quality": "high-quality share (< 3 sigma)",
            "reverse_kl": "reverse KL (mode histogram)"}))
register_metric(Metric(  # before tstr: it holds the larger count, tstr reuses a prefix
    "digits", "shipped digits CNN: confident share, predicted-class counts, evenness, "
              "classes present",
    needs="samples", compute="gancli.metrics.digits:digits_score",
    labels={"digits_confident": "confident digits (p > 0.9)",
            "digits_evenness": "class evenness", "digits_classes_present": "digit classes present"}))
register_metric(Metric(  # the real side shown is the data the model learnt; it tests on held-out digits
    "tstr", "train on synthetic, test on real held-out digits, next to TRTR",
    needs="samples", real="optional", compute="gancli.metrics.tstr:tstr_score",
    labels={"tstr": "TSTR accuracy", "trtr": "TRTR accuracy", "tstr_gap": "TRTR - TSTR",
            "tstr_train_samples": "TSTR training samples",
            "tstr_test_samples": "real test samples"}))

for _name, _summary, _label in (
        ("l1", "paired translation: mean |output - target|, pixels in [0, 1]",
         "L1 (pixels in [0, 1])"),
        ("psnr", "paired translation: peak signal-to-noise ratio, dB (torchmetrics)", "PSNR (dB)"),
        ("ssim", "paired translation: structural similarity, 11x11 Gaussian window (torchmetrics)",
         "SSIM")):
    register_metric(Metric(_name, _summary, needs="pairs", real="optional",
                           compute="gancli.metrics.paired:paired_scores", labels={_name: _label}))


def metrics() -> list[Metric]:
    """Every registered metric, in evaluation order (registration order)."""
    return METRICS.values()


def labels() -> dict[str, str]:
    """Output key -> label, over every metric."""
    return {k: v for m in metrics() for k, v in m.labels.items()}


def help_text() -> str:
    """The CLI's METRIC help: the names, in order."""
    return ", ".join(m.name for m in metrics()) + "."


def check_metrics(names: list[str]) -> list[Metric]:
    """Parse names (comma or space separated, any case) into registered metrics, in the order
    given, without repeats. Unknown names: ``RegistryError`` listing the known ones."""
    out: list[Metric] = []
    for name in names:
        for part in name.replace(",", " ").split():
            metric = METRICS.get(part.strip().lower())
            if metric not in out:
                out.append(metric)
    if not out:
        raise GancliError("no metric given", hint=f"metrics: {', '.join(m.name for m in metrics())}")
    return out
