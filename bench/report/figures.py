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
from matplotlib.collections import PolyCollection  # noqa: E402
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


def _wrap(cell: str) -> str:
    """A cell label for a figure: one line per grid axis."""
    return cell.replace(", ", "\n")


def _label_size(cells: Sequence[str]) -> tuple[int, int]:
    """(lines, longest line in characters) of the wrapped labels of `cells`."""
    lines = [cell.split(", ") for cell in cells] or [[""]]
    return max(len(parts) for parts in lines), max(len(part) for parts in lines for part in parts)


def objective_palette(objectives: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One fixed colour per objective, the same in every figure."""
    colours = sns.color_palette("tab10" if len(objectives) <= 10 else "husl", len(objectives))
    return dict(zip(objectives, colours))


def _style() -> tuple[object, object]:
    return sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.0)


def _save(figure: plt.Figure, path: Path) -> None:
    # the layout is fixed in inches by _grid: one draw per figure (tight layouts draw two or three times)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


@dataclass(frozen=True)
class _Margins:
    """Figure margins and gaps between panels, in inches."""

    left: float = 0.75
    right: float = 0.2
    top: float = 0.4
    bottom: float = 0.55
    wgap: float = 0.3
    hgap: float = 0.75
    legend: float = 0.0


def _grid(rows: int, cols: int, panel: tuple[float, float], margins: _Margins = _Margins(),
          sharey: bool = False) -> tuple[plt.Figure, np.ndarray]:
    """A rows x cols grid of `panel`-sized axes (inches) with fixed margins; axes shape (rows, cols)."""
    m = margins
    width = m.left + cols * panel[0] + (cols - 1) * m.wgap + m.right + m.legend
    height = m.top + rows * panel[1] + (rows - 1) * m.hgap + m.bottom
    figure, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, sharey=sharey)
    figure.subplots_adjust(left=m.left / width, right=(width - m.right - m.legend) / width,
                           bottom=m.bottom / height, top=1 - m.top / height,
                           wspace=m.wgap / panel[0], hspace=m.hgap / panel[1])
    return figure, axes


def _legend(figure: plt.Figure, margins: _Margins, objectives: Sequence[str],
            palette: Mapping[str, tuple[float, float, float]], marker: bool = False) -> None:
    width = figure.get_figwidth()
    handles = [plt.Line2D([], [], color=palette[o], lw=0 if marker else 2, marker="s" if marker else None)
               for o in objectives]
    figure.legend(handles, objectives, loc="center left", frameon=False,
                  bbox_to_anchor=((width - margins.legend + 0.05) / width, 0.5))


def _legend_width(objectives: Sequence[str]) -> float:
    return 0.6 + 0.075 * max((len(o) for o in objectives), default=4)


def _draw_bands(axes: np.ndarray, data: pd.DataFrame, drops: pd.DataFrame, rows: Sequence[tuple[str, str]],
                cells: Sequence[str], palette: Mapping[str, tuple[float, float, float]]) -> None:
    """Draw mean lines and 95% bands: axes[row, column] shows metric rows[row][0] against the x
    column rows[row][1] ("step", "grad_evals" or "wall_s") for cell cells[column]. Where the number
    of runs behind a curve changes (`drops`, bench.report.aggregate.band_drops), the curve gets a
    hollow marker and its `n/runs` from that step on."""
    polygons: dict[tuple[int, int], list[np.ndarray]] = {}
    colours: dict[tuple[int, int], list[tuple[float, ...]]] = {}
    marks = drops.set_index(["metric", "cell", "objective", "step"])[["n", "runs"]] if len(drops) else None
    for (metric, cell, objective), curve in data.groupby(["metric", "cell", "objective"], sort=False):
        colour = palette[objective]
        mean, low, high = (curve[c].to_numpy() for c in ("mean", "mean_lo", "mean_hi"))
        keep = np.isfinite(low) & np.isfinite(high)
        for row, (row_metric, x) in enumerate(rows):
            if row_metric != metric:
                continue
            where = (row, list(cells).index(cell))
            xs = curve[x].to_numpy()
            axes[where].plot(xs, mean, color=colour, lw=1.4)
            polygons.setdefault(where, []).append(
                np.column_stack([np.r_[xs[keep], xs[keep][::-1]], np.r_[low[keep], high[keep][::-1]]]))
            colours.setdefault(where, []).append((*colour, 0.2))
            if marks is None:
                continue
            for step, x_value, y_value in zip(curve["step"], xs, mean):
                if (metric, cell, objective, step) in marks.index:
                    n, runs = marks.loc[(metric, cell, objective, step)]
                    axes[where].plot([x_value], [y_value], marker="o", mfc="white", mec=colour, ms=5, zorder=4)
                    axes[where].annotate(f"n={int(n)}/{int(runs)}", (x_value, y_value), textcoords="offset points",
                                         xytext=(3, 4), fontsize=6.5, color=colour)
    # one collection per panel: hundreds of separate fill_between calls cost seconds
    for where, panel_polygons in polygons.items():
        axes[where].add_collection(PolyCollection(panel_polygons, facecolors=colours[where], linewidths=0))
        axes[where].autoscale_view()
    for ax in axes.flat:
        ax.locator_params(nbins=5)


def _falls_text(drops: pd.DataFrame, metrics: Sequence[str], cells: Sequence[str]) -> str:
    """`; n falls for 2 curves (marked)` when some drawn curve loses runs, else ``."""
    shown = drops.loc[drops["metric"].isin(list(metrics)) & drops["cell"].isin(list(cells))] if len(drops) else drops
    if shown.empty:
        return "; every run at every step"
    curves = shown.groupby(["metric", "cell", "objective"]).ngroups
    return f"; n falls on {curves} curve{'s' if curves != 1 else ''}, marked with n/runs where it does"


def convergence_figure(bands: pd.DataFrame, drops: pd.DataFrame, metric: str, cells: Sequence[str],
                       objectives: Sequence[str], palette: Mapping[str, tuple[float, float, float]],
                       path: Path) -> FigureFile:
    """`metric` against generator step (top row), gradient evaluations (middle) and wall time (bottom
    row), one column per cell, one line per objective with its 95% Student-t band (columns of
    `curve_bands` plus `cell`), and the steps where the runs behind a line change marked."""
    shown = list(cells)[:MAX_FACETS]
    data = bands.loc[(bands["metric"] == metric) & bands["cell"].isin(shown)]
    axes_style, context = _style()
    with axes_style, context:
        margins = _Margins(legend=_legend_width(objectives))
        figure, axes = _grid(3, len(shown), (FACET_INCHES, 2.3), margins, sharey=True)
        _draw_bands(axes, data, drops, [(metric, "step"), (metric, "grad_evals"), (metric, "wall_s")], shown, palette)
        for column, cell in enumerate(shown):
            axes[0, column].set_title(_wrap(cell))
            axes[0, column].set_xlabel("generator step")
            axes[1, column].set_xlabel("gradient evaluations")
            axes[2, column].set_xlabel("wall time (s)")
        for row in range(3):
            axes[row, 0].set_ylabel(metric)
        _legend(figure, margins, objectives, palette)
        _save(figure, path)
    n = seeds_text(data.groupby(["cell", "objective"])["runs"].max())
    more = f"; first {len(shown)} of {len(cells)} cells" if len(cells) > len(shown) else ""
    return FigureFile(path, f"Convergence of {metric}",
                      f"{metric}: mean over the runs evaluated at each step with 95% t band, against generator step, "
                      f"gradient evaluations and wall time ({n} per objective{_falls_text(drops, [metric], shown)}"
                      f"{more}).")


def unranked_curves_figure(bands: pd.DataFrame, drops: pd.DataFrame, metrics: Sequence[str], cells: Sequence[str],
                           objectives: Sequence[str], palette: Mapping[str, tuple[float, float, float]],
                           path: Path) -> FigureFile:
    """Metrics that are plotted but never ranked (training losses, metrics shown as published): one
    row per metric against generator step, one column per cell, mean over the runs evaluated at
    each step with its 95% Student-t band, and the steps where the runs behind a line change marked."""
    shown = list(cells)[:MAX_FACETS]
    data = bands.loc[bands["metric"].isin(list(metrics)) & bands["cell"].isin(shown)]
    axes_style, context = _style()
    with axes_style, context:
        margins = _Margins(legend=_legend_width(objectives))
        figure, axes = _grid(len(metrics), len(shown), (FACET_INCHES, 2.1), margins)
        _draw_bands(axes, data, drops, [(m, "step") for m in metrics], shown, palette)
        for column, cell in enumerate(shown):
            axes[0, column].set_title(_wrap(cell))
            axes[-1, column].set_xlabel("generator step")
        for row, metric in enumerate(metrics):
            axes[row, 0].set_ylabel(metric)
        _legend(figure, margins, objectives, palette)
        _save(figure, path)
    n = seeds_text(data.groupby(["cell", "objective"])["runs"].max())
    more = f"; first {len(shown)} of {len(cells)} cells" if len(cells) > len(shown) else ""
    names = ", ".join(metrics)
    return FigureFile(path, "Training curves",
                      f"{names} (plotted, never ranked): mean over the runs evaluated at each step with 95% t band "
                      f"({n} per objective{_falls_text(drops, metrics, shown)}{more}).")


def distribution_figure(scores: pd.DataFrame, metric: str, cells: Sequence[str], objectives: Sequence[str],
                        palette: Mapping[str, tuple[float, float, float]], path: Path) -> FigureFile:
    """Final `metric` of every surviving run: a box per objective with every seed as a point, one
    panel per cell; each objective's label says how many of its runs survived (`run_scores` rows)."""
    shown = list(cells)[:MAX_FACETS]
    data = scores.loc[(scores["metric"] == metric) & scores["cell"].isin(shown)]
    present = [o for o in objectives if o in set(data["objective"])]
    jitter = np.random.default_rng(0)
    axes_style, context = _style()
    with axes_style, context:
        margins = _Margins(bottom=0.35 + 0.07 * (max(len(o) for o in present) + 6) if present else 0.55)
        figure, axes = _grid(1, len(shown), (max(FACET_INCHES, 0.42 * len(present) + 0.4), 2.8), margins,
                             sharey=True)
        for column, cell in enumerate(shown):
            ax = axes[0, column]
            in_cell = data.loc[data["cell"] == cell]
            survivors = dict(tuple(in_cell.loc[in_cell["survived"]].groupby("objective")["final"]))
            runs = in_cell.groupby("objective")["survived"].agg(["sum", "size"])
            values = [survivors[o].to_numpy() if o in survivors else np.zeros(0) for o in present]
            boxes = ax.boxplot(values, positions=np.arange(len(present)), widths=0.6, patch_artist=True,
                               showfliers=False, medianprops={"color": "black", "lw": 1.0})
            for patch, objective in zip(boxes["boxes"], present):
                patch.set(facecolor=(*palette[objective], 0.35), edgecolor="0.3", lw=0.8)
            counts = [scores_.size for scores_ in values]
            xs = np.repeat(np.arange(len(present)), counts) + jitter.uniform(-0.18, 0.18, sum(counts))
            colours = np.repeat(np.array([palette[o] for o in present]).reshape(-1, 3), counts, axis=0)
            ax.scatter(xs, np.concatenate(values), s=11, c=colours, edgecolor="black", lw=0.4, zorder=3)
            labels = [f"{o} ({int(runs.loc[o, 'sum'])}/{int(runs.loc[o, 'size'])})" if o in runs.index else o
                      for o in present]
            ax.set_xticks(np.arange(len(present)), labels, rotation=45, ha="right", rotation_mode="anchor")
            ax.set_xlim(-0.6, len(present) - 0.4)
            ax.set_title(_wrap(cell))
            ax.set_ylabel(f"final {metric}" if column == 0 else "")
        _save(figure, path)
    n = seeds_text(data.groupby(["cell", "objective"]).size())
    return FigureFile(path, f"Final {metric}",
                      f"Final {metric} of every surviving run (one point per seed; {n} per objective, of which the "
                      f"survivors are counted beside each name).")


def coverage_figure(summary: pd.DataFrame, metric: str, cells: Sequence[str], objectives: Sequence[str],
                    palette: Mapping[str, tuple[float, float, float]], path: Path) -> FigureFile:
    """Survivors' mean final mode coverage per objective and cell, with 95% Student-t intervals."""
    shown = list(cells)[:MAX_FACETS]
    data = summary.loc[(summary["metric"] == metric) & summary["cell"].isin(shown)]
    axes_style, context = _style()
    with axes_style, context:
        lines, longest = _label_size(shown)
        group_width = max(0.32 * len(objectives), 0.075 * longest + 0.2)
        margins = _Margins(legend=_legend_width(objectives), bottom=0.25 + 0.17 * lines)
        figure, axes = _grid(1, 1, (max(3.0, group_width * len(shown) + 0.6), 2.6), margins)
        ax = axes[0, 0]
        width = 0.8 / max(1, len(objectives))
        positions = np.arange(len(shown))
        for k, objective in enumerate(objectives):
            rows = data.loc[data["objective"] == objective].set_index("cell").reindex(shown)
            mean = rows["final_mean"].to_numpy(dtype=float)
            error = np.stack([mean - rows["final_mean_lo"].to_numpy(dtype=float),
                              rows["final_mean_hi"].to_numpy(dtype=float) - mean])
            ax.bar(positions + (k - (len(objectives) - 1) / 2) * width, mean, width, color=palette[objective],
                   label=objective, yerr=np.nan_to_num(error), capsize=2, error_kw={"lw": 0.8})
        ax.set_xticks(positions, [_wrap(cell) for cell in shown])
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(f"final {metric} (survivors' mean)")
        _legend(figure, margins, objectives, palette, marker=True)
        _save(figure, path)
    n = seeds_text(data["runs"])
    return FigureFile(path, "Mode coverage", f"Survivors' mean final {metric} with 95% t intervals ({n} per bar; "
                                             "the runs that did not survive are counted in the tables).")


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
        margins = _Margins(left=0.35, right=0.1, top=0.3, bottom=0.1, wgap=0.1, hgap=0.3)
        figure, axes = _grid(len(shown), len(objectives), (1.9, 1.9), margins)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center", va="center", color="0.6",
                    fontsize=8, gid="placeholder")
        for panel in panels.itertuples(index=False):  # one per drawn panel, at most MAX_FACETS x objectives
            ax = axes[shown.index(panel.cell), list(objectives).index(panel.objective)]
            for text in ax.texts:
                text.remove()
            points = np.load(panel.path)[:1500]
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
            axes[row, 0].set_ylabel(_wrap(cell))
        _save(figure, path)
    return FigureFile(path, "Generated samples",
                      "Final generated points (coloured) over the true mixture modes (black crosses); "
                      "n = 1 seed per panel, the lowest surviving seed.")


