"""`bench report`: aggregate a suite's results over seeds, compare objectives, draw figures, and write
report.md and a self-contained report.html under `results/<suite>/report/`, opening with a summary
in plain words (`summary_lines`)."""

from __future__ import annotations

import importlib
from typing import Any

# names loaded on first use (PEP 562), so that a process needing one light module of this package
# (the launcher drawing a job's samples: bench.report.samples) does not load pandas, seaborn and scipy
_HOMES = {
    **dict.fromkeys(("ReportResult", "build_report", "summary_lines"), "bench.report.build"),
    **dict.fromkeys(("cliffs_delta", "holm", "iqm", "matched_pairs_rank_biserial", "mean_ci", "median_ci",
                     "min_pvalue_paired", "min_pvalue_unpaired", "paired_seeds_needed", "paired_test",
                     "probability_of_improvement", "unpaired_seeds_needed", "unpaired_test"), "bench.report.stats"),
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'bench.report' has no attribute {name!r}")


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
