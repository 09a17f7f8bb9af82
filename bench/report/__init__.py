"""`bench report`: aggregate a suite's results over seeds, compare objectives, draw figures, and write
report.md and a self-contained report.html under `results/<suite>/report/`, opening with a summary
in plain words (`summary_lines`)."""

from bench.report.build import ReportResult, build_report, summary_lines
from bench.report.stats import (
    cliffs_delta,
    holm,
    iqm,
    matched_pairs_rank_biserial,
    mean_ci,
    median_ci,
    min_pvalue_paired,
    min_pvalue_unpaired,
    paired_seeds_needed,
    paired_test,
    probability_of_improvement,
    unpaired_seeds_needed,
    unpaired_test,
)

__all__ = [
    "ReportResult",
    "build_report",
    "cliffs_delta",
    "holm",
    "iqm",
    "matched_pairs_rank_biserial",
    "mean_ci",
    "median_ci",
    "min_pvalue_paired",
    "min_pvalue_unpaired",
    "paired_seeds_needed",
    "paired_test",
    "probability_of_improvement",
    "summary_lines",
    "unpaired_seeds_needed",
    "unpaired_test",
]