def image_grid_figure(panels: pd.DataFrame, cells: Sequence[str], objectives: Sequence[str],
                      path: Path) -> FigureFile:
    """Each objective's final sample grid (final.png): one row per cell, one panel per objective."""
    shown = list(cells)[:MAX_FACETS]
    panels = panels.loc[panels["cell"].isin(shown)]
    margins = _Margins(left=0.1, right=0.1, top=0.45, bottom=0.1, wgap=0.1, hgap=0.45)
    figure, axes = _grid(len(shown), len(objectives), (2.4, 2.4), margins)
    for ax in axes.flat:
        ax.axis("off")
    for panel in panels.itertuples(index=False):  # one per drawn panel, at most MAX_FACETS x objectives
        ax = axes[shown.index(panel.cell), list(objectives).index(panel.objective)]
        ax.imshow(plt.imread(panel.path), interpolation="nearest")
        ax.set_title(f"{_wrap(panel.cell)}\n{panel.objective} (seed {panel.seed})", fontsize=8)
    _save(figure, path)
    return FigureFile(path, "Generated samples",
                      "Final sample grid per objective; n = 1 seed per panel, the lowest surviving seed.")


def rank_heatmap_figure(ranks: pd.DataFrame, objectives: Sequence[str], cells: Sequence[str],
                        path: Path, seeds: str) -> FigureFile:
    """Mean rank (over ranked metrics) of each objective in each cell; 1 = best.

    `ranks` has columns objective, cell, rank (already averaged over metrics).
    """
    table = ranks.pivot(index="objective", columns="cell", values="rank").reindex(index=objectives, columns=cells)
    axes_style, context = _style()
    with axes_style, context:
        label_width = 0.2 + 0.075 * max((len(o) for o in objectives), default=4)
        lines, longest = _label_size(cells)
        margins = _Margins(left=label_width, right=0.3, top=0.25, bottom=0.25 + 0.17 * lines)
        column_width = max(0.9, 0.075 * longest + 0.15)
        # the colour bar takes its room from the panel: add it to the width
        figure, axes = _grid(1, 1, (column_width * len(cells) + 1.2, max(1.8, 0.4 * len(objectives) + 0.2)),
                             margins)
        ax = axes[0, 0]
        sns.heatmap(table, annot=True, fmt=".3g", cmap="viridis_r", cbar_kws={"label": "mean rank (1 = best)"},
                    linewidths=0.5, ax=ax)
        ax.tick_params(axis="y", labelrotation=0)
        ax.set_xticks(ax.get_xticks(), [_wrap(cell) for cell in table.columns], rotation=0)
        ax.set_xlabel("")
        ax.set_ylabel("")
        _save(figure, path)
    return FigureFile(path, "Rank heatmap",
                      f"Rank of each objective within each cell by IQM of the final value, averaged over the "
                      f"ranked metrics; 1 = best ({seeds} per objective).")
