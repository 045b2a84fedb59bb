"""The shared chart primitives, and the inline (320 px) drawings of the timeline and signal pictures: drawn at
that width with print a person can read, not the full picture scaled down."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rosbag_assets.steps import report
from rosbag_assets.vision import chart, signal_plot, timeline
from rosbag_assets.vision.preview import caption

SECOND = 1_000_000_000


def test_fit_text_keeps_the_end_of_topics_and_the_start_of_names() -> None:
    topic = "/sensors/camera/front_left/image_raw/compressed"
    short = chart.fit_text(topic, 120, 0.4)
    assert short.startswith("..") and short.endswith("compressed") and chart.text_width(short, 0.4) <= 120
    rule = "person_in_ego_lane_ahead_while_moving"
    cut = chart.fit_text(rule, 90, 0.4, keep_end=False)
    assert cut.startswith("person") and cut.endswith("..") and chart.text_width(cut, 0.4) <= 90
    assert chart.fit_text("speed", 200, 0.4) == "speed"


def test_tick_step_is_round_and_bounded() -> None:
    for span in (0.9, 3.7, 61.0, 3600.0, 86_400.0):
        step = chart.tick_step(span, 8)
        mantissa = step / 10 ** np.floor(np.log10(step))
        assert round(mantissa, 6) in (1.0, 2.0, 5.0, 10.0)
        assert span / step <= 8 + 1e-9


def _rates(topics: int, seconds: int) -> tuple[list[dict], list[dict]]:
    bags = [{"bag": "a.bag", "start_ns": 0, "end_ns": seconds * SECOND}]
    rates = [
        {
            "bag": "a.bag",
            "topic": f"/t{k}/some/long/topic/name",
            "start_ns": i * SECOND,
            "bin_ns": SECOND,
            "count": 5,
        }
        for k in range(topics)
        for i in range(seconds)
    ]
    return bags, rates


def test_inline_timeline_is_drawn_at_inline_width_with_readable_rows() -> None:
    bags, rates = _rates(6, 30)
    full = timeline.draw_timeline(bags, rates)
    small = timeline.draw_timeline(bags, rates, timeline.INLINE)
    assert small.shape[1] == report.INLINE_WIDTH < full.shape[1]
    # a scaled copy of the full picture would be a third as tall; this one keeps rows >= 15 px
    assert small.shape[0] >= 6 * timeline.INLINE.row_h > full.shape[0] * report.INLINE_WIDTH / full.shape[1]
    # each topic row has its bars: coloured pixels in the plot area of every row
    top = small.shape[0] - timeline.INLINE.axis_h - 6 * timeline.INLINE.row_h
    for k in range(6):
        row = small[top + k * timeline.INLINE.row_h : top + (k + 1) * timeline.INLINE.row_h, 150:300].astype(
            int
        )
        assert (np.ptp(row, axis=2) > 60).any(), k


def test_inline_signals_drop_the_side_columns_but_keep_every_panel_and_band() -> None:
    t = np.arange(0, 20 * SECOND, SECOND // 10)
    table = pd.DataFrame(
        {
            "t_ns": t,
            "t_s": t / 1e9,
            "speed_mps": np.linspace(0, 10, len(t)),
            "yaw_rate": np.sin(t / 1e9),
            "accel_x": np.nan,
            "persons": np.where(t > 10 * SECOND, 2, 0),
            "person_in_ego_lane": np.where(t > 15 * SECOND, 1, 0),
            "vehicles": 1,
            "vehicle_in_ego_lane": 0,
        }
    )
    bands = {"hard_braking": [(2 * SECOND, 4 * SECOND)], "night": []}
    full = signal_plot.draw_signals(table, bands, title="full")
    small = signal_plot.draw_signals(table, bands, title="small", layout=signal_plot.INLINE)
    lay = signal_plot.INLINE
    assert small.shape[1] == report.INLINE_WIDTH < full.shape[1]
    assert small.shape[0] > full.shape[0] * report.INLINE_WIDTH / full.shape[1] * 1.5
    # the plot reaches the right edge (no value column) and the speed line rises to it
    top = round(lay.font * 58)
    speed = small[top : top + lay.panel_h, lay.width - 6 :].astype(int)
    near = np.abs(speed - np.array(signal_plot.LINES[0][3])).sum(axis=2) < 90
    assert near.any() and np.argwhere(near)[:, 0].max() < lay.panel_h / 2  # high at the end
    # the first band is drawn from 2 s to 4 s of 20 s
    bands_top = top + (len(signal_plot.LINES) + len(signal_plot.COUNTS)) * lay.panel_h
    plot_w = lay.width - lay.label_w
    mid = small[bands_top + lay.band_h // 2, lay.label_w : lay.width].astype(int)
    drawn = np.flatnonzero(np.abs(mid - np.array(chart.PALETTE[0])).sum(axis=1) < 30)
    assert abs(drawn.min() - plot_w * 0.1) <= 3 and abs(drawn.max() - plot_w * 0.2) <= 3


def test_caption_fits_long_topics_keeping_the_time() -> None:
    img = np.zeros((270, 480, 3), np.uint8)
    out = caption(img, "/sensors/camera/front_left/image_raw/compressed  10:00:01.250 UTC")
    strip = out[-20:, :, :].astype(int)
    assert strip.max() == 255  # text drawn
    assert not (strip[:, -3:] > 128).any()  # nothing runs off the right edge
