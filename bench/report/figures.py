"""The report's figures: seaborn styling over matplotlib's Agg backend, PNG at a modest dpi.

Every function draws from tables computed in bench.report.aggregate (never from raw rows in a
loop), writes one PNG and returns it as a `FigureFile` whose caption states the number of seeds.
Panels are placed by matplotlib's constrained layout; bar plots and heatmaps are seaborn's. A
figure shows at most `MAX_FACETS` cells (its caption says when there are more; the tables always
cover every cell), and every metric it is given.

Y axis rule (`y_scale`): a metric's axis is logarithmic when every value drawn is positive, the
largest is more than `LOG_SPAN` times the smallest (over a decade), and the final values (the last
evaluation of each curve; the values themselves in a figure of final values) have their median
below the range's geometric middle: they crowd the bottom, where a linear axis squeezes them (an FID
falling from 300 to 5). A metric rising over a decade to its final values keeps a linear axis, on
which those are already spread. The caption says when an axis is logarithmic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter  # noqa: E402

from bench.report.samples import tile_images  # noqa: E402
from bench.report.stats import mean_ci  # noqa: E402

DPI = 90
MAX_FACETS = 6  # cells drawn per figure; the tables always cover every cell
FACET_INCHES = 3.4
FIGURE_INCHES = 13.0
"""Width a figure of panels wraps at where it can: 1,170 px at DPI, inside the HTML report's 1,216 px column."""
LOG_SPAN = 10.0
"""A positive metric whose drawn values span more than this factor gets a logarithmic y axis."""
SAMPLE_COLUMNS = 5
"""Sample panels per row (one cell's objectives wrap onto further rows)."""
POINTS_INCHES = 2.4
"""Side of one panel of generated 2-D points (216 px at DPI; 5 to a row fit `FIGURE_INCHES`)."""
IMAGE_INCHES = (2.5, 4.0)
"""Smallest and largest side of one sample-grid panel; in between, the grid's own pixel size."""
"""Images to a row of a sample grid."""

Palette = Mapping[str, tuple[float, float, float]]


@dataclass(frozen=True)
class FigureFile:
    """A written figure: `path` (PNG), its `caption` (says n), a short `title`, and `rows`: the
    labels of its rows top to bottom where its rows are objectives (the rank heatmap), else ()."""

    path: Path
    title: str
    caption: str
    rows: tuple[str, ...] = ()


def seeds_text(counts: pd.Series | np.ndarray | Sequence[int]) -> str:
    """`n = 4 seeds` or `n = 3-4 seeds` for the run counts of the groups drawn."""
    counts = np.asarray(counts, dtype=int)
    if counts.size == 0:
        return "n = 0 seeds"
    low, high = int(counts.min()), int(counts.max())
    return f"n = {low} seed{'s' if high != 1 else ''}" if low == high else f"n = {low}-{high} seeds"


Values = pd.Series | np.ndarray | Sequence[float]


def y_scale(values: Values, finals: Values | None = None) -> Literal["linear", "log"]:
    """The y scale of one metric's axis (see the module doc): `log` when every finite value of
    `values` is positive, the largest is more than `LOG_SPAN` times the smallest, and the median of
    the finite `finals` (default: `values`) is below sqrt(smallest x largest); else `linear` (also
    with no finite value)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    finals = values if finals is None else np.asarray(finals, dtype=float)
    finals = finals[np.isfinite(finals)]
    if values.size == 0 or finals.size == 0 or values.min() <= 0 or values.max() <= LOG_SPAN * values.min():
        return "linear"
    return "log" if np.median(finals) < math.sqrt(values.min() * values.max()) else "linear"


def _scale_text(scales: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """`; y axis logarithmic for fid (positive values from 5 to 300, the final ones low in that
    range)` for the metrics (-> (values, finals)) drawn on a log axis, else ``."""
    parts = []
    for metric, (values, finals) in scales.items():
        if y_scale(values, finals) == "log":
            finite = values[np.isfinite(values)]
            parts.append(f"{metric} (positive values from {finite.min():.3g} to {finite.max():.3g}, the final ones "
                         "low in that range)")
    return f"; y axis logarithmic for {', '.join(parts)}" if parts else ""


def _wrap(cell: str) -> str:
    """A cell label for a figure: one line per grid axis."""
    return cell.replace(", ", "\n")


def objective_palette(objectives: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One fixed colour per objective, the same in every figure."""
    colours = sns.color_palette("tab10" if len(objectives) <= 10 else "husl", len(objectives))
    return dict(zip(objectives, colours))


