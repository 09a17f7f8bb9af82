"""The report's figures: seaborn styling over matplotlib's Agg backend, PNG at a modest dpi.

Every function draws from tables computed in bench.report.aggregate (never from raw rows in a
loop), writes one PNG and returns it as a `FigureFile` whose caption states the number of seeds.
The number of figures is bounded: a few per metric, at most `MAX_FACETS` facets per figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

DPI = 90
MAX_FACETS = 6  # cells drawn per figure; the tables always cover every cell
FACET_INCHES = 3.4


@dataclass(frozen=True)
class FigureFile:
    """A written figure: `path` (PNG), its `caption` (says n), and a short `title`."""

    path: Path
    title: str
    caption: str


def seeds_text(counts: pd.Series | np.ndarray | Sequence[int]) -> str:
    """`n = 4 seeds` or `n = 3-4 seeds` for the run counts of the groups drawn."""
    counts = np.asarray(counts, dtype=int)
    if counts.size == 0:
        return "n = 0 seeds"
    low, high = int(counts.min()), int(counts.max())
    return f"n = {low} seed{'s' if high != 1 else ''}" if low == high else f"n = {low}-{high} seeds"


def objective_palette(objectives: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One fixed colour per objective, the same in every figure."""
    colours = sns.color_palette("tab10" if len(objectives) <= 10 else "husl", len(objectives))
    return dict(zip(objectives, colours))


def _style() -> tuple[object, object]:
    return sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.0)


