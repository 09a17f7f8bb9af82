"""`bench report`: aggregate a suite's results over seeds, compare objectives, draw figures, and write
report.md and a self-contained report.html under `results/<suite>/report/`."""

from bench.report.build import ReportResult, build_report
from bench.report.stats import (
    bootstrap_ci,
    cliffs_delta,
    holm,
    iqm,
    matched_pairs_rank_biserial,
    paired_test,
    probability_of_improvement,
    unpaired_test,
)

__all__ = [
    "ReportResult",
    "bootstrap_ci",
    "build_report",
    "cliffs_delta",
    "holm",
    "iqm",
    "matched_pairs_rank_biserial",
    "paired_test",
    "probability_of_improvement",
    "unpaired_test",
]
