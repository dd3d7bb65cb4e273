"""The operator's report behind ``atsboost-db health``: collect, judge against thresholds, render."""

from atsboost.health.checks import Check, Thresholds, evaluate, overall, summary
from atsboost.health.connect import report, report_for
from atsboost.health.model import HealthReport

__all__ = ["Check", "HealthReport", "Thresholds", "evaluate", "overall", "report", "report_for", "summary"]