def _save(figure: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(figure)


def convergence_figure(bands: pd.DataFrame, metric: str, cells: Sequence[str], objectives: Sequence[str],
                       palette: Mapping[str, tuple[float, float, float]], path: Path) -> FigureFile:
    """`metric` against generator step (top row) and wall time (bottom row), one column per cell,
    one line per objective with its 95% bootstrap band (columns of `curve_bands` plus `cell`)."""
    shown = list(cells)[:MAX_FACETS]
    data = bands.loc[(bands["metric"] == metric) & bands["cell"].isin(shown)]
    axes_style, context = _style()
    with axes_style, context:
        figure, axes = plt.subplots(2, len(shown), figsize=(FACET_INCHES * len(shown), 5.2), squeeze=False,
                                    sharey=True)
        for (cell, objective), curve in data.groupby(["cell", "objective"], sort=False):
            column = shown.index(cell)
            colour = palette[objective]
            for row, x in enumerate(("step", "wall_s")):
                ax = axes[row, column]
                ax.plot(curve[x], curve["mean"], color=colour, lw=1.4, label=objective)
                ax.fill_between(curve[x], curve["mean_lo"], curve["mean_hi"], color=colour, alpha=0.2, lw=0)
        for column, cell in enumerate(shown):
            axes[0, column].set_title(cell)
            axes[0, column].set_xlabel("generator step")
            axes[1, column].set_xlabel("wall time (s)")
        for row in range(2):
            axes[row, 0].set_ylabel(metric)
        handles = [plt.Line2D([], [], color=palette[o], lw=2) for o in objectives]
        figure.legend(handles, objectives, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        figure.tight_layout()
        _save(figure, path)
    n = seeds_text(data.groupby(["cell", "objective"])["n"].max())
    more = f"; first {len(shown)} of {len(cells)} cells" if len(cells) > len(shown) else ""
    return FigureFile(path, f"Convergence of {metric}",
                      f"{metric}: mean over seeds with 95% bootstrap band, against generator step and wall time "
                      f"({n} per objective{more}).")


def distribution_figure(runs: pd.DataFrame, metric: str, cells: Sequence[str], objectives: Sequence[str],
                        palette: Mapping[str, tuple[float, float, float]], path: Path) -> FigureFile:
    """Final `metric` per run: a box per objective with every seed as a point, one panel per cell."""
    shown = list(cells)[:MAX_FACETS]
    data = runs.loc[(runs["metric"] == metric) & runs["cell"].isin(shown)]
    present = [o for o in objectives if o in set(data["objective"])]
    axes_style, context = _style()
    with axes_style, context:
        width = max(FACET_INCHES, 0.45 * len(present) + 1.0)
        figure, axes = plt.subplots(1, len(shown), figsize=(width * len(shown), 3.4), squeeze=False, sharey=True)
        for column, cell in enumerate(shown):
            ax = axes[0, column]
            panel = data.loc[data["cell"] == cell]
            sns.boxplot(data=panel, x="objective", y="final", hue="objective", order=present, hue_order=present,
                        palette=palette, ax=ax, showfliers=False, boxprops={"alpha": 0.45}, legend=False)
            sns.stripplot(data=panel, x="objective", y="final", hue="objective", order=present,
                          hue_order=present, palette=palette, ax=ax, size=3.5, jitter=0.2, edgecolor="black",
                          linewidth=0.4, legend=False)
            ax.set_title(cell)
            ax.set_xlabel("")
            ax.set_ylabel(f"final {metric}" if column == 0 else "")
            ax.tick_params(axis="x", labelrotation=45)
        figure.tight_layout()
        _save(figure, path)
    n = seeds_text(data.groupby(["cell", "objective"]).size())
    return FigureFile(path, f"Final {metric}",
                      f"Final {metric} of every run (one point per seed; {n} per objective).")


def coverage_figure(summary: pd.DataFrame, metric: str, cells: Sequence[str], objectives: Sequence[str],
                    palette: Mapping[str, tuple[float, float, float]], path: Path) -> FigureFile:
    """Mean final mode coverage per objective and cell, with 95% bootstrap intervals."""
    shown = list(cells)[:MAX_FACETS]
    data = summary.loc[(summary["metric"] == metric) & summary["cell"].isin(shown)]
    axes_style, context = _style()
    with axes_style, context:
        figure, ax = plt.subplots(figsize=(max(4.5, 0.5 * len(objectives) * len(shown) + 1.5), 3.2))
        width = 0.8 / max(1, len(objectives))
        positions = np.arange(len(shown))
        for k, objective in enumerate(objectives):
            rows = data.loc[data["objective"] == objective].set_index("cell").reindex(shown)
            mean = rows["final_mean"].to_numpy(dtype=float)
            error = np.stack([mean - rows["final_mean_lo"].to_numpy(dtype=float),
                              rows["final_mean_hi"].to_numpy(dtype=float) - mean])
            ax.bar(positions + (k - (len(objectives) - 1) / 2) * width, mean, width, color=palette[objective],
                   label=objective, yerr=np.nan_to_num(error), capsize=2, error_kw={"lw": 0.8})
        ax.set_xticks(positions, shown)
        ax.set_ylabel(f"final {metric} (mean)")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        figure.tight_layout()
        _save(figure, path)
    n = seeds_text(data["n"])
    return FigureFile(path, "Mode coverage", f"Mean final {metric} with 95% bootstrap intervals ({n} per bar).")


def points_figure(panels: pd.DataFrame, centres: Mapping[str, np.ndarray | None], cells: Sequence[str],
                  objectives: Sequence[str], palette: Mapping[str, tuple[float, float, float]],
                  path: Path) -> FigureFile:
    """Generated 2-D points over the true modes: one row per cell, one panel per objective.

    `panels` has columns cell, objective, seed, dataset, path (a final.npy holding an (N, 2)
    array); `centres[dataset]` is a (K, 2) array or None.
    """
    shown = list(cells)[:MAX_FACETS]
    panels = panels.loc[panels["cell"].isin(shown)]
    axes_style, context = _style()
    with axes_style, context:
        figure, axes = plt.subplots(len(shown), len(objectives), figsize=(2.3 * len(objectives), 2.4 * len(shown)),
                                    squeeze=False)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
        for panel in panels.itertuples(index=False):  # one per drawn panel, at most MAX_FACETS x objectives
            ax = axes[shown.index(panel.cell), list(objectives).index(panel.objective)]
            points = np.load(panel.path)[:2000]
            ax.scatter(points[:, 0], points[:, 1], s=1.5, alpha=0.35, color=palette[panel.objective],
                       rasterized=True)
            modes = centres.get(panel.dataset)
            if modes is not None:
                ax.scatter(modes[:, 0], modes[:, 1], s=22, marker="x", color="black", lw=1.0)
                span = np.abs(modes).max() * 1.5
                ax.set_xlim(-span, span)
                ax.set_ylim(-span, span)
            ax.set_title(f"{panel.objective} (seed {panel.seed})", fontsize=8)
        for row, cell in enumerate(shown):
            axes[row, 0].set_ylabel(cell)
        figure.tight_layout()
        _save(figure, path)
    return FigureFile(path, "Generated samples",
                      "Final generated points (coloured) over the true mixture modes (black crosses); "
                      "n = 1 seed per panel, the lowest finished seed.")


def image_grid_figure(panels: pd.DataFrame, cells: Sequence[str], objectives: Sequence[str],
                      path: Path) -> FigureFile:
    """Each objective's final sample grid (final.png): one row per cell, one panel per objective."""
    shown = list(cells)[:MAX_FACETS]
    panels = panels.loc[panels["cell"].isin(shown)]
    figure, axes = plt.subplots(len(shown), len(objectives), figsize=(2.6 * len(objectives), 2.8 * len(shown)),
                                squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for panel in panels.itertuples(index=False):  # one per drawn panel, at most MAX_FACETS x objectives
        ax = axes[shown.index(panel.cell), list(objectives).index(panel.objective)]
        ax.imshow(plt.imread(panel.path), interpolation="nearest")
        ax.set_title(f"{panel.cell}\n{panel.objective} (seed {panel.seed})", fontsize=8)
    figure.tight_layout()
    _save(figure, path)
    return FigureFile(path, "Generated samples",
                      "Final sample grid per objective; n = 1 seed per panel, the lowest finished seed.")


def rank_heatmap_figure(ranks: pd.DataFrame, objectives: Sequence[str], cells: Sequence[str],
                        path: Path, seeds: str) -> FigureFile:
    """Mean rank (over ranked metrics) of each objective in each cell; 1 = best.

    `ranks` has columns objective, cell, rank (already averaged over metrics).
    """
    table = ranks.pivot(index="objective", columns="cell", values="rank").reindex(index=objectives, columns=cells)
    axes_style, context = _style()
    with axes_style, context:
        figure, ax = plt.subplots(figsize=(1.1 * len(cells) + 2.5, 0.42 * len(objectives) + 1.2))
        sns.heatmap(table, annot=True, fmt=".1f", cmap="viridis_r", cbar_kws={"label": "mean rank (1 = best)"},
                    linewidths=0.5, ax=ax)
        ax.set_xlabel("")
        ax.set_ylabel("")
        figure.tight_layout()
        _save(figure, path)
    return FigureFile(path, "Rank heatmap",
                      f"Rank of each objective within each cell by IQM of the final value, averaged over the "
                      f"ranked metrics; 1 = best ({seeds} per objective).")
