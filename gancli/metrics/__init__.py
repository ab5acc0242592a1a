"""Metrics. ``catalog`` registers every metric (what it needs, how it is computed and shown)
without importing torch; each metric's maths lives in the module its entry names, imported
when the metric runs."""

from gancli.metrics.catalog import Metric, MetricInputs, register_metric

__all__ = ["Metric", "MetricInputs", "register_metric"]
