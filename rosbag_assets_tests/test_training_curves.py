"""The detector's training-curves picture: curves where the numbers are, gaps where they are not."""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pandas as pd

from rosbag_assets.steps import report
from rosbag_assets.vision import training_curves as tc

HEADER = (
    "epoch,time,train/box_loss,train/cls_loss,train/dfl_loss,metrics/precision(B),metrics/recall(B),"
    "metrics/mAP50(B),metrics/mAP50-95(B),val/box_loss,val/cls_loss,val/dfl_loss,lr/pg0,lr/pg1,lr/pg2"
)
LOSS_PANEL = slice(tc.HEADER_H, tc.HEADER_H + tc.PLOT_H + 1)
MAP_TOP = tc.HEADER_H + tc.PLOT_H + tc.GAP
MAP_PANEL = slice(MAP_TOP + tc.HEADER_H, MAP_TOP + tc.HEADER_H + tc.PLOT_H + 1)


def results_rows(epochs: int) -> list[dict]:
    """Rows as Ultralytics writes results.csv: losses falling, mAP rising over `epochs` epochs."""
    lines = [HEADER]
    for e in range(1, epochs + 1):
        decay = math.exp(-e / 12)
        lines.append(
            f"{e},{e * 3.1:.3f},{0.9 + 1.2 * decay:.5f},{0.6 + 2.4 * decay:.5f},{1.0 + 0.4 * decay:.5f},"
            f"0.6,0.5,{0.71 * (1 - decay):.5f},{0.44 * (1 - decay):.5f},{1.1 + decay:.5f},"
            f"{0.9 + 1.8 * decay:.5f},{1.2 + 0.3 * decay:.5f},0.001,0.001,0.001"
        )
    return pd.read_csv(io.StringIO("\n".join(lines))).to_dict("records")


def decoded(rows: list[dict]) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(tc.training_curves_png(rows), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (tc.HEIGHT, tc.WIDTH, 3)
    return img


def colour_mask(img: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.abs(img.astype(int) - np.array(colour)).sum(axis=2) < 40


def columns_with(img: np.ndarray, rows: slice, colour: tuple[int, int, int]) -> np.ndarray:
    """The x of the plot columns where `colour` is drawn inside the panel `rows`."""
    plot = colour_mask(img[rows, tc.LEFT + 1 : tc.WIDTH - tc.RIGHT], colour)
    return np.flatnonzero(plot.any(axis=0)) + tc.LEFT + 1


def test_fifty_epochs_draw_falling_losses_and_rising_map_across_the_plot() -> None:
    img = decoded(results_rows(50))
    plot_w = tc.WIDTH - tc.RIGHT - tc.LEFT
    for rows, colour in ((LOSS_PANEL, tc.TRAIN), (LOSS_PANEL, tc.VAL), (MAP_PANEL, tc.MAP50),
                         (MAP_PANEL, tc.MAP50_95)):  # fmt: skip
        xs = columns_with(img, rows, colour)
        assert len(xs) > 0.9 * (plot_w - 20), colour  # a line from the first epoch to the last
    train = colour_mask(img[LOSS_PANEL], tc.TRAIN)
    first, last = columns_with(img, LOSS_PANEL, tc.TRAIN)[[0, -1]]
    # image rows grow downwards: the falling loss starts high, the rising mAP starts low
    assert np.flatnonzero(train[:, first]).mean() < np.flatnonzero(train[:, last]).mean()
    map50 = colour_mask(img[MAP_PANEL], tc.MAP50)
    first, last = columns_with(img, MAP_PANEL, tc.MAP50)[[0, -1]]
    assert np.flatnonzero(map50[:, first]).mean() > np.flatnonzero(map50[:, last]).mean()
    # shown at the inline width the curves survive the downscale
    small = cv2.imdecode(
        np.frombuffer(report.fit_width(tc.training_curves_png(results_rows(50)), 320, "image/png"), np.uint8),
        cv2.IMREAD_COLOR,
    )
    assert small.shape[1] == 320 and colour_mask(small, tc.MAP50_95).sum() > 100


def test_one_epoch_draws_points() -> None:
    img = decoded(results_rows(1))
    for rows, colour in ((LOSS_PANEL, tc.TRAIN), (LOSS_PANEL, tc.VAL), (MAP_PANEL, tc.MAP50)):
        xs = columns_with(img, rows, colour)
        assert 0 < len(xs) <= 2 * (tc.LINE + 2) + 3, colour  # one dot, not a line
        assert abs(xs.mean() - (tc.LEFT + (tc.WIDTH - tc.RIGHT - tc.LEFT) / 2)) < 4  # in the middle


def test_nan_leaves_a_gap_and_missing_columns_draw_nothing() -> None:
    rows = results_rows(30)
    rows[14]["metrics/mAP50-95(B)"] = float("nan")
    for row in rows:
        for name in tc.VAL_LOSSES:
            del row[name]
    img = decoded(rows)
    xs = columns_with(img, MAP_PANEL, tc.MAP50_95)
    gaps = np.flatnonzero(np.diff(xs) > 5)
    assert len(gaps) == 1  # the NaN epoch (15 of 30) is the one gap, around the middle
    assert abs(xs[gaps[0]] - (tc.LEFT + tc.WIDTH - tc.RIGHT) / 2) < 40
    assert len(columns_with(img, LOSS_PANEL, tc.VAL)) == 0  # no val losses recorded: no val line
    assert len(columns_with(img, LOSS_PANEL, tc.TRAIN)) > 400
    # no metrics at all (and values as text, as a CSV with blanks gives them): losses still drawn
    bare = [{"epoch": str(r["epoch"]), "train/box_loss": str(r["train/box_loss"])} for r in rows]
    img = decoded(bare)
    assert len(columns_with(img, MAP_PANEL, tc.MAP50)) == 0
    assert len(columns_with(img, LOSS_PANEL, tc.TRAIN)) > 400


def test_no_rows_is_still_a_picture() -> None:
    img = decoded([])
    assert (img != 255).any()  # says so instead of an empty frame
