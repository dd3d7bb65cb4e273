"""The operator's report behind ``atsboost-db health``: collect, judge against thresholds, render."""

from atsboost.health.checks import Check, Thresholds, evaluate, overall, summary
from atsboost.health.collect import HealthReport, report

__all__ = ["Check", "HealthReport", "Thresholds", "evaluate", "overall", "report", "summary"]
