"""The report's answer in plain words: per cell, which objectives are best on each ranked metric,
which differences the seeds decide and which they cannot, which runs diverged, failed or failed to
train, and how fast each objective got to its thresholds on every speed axis. Every number comes
with its n."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from bench.report import aggregate as agg
from bench.report.analysis import ALPHA, Analysis
from bench.store import Outcome

MAX_SEEDS_NAMED = 5
"""Seeds named with their reason in one summary sentence; the rest are counted."""


def score_text(value: float, digits: int = 4) -> str:
    """A score: `digits` significant digits, `worst` for the worst outcome (+-inf), `n/a` if missing."""
    value = float(value)
    if np.isinf(value):
        return "worst"
    if not np.isfinite(value):
        return "n/a"
    text = f"{value:.{digits}g}"
    return "0" if text == "-0" else text


def test_text(test: str) -> str:
    return {"wilcoxon": "Wilcoxon", "mann-whitney": "Mann-Whitney U"}[test]


def runs_text(record: dict) -> str:
    """`n=7/7`: the runs of the objective and of the baseline in one comparison."""
    return f"n={record['n_objective']}/{record['n_baseline']}"


def verdict_text(record: dict) -> str:
    """One comparison's verdict in words: who is better, or that these seeds cannot tell, or that
    they could have and did not."""
    verdict = record["verdict"]
    if verdict in ("objective better", "baseline better"):
        return verdict
    if verdict == "undecidable":
        times = f" x {record['comparisons']} comparisons" if record["comparisons"] > 1 else ""
        return f"undecidable at {runs_text(record)} (min attainable p {score_text(record['min_p'], 3)}{times})"
    return f"no significant difference at {runs_text(record)}"


def seeds_needed_text(value: float, noun: str = "seeds") -> str:
    """The clause on the seeds (or, in a search suite, runs: `noun`) an observed effect would need
    (`value` inf: no effect was observed)."""
    if not np.isfinite(value):
        return f"no effect was observed, so no number of {noun} would decide it"
    return f"the observed effect would need about {int(value)} {noun}"


@dataclass(frozen=True)
class CellSummary:
    """The summary of one cell: its `title` and its sentences."""

    title: str
    lines: tuple[str, ...]


def provisional_line(analysis: Analysis) -> str | None:
    """The sentence saying the verdicts are provisional, when some jobs have not ended."""
    unfinished = analysis.unfinished
    if unfinished.empty:
        return None
    counts = unfinished["status"].value_counts()
    parts = ", ".join(f"{int(counts[s])} {s}" for s in agg.UNFINISHED if s in counts)
    return (f"Provisional: {len(unfinished)} of {len(analysis.jobs)} jobs have not finished ({parts}); "
            "every verdict below may change when they do.")


def view_line(analysis: Analysis) -> str:
    if analysis.survivors_only:
        return ("Survivors-only view: diverged, failed and failed-to-train runs are left out of every statistic "
                "(survival is still shown).")
    return ("Diverged, failed and failed-to-train runs count as the worst outcome in every median, IQM, rank and "
            "test; means are over survivors only.")


def _survival(analysis: Analysis, cell: str) -> str:
    outcomes = analysis.outcomes.loc[analysis.outcomes["cell"] == cell]
    parts = []
    for objective in analysis.objectives:
        runs = outcomes.loc[outcomes["objective"] == objective, "outcome"]
        if runs.empty:
            continue
        lost = [f"{int((runs == o).sum())} {o}" for o in agg.OUTCOMES[1:] if (runs == o).any()]
        parts.append(f"{objective} {int((runs == Outcome.SURVIVED).sum())}/{len(runs)}"
                     + (f" ({', '.join(lost)})" if lost else ""))
    return "survived (runs finished and trained / runs ended): " + ", ".join(parts) + "." if parts else ""


def _best(analysis: Analysis, cell: str, metric: str) -> str:
    table = analysis.summary.loc[(analysis.summary["cell"] == cell) & (analysis.summary["metric"] == metric)]
    ranks = analysis.ranks.loc[(analysis.ranks["cell"] == cell) & (analysis.ranks["metric"] == metric),
                               ["objective", "rank"]]
    table = table.merge(ranks, on="objective").sort_values(["rank", "objective"], kind="stable")
    if table.empty:
        return ""
    view = "survivors" if analysis.survivors_only else "all runs"
    ordered = [f"{r['objective']} (IQM {score_text(r['final_iqm'])}, {r['survived']}/{r['runs']} survived)"
               for r in table.to_dict("records")]
    best = table.loc[table["rank"] == table["rank"].min(), "objective"].tolist()
    return (f"{metric} ({analysis.directions[metric]} is better; final value, IQM over {view}): best "
            f"{' and '.join(best)}; order: {', '.join(ordered)}.")


def _comparisons(analysis: Analysis, cell: str, metric: str) -> list[str]:
    table = analysis.comparisons
    if table.empty:
        return []
    rows = table.loc[(table["cell"] == cell) & (table["metric"] == metric)]
    order = {name: k for k, name in enumerate(analysis.objectives)}
    rows = rows.assign(_order=rows["objective"].map(order)).sort_values("_order", kind="stable")
    lines = []
    noun = agg.repetition_noun(analysis.jobs)
    paired = "paired seeds" if noun == "seeds" else "runs paired by seed and trial"
    for r in rows.to_dict("records"):
        against = f"{metric}: {r['objective']} vs {r['baseline']}"
        pairing = (f"{r['n_objective']} {paired}" if r["test"] == "wilcoxon"
                   else f"{r['n_objective']}/{r['n_baseline']} unpaired runs")
        left_out = f"; left out: {r['left_out']}" if r["left_out"] else ""
        if r["significant"]:
            winner = r["objective"] if r["verdict"] == "objective better" else r["baseline"]
            lines.append(f"{against}: {winner} better ({test_text(r['test'])}, Holm p = {score_text(r['p_holm'])}, "
                         f"P(improvement) = {score_text(r['probability_of_improvement'], 3)}, {pairing}{left_out}).")
        elif r["verdict"] == "undecidable":
            lines.append(f"{against}: {verdict_text(r)}; "
                         f"{seeds_needed_text(r['seeds_needed'], noun)} ({pairing}{left_out}).")
        else:
            lines.append(f"{against}: {verdict_text(r)} (Holm p = {score_text(r['p_holm'])}); "
                         f"{seeds_needed_text(r['seeds_needed'], noun)} ({pairing}{left_out}).")
    return lines


def _fastest(analysis: Analysis, cell: str) -> list[str]:
    table = analysis.thresholds
    if table.empty:
        return []
    lines = []
    rows = table.loc[table["cell"] == cell]
    for (metric, threshold), group in rows.groupby(["metric", "threshold"], sort=True):
        word = "<=" if analysis.directions[cast(str, metric)] == "lower" else ">="
        parts = []
        for column, axis in (("median_step", "step"), ("median_grad_evals", "grad_evals"),
                             ("median_wall_s", "wall_s")):
            times = group[column].to_numpy(dtype=float)
            if not np.isfinite(times).any():
                parts.append(f"by {agg.SPEED_AXES[axis]}: none (no objective's median run reached it)")
                continue
            fastest = group.loc[times == np.nanmin(times)]
            names = " and ".join(f"{o} ({score_text(t)}, {int(r)}/{int(n)} reached)" for o, t, r, n in zip(
                fastest["objective"], fastest[column], fastest["reached"], fastest["runs"]))
            parts.append(f"by {agg.SPEED_AXES[axis]}: {names}")
        lines.append(f"fastest to {metric} {word} {threshold:g} (median over runs; a run that never reached it "
                     f"counts as slowest): " + "; ".join(parts) + ".")
    return lines


def _compute_note(analysis: Analysis, cell: str) -> str:
    """Which axis the final-value verdicts use, and what it hides when critic steps differ."""
    outcomes = analysis.outcomes.loc[analysis.outcomes["cell"] == cell]
    per_step = outcomes.groupby("objective")["critic_steps"].first() + 1
    if per_step.nunique() <= 1:
        return ""
    parts = ", ".join(f"{o} {int(per_step[o])}" for o in analysis.objectives if o in per_step.index)
    return (f"final values compare runs after equal generator steps, not equal compute: gradient evaluations per "
            f"generator step are {parts}.")


def _casualties(analysis: Analysis, cell: str) -> list[str]:
    outcomes = analysis.outcomes.loc[analysis.outcomes["cell"] == cell]
    divergence = analysis.divergence.loc[analysis.divergence["cell"] == cell].set_index("objective")
    lines = []
    for objective in analysis.objectives:
        runs = outcomes.loc[outcomes["objective"] == objective]
        if runs.empty:
            continue
        repeats = agg.repetition_columns(runs)  # seeds, and trials in a suite with a search
        for outcome in agg.OUTCOMES[1:]:
            lost = runs.loc[runs["outcome"] == outcome].sort_values(repeats)
            if lost.empty:
                continue
            text = f"{objective}: {len(lost)}/{len(runs)} {'seeds' if repeats == ['seed'] else 'runs'} {outcome}"
            labels = [agg.repetition_label(key, repeats) for key in lost[repeats].itertuples(index=False, name=None)]
            if outcome == Outcome.FAILED_TO_TRAIN:
                text += _seed_list(labels, lost["why"])
            elif outcome == Outcome.DIVERGED and objective in divergence.index:
                step = divergence["median_divergence_step"][objective]
                text += f" (median divergence step {score_text(step)})"
            elif outcome == Outcome.FAILED:
                reasons = analysis.jobs.set_index("job_id").loc[lost["job_id"], "reason"]
                text += _seed_list(labels, [r if isinstance(r, str) and r else "no reason kept" for r in reasons])
            lines.append(text + ".")
    return lines


def _seed_list(runs: Iterable[str], reasons: Iterable[str], shown: int = MAX_SEEDS_NAMED) -> str:
    """` (seed 0: why; seed 1: why)`, naming at most `shown` runs (agg.repetition_label) and counting the rest."""
    named = [f"{run}: {reason}" for run, reason in zip(runs, reasons)]
    more = f"; {len(named) - shown} more in the report's job table" if len(named) > shown else ""
    return " (" + "; ".join(named[:shown]) + more + ")"


def _n_falls(analysis: Analysis, cell: str) -> list[str]:
    drops = analysis.drops.loc[(analysis.drops["cell"] == cell) & analysis.drops["metric"].isin(analysis.ranked)]
    if drops.empty:
        return []
    first = drops.sort_values("step").groupby(["objective"], sort=True).first()
    parts = [f"{o} n = {int(r['n'])}/{int(r['runs'])} from step {int(r['step'])}" for o, r in first.iterrows()]
    return ["convergence curves lose runs: " + ", ".join(parts) + " (the curves and bands show n per step)."]


def cell_title(analysis: Analysis, cell: str) -> str:
    """`ring8, mlp`: the cell with its dataset(s) when the dataset is not an axis already."""
    if "dataset" in analysis.cell_axes:
        return cell
    datasets = sorted(analysis.jobs.loc[analysis.jobs["cell"] == cell, "dataset"].astype(str).unique())
    return f"{', '.join(datasets)}, {cell}" if datasets else cell


def cell_summaries(analysis: Analysis) -> list[CellSummary]:
    """The summary of every cell, in cell order."""
    found = []
    for cell in analysis.cells:
        lines = [_survival(analysis, cell)]
        for metric in analysis.ranked:
            lines.append(_best(analysis, cell, metric))
            lines += _comparisons(analysis, cell, metric)
        lines.append(_compute_note(analysis, cell))
        lines += _fastest(analysis, cell)
        lines += _casualties(analysis, cell)
        lines += _n_falls(analysis, cell)
        found.append(CellSummary(cell_title(analysis, cell), tuple(line for line in lines if line)))
    return found


def opening_lines(analysis: Analysis) -> list[str]:
    """The sentences before the cells: provisional or not, and how runs that did not survive count."""
    lines = [provisional_line(analysis) or "Every job has ended.", view_line(analysis)]
    if analysis.comparisons.empty:
        lines.append(next((n.replace("`", "") for n in analysis.notes if "aseline" in n), "No comparison was made."))
    else:
        lines.append(f"Comparisons: each objective against {analysis.baseline} on the final value (after equal "
                     f"generator steps), Holm-corrected per metric, alpha = {ALPHA}; 'undecidable' means these "
                     f"{agg.repetition_noun(analysis.jobs)} "
                     "could not reach significance whatever they showed. Speed is stated per axis: generator steps, "
                     "gradient evaluations and wall time.")
    return lines


REPRODUCTIONS_TITLE = "Reproductions (published value against bench's survivors' mean and its 95% t-interval)"


def summary_text(analysis: Analysis, reproductions: Sequence[str] = ()) -> list[str]:
    """The summary as plain text lines: the opening sentences, one line per published reference
    (`reproductions`, bench.report.references.summary_lines) under REPRODUCTIONS_TITLE, then per cell
    its title and its sentences indented under it."""
    lines = opening_lines(analysis)
    if reproductions:
        lines.append(f"{REPRODUCTIONS_TITLE}:")
        lines += [f"  - {line}" for line in reproductions]
    for summary in cell_summaries(analysis):
        lines.append(f"{summary.title}:")
        lines += [f"  - {line}" for line in summary.lines]
    return lines
