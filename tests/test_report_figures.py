"""The report's figures on folders built here: a figure pair for every ranked metric (seven here),
the rank heatmap's rows in the ranking table's order, a log y axis for a metric falling from 300 to
5, no IQM column when no group has 4 runs, sample panels that fit the page at a readable size, and
no curve drawn for a series logged once per run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import make_spec, table_after, write_job

from bench.report import build_report
from bench.report.figures import (
    DPI,
    POINTS_INCHES,
    SAMPLE_COLUMNS,
    coverage_figure,
    distribution_figure,
    objective_palette,
    points_figure,
    y_scale,
)
from bench.report.samples import draw_final_samples, mixture_centres, tile_images
from bench.store import MetricRow, SuiteStore

OBJECTIVES = ("nsgan", "lsgan", "wgan")  # baseline first, then by name
QUALITY = {"wgan": 2, "lsgan": 1, "nsgan": 0}  # best to worst: another order
SEEDS = (0, 1, 2)
METRICS = ("fid", "m1", "m2", "m3", "m4", "m5", "m6")
DIRECTIONS = {"fid": "lower", **{m: "higher" for m in METRICS[1:]}}
HTML_COLUMN_PX = 1216  # report.html's <main>: at most 1280 px wide, 32 px padding each side


def values(objective: str, seed: int) -> dict[str, list[float]]:
    """Three evaluations (steps 100, 200, 300): fid falls from 300 to 5 for the best objective
    (5 + 10 per quality step below it, + seed), m1..m6 rise 30-fold to 0.1 to 0.3 by quality."""
    quality = QUALITY[objective]
    found = {"fid": [300.0, 60.0, 5.0 + 10.0 * (2 - quality) + seed]}
    for k, metric in enumerate(METRICS[1:]):
        final = 0.1 * (quality + 1) + 0.01 * (seed + k)
        found[metric] = [final / 30, final / 2, final]
    found["loss_d"] = [0.7, 0.69 + 0.01 * seed, 0.68]
    return found


@pytest.fixture(scope="module")
def seven(tmp_path_factory: pytest.TempPathFactory):
    """3 objectives x 3 seeds, 7 ranked metrics; nsgan seed 2 diverged after 2 evaluations and
    logged the `diverged` marker once; final.npy points for seed 0 of each objective."""
    store = SuiteStore(tmp_path_factory.mktemp("results") / "figures")
    store.write_suite_yaml("name: figures\nreport:\n  baseline: nsgan\n")
    rng = np.random.default_rng(0)
    for objective in OBJECTIVES:
        for seed in SEEDS:
            spec = make_spec(objective, seed, suite="figures")
            diverged = (objective, seed) == ("nsgan", 2)
            series = {m: v[:2] if diverged else v for m, v in values(objective, seed).items()}
            write_job(store, spec, status="diverged" if diverged else "done", values=series, train_s=1.0,
                      reason="loss_d is nan at step 250" if diverged else None)
            if diverged:
                store.job(spec.job_id).append_metrics([MetricRow(spec.job_id, 250, 2.5, "diverged", 1.0)])
            if seed == 0:
                store.job(spec.job_id).samples_dir.mkdir(parents=True)
                np.save(store.job(spec.job_id).samples_dir / "final.npy", rng.normal(0, 1, (300, 2)))
    result = build_report(store.root, directions=DIRECTIONS, failed_at={})
    return result, result.markdown.read_text(encoding="utf-8")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def caption_of(markdown: str, name: str) -> str:
    return re.search(rf"\]\(figures/{re.escape(name)}\)\n\n\*(.+)\*", markdown).group(1)


def test_every_ranked_metric_gets_its_figures(seven):
    result, markdown = seven
    names = {path.name for path in result.figures}
    for metric in METRICS:
        for name in (f"convergence_{metric}.png", f"final_{metric}.png"):
            assert name in names
            assert (result.report_dir / "figures" / name).exists()
            assert f"](figures/{name})" in markdown


def test_the_rank_heatmap_rows_follow_the_ranking_table(seven):
    result, markdown = seven
    table = [row["objective"] for row in table_after(markdown, "## Ranking")]
    assert table == sorted(OBJECTIVES, key=lambda o: -QUALITY[o])
    assert result.figure_files["ranks"].rows == tuple(table)
    assert table != list(OBJECTIVES)  # the order every other table uses: baseline first, then by name


def test_a_metric_falling_from_300_to_5_gets_a_log_axis(seven):
    _, markdown = seven
    # means from 300 (step 100) to wgan's 6 (step 300); the curves end at 6, 16 and 25.5: median 16 < sqrt(6 * 300)
    assert caption_of(markdown, "convergence_fid.png").endswith(
        "; y axis logarithmic for fid (positive values from 6 to 300, the final ones low in that range)).")
    # m1 rises 30-fold (0.0037 to 0.31) to final values high in that range: linear
    assert "logarithmic" not in caption_of(markdown, "convergence_m1.png")
    # final fid of the survivors: 5..26, under a decade
    assert "logarithmic" not in caption_of(markdown, "final_fid.png")


@pytest.mark.parametrize("values, finals, scale", [
    ([300.0, 20.0, 5.0], None, "log"),  # finals = values: median 20 < sqrt(5 * 300) = 38.7
    ([300.0, 60.0, 5.0], [5.0, 20.0], "log"),
    ([300.0, 60.0, 5.0], [60.0, 300.0], "linear"),  # finals high in the range
    ([0.03, 0.3, 0.6], [0.6], "linear"),  # rising to its final values
    ([300.0, 31.0], [31.0], "linear"),  # under a decade
    ([300.0, 5.0, 0.0], [5.0], "linear"),  # zero: no log
    ([300.0, -1.0, 5.0], [5.0], "linear"),
    ([300.0, np.nan, np.inf, 5.0], [5.0, np.nan], "log"),  # only finite values count
    ([], None, "linear"),
])
def test_y_scale_rule(values, finals, scale):
    assert y_scale(values, finals) == scale


def test_no_iqm_column_when_no_group_has_4_runs(seven):
    _, markdown = seven
    for metric in METRICS:
        rows = table_after(markdown, f"### {metric}")
        assert "final IQM" not in rows[0]
        assert "survivors' mean" in rows[0]
    assert markdown.count("IQM = mean below 4 runs") == 1
    assert "with no group of 4 runs or more the tables have no IQM column" in markdown


def test_groups_under_4_runs_read_n_below_4_in_the_iqm_column(tmp_path):
    store = SuiteStore(tmp_path / "mixed")
    store.write_suite_yaml("name: mixed\n")
    for objective, seeds in (("nsgan", range(4)), ("wgan", range(3))):
        for seed in seeds:
            write_job(store, make_spec(objective, seed, suite="mixed"), status="done", train_s=1.0,
                      values={"m1": [0.1, 0.2 + 0.01 * seed]})
    markdown = build_report(store.root, directions={"m1": "higher"}, failed_at={}).markdown.read_text(encoding="utf-8")
    rows = {row["objective"]: row for row in table_after(markdown, "### m1")}
    assert rows["wgan"]["final IQM"] == "n < 4"
    # 4 runs 0.20, 0.21, 0.22, 0.23: the middle two
    assert rows["nsgan"]["final IQM"] == "0.215"
    assert "IQM = mean below 4 runs (a 25% cut from each end removes no run), so the IQM column reads `n < 4` " \
           "for those groups." in markdown


def test_sample_panels_wrap_at_a_readable_size(tmp_path):
    objectives = ("nsgan", "hinge", "lsgan", "rsgan", "sgan", "wgan")
    rng = np.random.default_rng(0)
    rows = []
    for seed, objective in enumerate(objectives):
        np.save(tmp_path / f"{objective}.npy", rng.normal(0, 1, (200, 2)))
        rows.append({"cell": "mlp", "objective": objective, "seed": seed, "dataset": "ring8",
                     "path": tmp_path / f"{objective}.npy"})
    figure = points_figure(pd.DataFrame(rows), {"ring8": None}, ["mlp"], objectives, objective_palette(objectives),
                           tmp_path / "points.png")
    width, height = png_size(figure.path)
    # 6 objectives: 5 panels of 216 px to a row (before: 6 of 171 px), the row no wider than the report's column
    assert POINTS_INCHES * DPI >= 200
    assert SAMPLE_COLUMNS * POINTS_INCHES * DPI <= width <= HTML_COLUMN_PX
    assert height >= 2 * POINTS_INCHES * DPI


def test_final_value_panels_wrap_to_the_page(tmp_path):
    objectives = [f"objective{k}" for k in range(10)]
    cells = ["mlp", "mlp-deep", "mlp-sn", "mlp-wide"]
    scores = pd.DataFrame([{"metric": "fid", "cell": cell, "objective": objective, "survived": True,
                            "final": 10.0 + k + seed}
                           for cell in cells for k, objective in enumerate(objectives) for seed in range(3)])
    figure = distribution_figure(scores, "fid", cells, objectives, objective_palette(objectives),
                                 tmp_path / "final.png")
    width, height = png_size(figure.path)
    # 4 panels of 10 boxes: two to a row (side by side they take 1,870 px, shrunk to 60% on the page)
    assert width <= HTML_COLUMN_PX
    assert height >= 2 * 2.6 * DPI


def test_a_series_logged_once_per_run_is_named_not_drawn(seven):
    _, markdown = seven
    caption = caption_of(markdown, "training_curves.png")
    assert caption.startswith("loss_d (plotted, never ranked)")
    assert caption.endswith("; not drawn, one evaluation per run: diverged.")


def test_tile_images_lays_out_like_make_grid():
    images = np.array([10, 20, 30], dtype=np.uint8).reshape(3, 1, 1, 1)
    grid = tile_images(images, columns=2, padding=1)
    # two to a row, a 1-pixel black border around each; one channel shown as grey (three equal channels)
    expected = np.zeros((5, 5, 3), dtype=np.uint8)
    expected[1, 1], expected[1, 3], expected[3, 1] = 10, 20, 30
    np.testing.assert_array_equal(grid, expected)
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, H, W, C\) with N >= 1, got float64"):
        tile_images(np.zeros((1, 2, 2, 3)))


def test_final_samples_are_drawn_from_the_saved_arrays(tmp_path):
    store = SuiteStore(tmp_path / "drawn")
    points_job = store.job(make_spec("nsgan", 0).job_id)
    assert draw_final_samples(points_job, make_spec("nsgan", 0)) == []  # nothing saved, nothing drawn
    points_job.save_final_samples(np.random.default_rng(0).normal(0, 2, (100, 2)))
    assert draw_final_samples(points_job, make_spec("nsgan", 0)) == [points_job.final_points_path,
                                                                     points_job.final_figure_path]
    assert png_size(points_job.final_figure_path) == (400, 400)
    image_spec = make_spec("nsgan", 1, dataset="digits")
    image_job = store.job(image_spec.job_id)
    image_job.save_final_samples(np.full((5, 8, 8, 1), 200, dtype=np.uint8))
    assert draw_final_samples(image_job, image_spec) == [image_job.final_images_path, image_job.final_figure_path]
    assert png_size(image_job.final_figure_path) == (400, 400)


def test_mixture_centres_come_from_the_dataset_offers(tmp_path):
    centres = mixture_centres("ring8", {"radius": 3.0}, root=tmp_path)
    assert centres.shape == (8, 2)
    np.testing.assert_allclose(centres[0], [3.0, 0.0])
    assert mixture_centres("digits", {}, root=tmp_path) is None


def test_coverage_figure_with_no_surviving_run(tmp_path):
    """A cell whose every run failed to train leaves no bar, hence no legend to move (pacgan_mixtures'
    ring8 at 500 steps)."""
    scores = pd.DataFrame({"metric": ["modes_held"] * 2, "cell": ["mlp, dataset=ring8"] * 2,
                           "objective": ["nsgan"] * 2, "final": [0.0, 0.0], "survived": [False, False]})
    figure = coverage_figure(scores, "modes_held", ["mlp, dataset=ring8"], ["nsgan"],
                             objective_palette(["nsgan"]), tmp_path / "coverage.png")
    assert figure.path.is_file()
    assert "n = 0 seeds per bar" in figure.caption
