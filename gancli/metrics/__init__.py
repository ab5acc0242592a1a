"""Metrics. Importing this package registers every metric listed here."""

from gancli.metrics import digits, evaluate, toy  # noqa: F401  (registration happens on import)