def _styled() -> tuple[AbstractContextManager[object], AbstractContextManager[object]]:
    """seaborn's whitegrid style and paper context, entered together by the figure functions."""
    return sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.1)


def _figure(rows: int, cols: int, size: tuple[float, float], sharey: bool = False) -> tuple[plt.Figure, np.ndarray]:
    """A rows x cols grid in a `size`-inch figure laid out by matplotlib; axes shape (rows, cols)."""
    return plt.subplots(rows, cols, figsize=size, squeeze=False, sharey=sharey, layout="constrained")


def _save(figure: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def _set_y_scale(ax: plt.Axes, scale: Literal["linear", "log"]) -> None:
    """`scale` on ax's y axis; a log axis ticked at 1, 2 and 5 per decade in plain numbers (5, 10,
    20, 50, ... rather than powers of ten)."""
    ax.set_yscale(scale)
    if scale == "log":
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def _legend(figure: plt.Figure, objectives: Sequence[str], palette: Palette) -> None:
    handles = [plt.Line2D([], [], color=palette[o], lw=2) for o in objectives]
    figure.legend(handles, objectives, loc="outside right center", frameon=False)


def _draw_bands(axes: np.ndarray, data: pd.DataFrame, drops: pd.DataFrame, rows: Sequence[tuple[str, str]],
                cells: Sequence[str], palette: Palette) -> None:
    """Draw mean lines and 95% bands: axes[row, column] shows metric rows[row][0] against the x
    column rows[row][1] ("step", "grad_evals" or "wall_s") for cell cells[column]. Where the number
    of runs behind a curve changes (`drops`, bench.report.aggregate.band_drops), the curve gets a
    hollow marker and its `n/runs` from that step on. A row's y axis follows `y_scale` of its
    means, each curve's last mean being its final value.

    The bands are precomputed (bench.report.aggregate.curve_bands), which seaborn's lineplot cannot
    draw; and for the lines alone seaborn.relplot took 4.7 s of CPU against 1.6 s for this on the
    1,000-job benchmark's 12 panels (benchmarks/report_speed.py)."""
    polygons: dict[tuple[int, int], list[np.ndarray]] = {}
    colours: dict[tuple[int, int], list[tuple[float, ...]]] = {}
    marks = drops.set_index(["metric", "cell", "objective", "step"])[["n", "runs"]] if len(drops) else None
    for key, curve in data.groupby(["metric", "cell", "objective"], sort=False):
        metric, cell, objective = cast(tuple[str, str, str], key)  # pandas types group keys as Hashable
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
                    # pandas-stubs types .loc keys as (rows, columns) pairs, not a MultiIndex's full key
                    n, runs = marks.loc[(metric, cell, objective, step)]  # type: ignore[index]
                    axes[where].plot([x_value], [y_value], marker="o", mfc="white", mec=colour, ms=5, zorder=4)
                    axes[where].annotate(f"n={int(n)}/{int(runs)}", (x_value, y_value), textcoords="offset points",
                                         xytext=(3, 4), fontsize=7, color=colour)
    # one collection per panel: hundreds of separate fill_between calls cost seconds
    for where, panel_polygons in polygons.items():
        axes[where].add_collection(PolyCollection(panel_polygons, facecolors=colours[where], linewidths=0))
        axes[where].autoscale_view()
    for row, (metric, _) in enumerate(rows):
        means, finals = _curve_values(data, metric)
        if y_scale(means, finals) == "log":
            finite = means[np.isfinite(means)]
            for ax in axes[row]:
                _set_y_scale(ax, "log")
                # bands of a few runs can reach far below the means: the means set the view
                ax.set_ylim(finite.min() / 1.5, finite.max() * 1.5)
        else:
            for ax in axes[row]:
                ax.locator_params(axis="y", nbins=5)
    for ax in axes.flat:
        ax.locator_params(axis="x", nbins=5)


def _falls_text(drops: pd.DataFrame, metrics: Sequence[str], cells: Sequence[str]) -> str:
    """`; n falls for 2 curves (marked)` when some drawn curve loses runs, else ``."""
    shown = drops.loc[drops["metric"].isin(list(metrics)) & drops["cell"].isin(list(cells))] if len(drops) else drops
    if shown.empty:
        return "; every run at every step"
    curves = shown.groupby(["metric", "cell", "objective"]).ngroups
    return f"; n falls on {curves} curve{'s' if curves != 1 else ''}, marked with n/runs where it does"


def _more_cells(shown: Sequence[str], cells: Sequence[str]) -> str:
    return f"; first {len(shown)} of {len(cells)} cells" if len(cells) > len(shown) else ""


def _curve_values(bands: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(every mean drawn, each curve's last mean) of `metric` in `curve_bands` rows with `cell`."""
    rows = bands.loc[bands["metric"] == metric]
    last = rows.sort_values("step").groupby(["cell", "objective"], sort=False)["mean"].last()
    return rows["mean"].to_numpy(dtype=float), last.to_numpy(dtype=float)


def _scales(data: pd.DataFrame, metrics: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {m: _curve_values(data, m) for m in metrics}


def convergence_figure(bands: pd.DataFrame, drops: pd.DataFrame, metric: str, cells: Sequence[str],
                       objectives: Sequence[str], palette: Palette, path: Path) -> FigureFile:
    """`metric` against generator step (top row), gradient evaluations (middle) and wall time (bottom
    row), one column per cell, one line per objective with its 95% Student-t band (columns of
    `curve_bands` plus `cell`), and the steps where the runs behind a line change marked."""
    shown = list(cells)[:MAX_FACETS]
    data = bands.loc[(bands["metric"] == metric) & bands["cell"].isin(shown)]
    axes_style, context = _styled()
    with axes_style, context:
        figure, axes = _figure(3, len(shown), (FACET_INCHES * len(shown) + 1.6, 7.6), sharey=True)
        _draw_bands(axes, data, drops, [(metric, "step"), (metric, "grad_evals"), (metric, "wall_s")], shown, palette)
        for column, cell in enumerate(shown):
            axes[0, column].set_title(_wrap(cell))
            axes[0, column].set_xlabel("generator step")
            axes[1, column].set_xlabel("gradient evaluations")
            axes[2, column].set_xlabel("wall time (s)")
        for row in range(3):
            axes[row, 0].set_ylabel(metric)
        _legend(figure, objectives, palette)
        _save(figure, path)
    n = seeds_text(data.groupby(["cell", "objective"])["runs"].max())
    return FigureFile(path, f"Convergence of {metric}",
                      f"{metric}: mean over the runs evaluated at each step with 95% t band, against generator step, "
                      f"gradient evaluations and wall time ({n} per objective{_falls_text(drops, [metric], shown)}"
                      f"{_scale_text(_scales(data, [metric]))}{_more_cells(shown, cells)}).")


def unranked_curves_figure(bands: pd.DataFrame, drops: pd.DataFrame, metrics: Sequence[str], cells: Sequence[str],
                           objectives: Sequence[str], palette: Palette, path: Path,
                           single: Sequence[str] = ()) -> FigureFile:
    """Metrics that are plotted but never ranked (training losses, metrics shown as published): one
    row per metric against generator step, one column per cell, mean over the runs evaluated at
    each step with its 95% Student-t band, and the steps where the runs behind a line change marked.
    `single`: series logged once per run (no curve), named in the caption as not drawn."""
    shown = list(cells)[:MAX_FACETS]
    data = bands.loc[bands["metric"].isin(list(metrics)) & bands["cell"].isin(shown)]
    axes_style, context = _styled()
    with axes_style, context:
        figure, axes = _figure(len(metrics), len(shown), (FACET_INCHES * len(shown) + 1.6, 2.4 * len(metrics) + 0.4))
        _draw_bands(axes, data, drops, [(m, "step") for m in metrics], shown, palette)
        for column, cell in enumerate(shown):
            axes[0, column].set_title(_wrap(cell))
            axes[-1, column].set_xlabel("generator step")
        for row, metric in enumerate(metrics):
            axes[row, 0].set_ylabel(metric)
        _legend(figure, objectives, palette)
        _save(figure, path)
    n = seeds_text(data.groupby(["cell", "objective"])["runs"].max())
    return FigureFile(path, "Training curves",
                      f"{', '.join(metrics)} (plotted, never ranked): mean over the runs evaluated at each step with "
                      f"95% t band ({n} per objective{_falls_text(drops, metrics, shown)}"
                      f"{_scale_text(_scales(data, metrics))}{_more_cells(shown, cells)})"
                      + (f"; not drawn, one evaluation per run: {', '.join(single)}." if single else "."))


def distribution_figure(scores: pd.DataFrame, metric: str, cells: Sequence[str], objectives: Sequence[str],
                        palette: Palette, path: Path) -> FigureFile:
    """Final `metric` of every surviving run: a box per objective with every seed as a point, one
    panel per cell; each objective's label says how many of its runs survived (`run_scores` rows)."""
    shown = list(cells)[:MAX_FACETS]
    data = scores.loc[(scores["metric"] == metric) & scores["cell"].isin(shown)]
    present = [o for o in objectives if o in set(data["objective"])]
    survivors = data.loc[data["survived"]]
    finals = survivors["final"].to_numpy(dtype=float)
    scale = y_scale(finals)
    jitter = np.random.default_rng(0)
    axes_style, context = _styled()
    with axes_style, context:
        panel = max(FACET_INCHES, 0.45 * len(present) + 0.6)
        columns = max(1, min(len(shown), int(FIGURE_INCHES // panel)))
        rows = math.ceil(len(shown) / columns)
        longest = max((len(o) for o in present), default=4) + 8
        figure, axes = _figure(rows, columns, (panel * columns + 0.4, rows * (2.6 + 0.075 * longest)), sharey=True)
        for ax in axes.flat[len(shown):]:
            ax.set_axis_off()
        for ax, cell in zip(axes.flat, shown):
            _set_y_scale(ax, scale)
            in_cell = survivors.loc[survivors["cell"] == cell]
            finals_by = dict(tuple(in_cell.groupby("objective")["final"]))
            values = [finals_by[o].to_numpy() if o in finals_by else np.zeros(0) for o in present]
            # matplotlib's boxplot and one scatter per panel: on the 1,000-job benchmark (benchmarks/report_speed.py,
            # 4 panels of 10 boxes) this figure took 0.69 s of CPU, with seaborn's boxplot and stripplot 1.45 s,
            # with matplotlib's boxplot and seaborn's stripplot 0.98 s
            boxes = ax.boxplot(values, positions=np.arange(len(present)), widths=0.6, patch_artist=True,
                               showfliers=False, medianprops={"color": "black", "lw": 1.0})
            for patch, objective in zip(boxes["boxes"], present):
                patch.set(facecolor=(*palette[objective], 0.35), edgecolor="0.3", lw=0.8)
            counts = [len(v) for v in values]
            xs = np.repeat(np.arange(len(present)), counts) + jitter.uniform(-0.18, 0.18, sum(counts))
            colours = np.repeat(np.array([palette[o] for o in present]).reshape(-1, 3), counts, axis=0)
            ax.scatter(xs, np.concatenate(values), s=12, c=colours, edgecolor="black", lw=0.4, zorder=3)
            runs = data.loc[data["cell"] == cell].groupby("objective")["survived"].agg(["sum", "size"])
            labels = [f"{o} ({int(runs['sum'][o])}/{int(runs['size'][o])})" if o in runs.index else o
                      for o in present]
            ax.set_xticks(np.arange(len(present)), labels, rotation=45, ha="right", rotation_mode="anchor")
            ax.set_xlabel("")
            ax.set_title(_wrap(cell))
            ax.set_ylabel(f"final {metric}" if ax in axes[:, 0] else "")
        _save(figure, path)
    n = seeds_text(data.groupby(["cell", "objective"]).size())
    return FigureFile(path, f"Final {metric}",
                      f"Final {metric} of every surviving run (one point per seed; {n} per objective, of which the "
                      f"survivors are counted beside each name{_scale_text({metric: (finals, finals)})}"
                      f"{_more_cells(shown, cells)}).")


def _t_interval(values: pd.Series) -> tuple[float, float]:
    low, high = mean_ci(values.to_numpy(dtype=float))
    return float(low), float(high)


def coverage_figure(scores: pd.DataFrame, metric: str, cells: Sequence[str], objectives: Sequence[str],
                    palette: Palette, path: Path) -> FigureFile:
    """Survivors' mean final mode coverage per objective and cell with its 95% Student-t interval
    (bench.report.stats.mean_ci over the surviving `run_scores` rows, as in the tables)."""
    shown = list(cells)[:MAX_FACETS]
    data = scores.loc[(scores["metric"] == metric) & scores["cell"].isin(shown) & scores["survived"]]
    present = [o for o in objectives if o in set(data["objective"])]
    axes_style, context = _styled()
    with axes_style, context:
        width = max(4.0, 0.3 * len(present) * len(shown) + 2.4)
        figure, axes = _figure(1, 1, (width, 3.4))
        ax = axes[0, 0]
        sns.barplot(data, x="cell", y="final", hue="objective", order=shown, hue_order=present, palette=palette,
                    estimator="mean", errorbar=_t_interval, capsize=0.15, err_kws={"linewidth": 0.9}, ax=ax)
        ax.set_xticks(np.arange(len(shown)), [_wrap(cell) for cell in shown])
        ax.set_xlabel("")
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(f"final {metric} (survivors' mean)")
        if ax.get_legend() is not None:  # seaborn draws none for a single objective
            sns.move_legend(ax, "center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title=None)
        _save(figure, path)
    n = seeds_text(data.groupby(["cell", "objective"]).size())
    return FigureFile(path, "Mode coverage", f"Survivors' mean final {metric} with 95% t intervals ({n} per bar, the "
                                             "survivors; the runs that did not survive are counted in the tables"
                                             f"{_more_cells(shown, cells)}).")


def _sample_grid(cells: Sequence[str], objectives: Sequence[str],
                 panel: float) -> tuple[plt.Figure, dict[tuple[str, str], plt.Axes]]:
    """One block per cell, titled with it, holding one `panel`-inch square per objective in rows of
    at most `SAMPLE_COLUMNS` that fit `FIGURE_INCHES`; returns the figure and the axes by (cell,
    objective)."""
    columns = max(1, min(SAMPLE_COLUMNS, len(objectives), math.floor(FIGURE_INCHES / (panel + 0.1))))
    rows = math.ceil(len(objectives) / columns)
    figure = plt.figure(figsize=(columns * (panel + 0.1) + 0.2, len(cells) * (rows * (panel + 0.35) + 0.35)),
                        layout="constrained")
    blocks = figure.subfigures(len(cells), 1, squeeze=False)[:, 0]
    axes: dict[tuple[str, str], plt.Axes] = {}
    for block, cell in zip(blocks, cells):
        block.suptitle(cell, fontweight="bold")
        grid = block.subplots(rows, columns, squeeze=False)
        for ax in grid.flat[len(objectives):]:
            ax.set_axis_off()
        for ax, objective in zip(grid.flat, objectives):
            axes[cell, objective] = ax
    return figure, axes


def points_figure(panels: pd.DataFrame, centres: Mapping[str, np.ndarray | None], cells: Sequence[str],
                  objectives: Sequence[str], palette: Palette, path: Path) -> FigureFile:
    """Generated 2-D points over the true modes: one block per cell, one `POINTS_INCHES` panel per
    objective, at most `SAMPLE_COLUMNS` to a row.

    `panels` has columns cell, objective, seed, dataset, path (a final.npy holding an (N, 2)
    array); `centres[dataset]` is a (K, 2) array or None.
    """
    shown = list(cells)[:MAX_FACETS]
    panels = panels.loc[panels["cell"].isin(shown)]
    axes_style, context = _styled()
    with axes_style, context:
        figure, axes = _sample_grid(shown, objectives, POINTS_INCHES)
        for (_, objective), ax in axes.items():
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            ax.set_title(objective)
            ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center", va="center", color="0.6",
                    gid="placeholder")
        # one per drawn panel, at most MAX_FACETS x objectives
        for cell, objective, seed, dataset, samples in zip(panels["cell"], panels["objective"], panels["seed"],
                                                           panels["dataset"], panels["path"]):
            ax = axes[cell, objective]
            for text in ax.texts:
                text.remove()
            points = np.load(samples)[:1500]
            ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.4, color=palette[objective], linewidths=0)
            modes = centres.get(dataset)
            if modes is not None:
                ax.scatter(modes[:, 0], modes[:, 1], s=30, marker="x", color="black", lw=1.2)
                span = np.abs(modes).max() * 1.5
                ax.set_xlim(-span, span)
                ax.set_ylim(-span, span)
            ax.set_title(f"{objective} (seed {seed})")
        _save(figure, path)
    return FigureFile(path, "Generated samples",
                      "Final generated points (coloured) over the true mixture modes (black crosses); "
                      f"n = 1 seed per panel, the lowest surviving seed{_more_cells(shown, cells)}.")


def image_grid_figure(panels: pd.DataFrame, cells: Sequence[str], objectives: Sequence[str],
                      path: Path) -> FigureFile:
    """Each objective's final samples tiled into a grid (`tile_images`): one block per cell, one
    panel per objective, at most `SAMPLE_COLUMNS` to a row and no wider than `FIGURE_INCHES` in all,
    each panel as large as the grid's own pixels at `DPI` (within `IMAGE_INCHES`).

    `panels` has columns cell, objective, seed, path (a final_images.npy holding uint8 (N, H, W, C)).
    """
    shown = list(cells)[:MAX_FACETS]
    panels = panels.loc[panels["cell"].isin(shown)]
    images = {(cell, objective): tile_images(np.load(samples))
              for cell, objective, samples in zip(panels["cell"], panels["objective"], panels["path"])}
    pixels = max((max(image.shape[:2]) for image in images.values()), default=0)
    side = min(max(pixels / DPI, IMAGE_INCHES[0]), IMAGE_INCHES[1])
    figure, axes = _sample_grid(shown, objectives, side)
    for ax in axes.values():
        ax.set_axis_off()
    # one per drawn panel, at most MAX_FACETS x objectives
    for cell, objective, seed in zip(panels["cell"], panels["objective"], panels["seed"]):
        ax = axes[cell, objective]
        ax.imshow(images[cell, objective], interpolation="nearest")
        ax.set_title(f"{objective} (seed {seed})", fontsize=10)
    _save(figure, path)
    return FigureFile(path, "Generated samples", "Final sample grid per objective; n = 1 seed per panel, the lowest "
                                                 f"surviving seed{_more_cells(shown, cells)}.")


def rank_heatmap_figure(ranks: pd.DataFrame, objectives: Sequence[str], cells: Sequence[str],
                        path: Path, seeds: str) -> FigureFile:
    """Mean rank (over ranked metrics) of each objective in each cell; 1 = best. Rows are
    `objectives` in the order given (the ranking table's), returned as `FigureFile.rows`.

    `ranks` has columns objective, cell, rank (already averaged over metrics).
    """
    table = (ranks.pivot(index="objective", columns="cell", values="rank")
             .reindex(index=list(objectives), columns=list(cells)))
    axes_style, context = _styled()
    with axes_style, context:
        longest = max((len(part) for cell in cells for part in cell.split(", ")), default=4)
        width = 1.0 + 0.075 * max((len(o) for o in objectives), default=4) + len(cells) * max(1.0, 0.08 * longest) + 1.2
        figure, axes = _figure(1, 1, (width, 0.42 * len(objectives) + 1.3))
        ax = axes[0, 0]
        sns.heatmap(table, annot=True, fmt=".3g", cmap="viridis_r", cbar_kws={"label": "mean rank (1 = best)"},
                    linewidths=0.5, ax=ax)
        ax.tick_params(axis="y", labelrotation=0)
        ax.set_xticks(ax.get_xticks(), [_wrap(cell) for cell in table.columns], rotation=0)
        ax.set_xlabel("")
        ax.set_ylabel("")
        rows = tuple(label.get_text() for label in ax.get_yticklabels())
        _save(figure, path)
    return FigureFile(path, "Rank heatmap",
                      f"Rank of each objective within each cell by IQM of the final value, averaged over the "
                      f"ranked metrics; 1 = best; rows in the ranking table's order ({seeds} per objective).",
                      rows=rows)


def budget_figure(curves: pd.DataFrame, metrics: Sequence[str], cells: Sequence[str], objectives: Sequence[str],
                  palette: Palette, path: Path) -> FigureFile:
    """Expected best score against the number of search trials (bench.report.budget.budget_curves
    rows): per objective its E_n line, a shaded 95% bootstrap band, and Dodge et al.'s E_n +- sd as
    dotted lines; one panel per metric (columns) and cell (rows, at most MAX_FACETS)."""
    shown = list(cells)[:MAX_FACETS]
    data = curves.loc[curves["metric"].isin(list(metrics)) & curves["cell"].isin(shown)]
    present = [o for o in objectives if o in set(data["objective"])]
    axes_style, context = _styled()
    with axes_style, context:
        width = min(FIGURE_INCHES, FACET_INCHES * len(metrics) + 1.8)
        figure, axes = _figure(len(shown), len(metrics), (width, 2.9 * len(shown)))
        for row, cell in enumerate(shown):
            for column, metric in enumerate(metrics):
                ax = axes[row, column]
                panel = data.loc[(data["metric"] == metric) & (data["cell"] == cell)]
                for objective, curve in panel.groupby("objective", sort=False):
                    colour = palette[str(objective)]
                    ax.fill_between(curve["n"], curve["low"], curve["high"], color=colour, alpha=0.15, lw=0)
                    ax.plot(curve["n"], curve["sd_low"], color=colour, lw=0.8, ls=":")
                    ax.plot(curve["n"], curve["sd_high"], color=colour, lw=0.8, ls=":")
                    ax.plot(curve["n"], curve["expected"], color=colour, lw=1.8, marker="o", ms=3)
                ax.set_title(metric if len(shown) == 1 else f"{metric}\n{_wrap(cell)}")
                ax.set_xlabel("trials n")
                ax.set_ylabel("expected best" if column == 0 else "")
                ax.xaxis.get_major_locator().set_params(integer=True)
        _legend(figure, present, palette)
        _save(figure, path)
    trials = sorted(set(data["trials"].astype(int)))
    n = f"N = {trials[0]}" if len(trials) == 1 else f"N = {trials[0]}-{trials[-1]}"
    return FigureFile(path, "Expected best score vs trials",
                      f"Expected best final value after n random-search trials (Dodge et al. 2019; {n} trials per "
                      "objective): line = E_n, shaded = 95% bootstrap interval over trials, dotted = E_n +- the sd "
                      f"of the best of n (Dodge's shading){_more_cells(shown, cells)}.")


def trial_scores_figure(trial_scores: pd.DataFrame, metrics: Sequence[str], cells: Sequence[str],
                        objectives: Sequence[str], palette: Palette, path: Path) -> FigureFile:
    """Every trial's score over the search space (bench.report.budget.trial_score_table rows): a
    box per objective with each trial as a point, a cross where the trial did not survive (drawn
    at the floor it scores); one panel per metric and cell."""
    shown = list(cells)[:MAX_FACETS]
    data = trial_scores.loc[trial_scores["metric"].isin(list(metrics)) & trial_scores["cell"].isin(shown)]
    present = [o for o in objectives if o in set(data["objective"])]
    jitter = np.random.default_rng(0)
    axes_style, context = _styled()
    with axes_style, context:
        width = min(FIGURE_INCHES, max(FACET_INCHES, 0.45 * len(present) + 0.8) * len(metrics) + 0.4)
        figure, axes = _figure(len(shown), len(metrics), (width, 3.1 * len(shown)))
        for row, cell in enumerate(shown):
            for column, metric in enumerate(metrics):
                ax = axes[row, column]
                panel = data.loc[(data["metric"] == metric) & (data["cell"] == cell)]
                values = [panel.loc[panel["objective"] == o, "score"].to_numpy(dtype=float) for o in present]
                boxes = ax.boxplot(values, positions=np.arange(len(present)), widths=0.6, patch_artist=True,
                                   showfliers=False, medianprops={"color": "black", "lw": 1.0})
                for patch, objective in zip(boxes["boxes"], present):
                    patch.set(facecolor=(*palette[objective], 0.35), edgecolor="0.3", lw=0.8)
                for position, objective in enumerate(present):
                    trials = panel.loc[panel["objective"] == objective]
                    xs = position + jitter.uniform(-0.18, 0.18, len(trials))
                    lost = (trials["survived"] < trials["runs"]).to_numpy()
                    ax.scatter(xs[~lost], trials["score"].to_numpy()[~lost], s=14, color=palette[objective],
                               edgecolor="black", lw=0.4, zorder=3)
                    ax.scatter(xs[lost], trials["score"].to_numpy()[lost], s=22, color="black", marker="x",
                               lw=1.0, zorder=3)
                ax.set_xticks(np.arange(len(present)), present, rotation=45, ha="right", rotation_mode="anchor")
                ax.set_title(metric if len(shown) == 1 else f"{metric}\n{_wrap(cell)}")
                ax.set_ylabel("final value per trial" if column == 0 else "")
        _save(figure, path)
    counts = data.groupby(["metric", "cell", "objective"]).size()
    n = f"{int(counts.min())}" if counts.min() == counts.max() else f"{int(counts.min())}-{int(counts.max())}"
    return FigureFile(path, "Scores over the search space",
                      f"Final value of every trial ({n} per objective; the same configurations for every objective), "
                      "box = quartiles; x = a trial that diverged, failed or failed to train, drawn at the worst value "
                      f"the suite logged, which it scores{_more_cells(shown, cells)}.")
