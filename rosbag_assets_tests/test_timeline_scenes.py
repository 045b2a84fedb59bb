"""drive_timeline and scenes on a synthetic drive whose events are known, and on a real IMU recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rosbag_assets.steps.drive_timeline import (
    DriveTimelineOptions,
    SignalRule,
    TimelineError,
    align,
    build_timeline,
)
from rosbag_assets.steps.scenes import SceneRule, SceneRuleError, find_scenes, load_rules, ranges

EPOCH = 1_714_557_600 * 10**9
S = 10**9
CAMERA = "/camera/front/image_raw"
W, H = 1280, 720


def speed_at(t: np.ndarray) -> np.ndarray:
    """10 m/s, braking at -5 m/s^2 from 3 s to 5 s, stopped 5-8 s, then +3 m/s^2."""
    return np.select([t < 3, t < 5, t < 8], [10.0, 10 - 5 * (t - 3), 0.0], 3 * (t - 8))


def accel_at(t: np.ndarray) -> np.ndarray:
    return np.select([t < 3, t < 5, t < 8], [0.0, -5.0, 0.0], 3.0)


def lane_offset_at(t: float) -> float:
    """Centred, drifting right from 8.0 s, crossing the right line at 8.5 s, centred again by 9.0 s."""
    if 8.0 <= t < 8.5:
        return 0.9 * (t - 8.0)
    if 8.5 <= t < 9.0:
        return -0.45 + 0.9 * (t - 8.5)
    return 0.0


def synthetic_drive(
    drive: str = "synth", seconds: float = 10.0, epoch: int = EPOCH
) -> dict[str, pd.DataFrame]:
    """Topic tables, frame index, object and lane labels of a drive with known events.

    person in the ego lane 1.0-2.0 s, a vehicle in the ego lane 2.0-4.0 s, a person beside the lane
    6.0-7.0 s, hard braking 3-5 s, stopped 5-8 s, lane change at 8.5 s, dark frames from 4.0 s.
    """

    def topic(hz: float, latency_ms: float, **fields) -> pd.DataFrame:
        t = np.arange(0, seconds, 1 / hz)
        stamp = epoch + np.round(t * S).astype(np.int64)
        cols = {k: f(t) if callable(f) else np.full(len(t), f) for k, f in fields.items()}
        return pd.DataFrame({"log_time_ns": stamp + int(latency_ms * 1e6), "header_stamp_ns": stamp, **cols})

    metres_per_deg = 111_195.0
    distance = lambda t: np.cumsum(speed_at(t)) / 5.0  # noqa: E731 (5 Hz fixes)
    topics = {
        "/odom": topic(50, 2, **{"twist.twist.linear.x": speed_at, "twist.twist.linear.y": 0.0}),
        "/imu/data": topic(
            100,
            1,
            **{
                "linear_acceleration.x": accel_at,
                "linear_acceleration.y": 0.0,
                "linear_acceleration.z": 9.81,
                "angular_velocity.z": 0.01,
            },
        ),
        "/gps/fix": topic(
            5,
            30,
            **{
                "latitude": lambda t: 48.0 + distance(t) / metres_per_deg,
                "longitude": 11.0,
                "status.status": 0,
            },
        ),
        "/cmd_vel": topic(10, 1, **{"twist.linear.x": 99.0, "twist.linear.y": 0.0}),
    }
    types = {
        "/odom": "nav_msgs/msg/Odometry",
        "/imu/data": "sensor_msgs/msg/Imu",
        "/gps/fix": "sensor_msgs/msg/NavSatFix",
        "/cmd_vel": "geometry_msgs/msg/TwistStamped",
    }
    ft = np.round(np.arange(0, seconds, 0.1), 3)
    stamps = epoch + np.round(ft * S).astype(np.int64)
    keys = [f"frames/b0/{CAMERA.strip('/')}/{s}.jpg" for s in stamps]
    frames = pd.DataFrame(
        {
            "drive": drive,
            "bag": "b0",
            "topic": CAMERA,
            "stamp_ns": stamps,
            "log_time_ns": stamps + 15_000_000,
            "width": W,
            "height": H,
            "encoding": "jpeg",
            "format": "jpg",
            "frame_key": keys,
            "data_key": "frames/b0/shard-00000.tar",
            "offset": np.arange(len(ft)) * 1000,
            "bytes": 1000,
            "path": "/nowhere/shard-00000.tar",
            "brightness": np.where(ft >= 4.0, 30.0, 120.0),
        }
    )
    labels = []

    def label(i: int, cls: str, in_lane: bool, offset: float, box: tuple[float, float, float, float]) -> None:
        x1, y1, x2, y2 = box
        labels.append(
            {
                "drive": drive,
                "bag": "b0",
                "topic": CAMERA,
                "stamp_ns": int(stamps[i]),
                "frame_key": keys[i],
                "image_width": W,
                "image_height": H,
                "class_id": 0 if cls == "person" else 2,
                "class_name": cls,
                "confidence": 0.8,
                "x1": x1,
                "y1": y1,
                "x2": x2,
                "y2": y2,
                "x1n": x1 / W,
                "y1n": y1 / H,
                "x2n": x2 / W,
                "y2n": y2 / H,
                "model": "synthetic",
                "weights_uri": "",
                "weights_sha256": "",
                "in_ego_lane": in_lane,
                "lateral_offset": offset,
                "drivable_fraction": 0.9 if in_lane else 0.1,
            }
        )

    for i, t in enumerate(ft):
        if 1.0 <= t < 2.0:
            label(i, "person", True, 0.3, (600, 300, 680, 500))
        if 2.0 <= t < 4.0:
            label(i, "car", True, 0.1, (540, 350, 740, 480))
        if 6.0 <= t < 7.0:
            label(i, "person", False, 3.5, (1000, 300, 1060, 480))
    lanes = []
    for i, t in enumerate(ft):
        centre = W / 2 - lane_offset_at(float(t)) * 400
        for side, x in (("left", centre - 200), ("right", centre + 200)):
            lanes.append(
                {
                    "drive": drive,
                    "bag": "b0",
                    "topic": CAMERA,
                    "stamp_ns": int(stamps[i]),
                    "frame_key": keys[i],
                    "image_width": W,
                    "image_height": H,
                    "lane_id": 0 if side == "left" else 1,
                    "side": side,
                    "score": 0.9,
                    "points": [[float(x), float(H)], [float(W / 2 + (x - W / 2) * 0.2), 420.0]],
                    "model": "synthetic",
                }
            )
    return {
        "topics": topics,
        "types": types,
        "frames": frames,
        "labels": pd.DataFrame(labels),
        "lanes": pd.DataFrame(lanes),
    }


def timeline_of(d: dict, drive: str = "synth", **options) -> pd.DataFrame:
    return build_timeline(
        drive,
        d["topics"],
        topic_types=d["types"],
        labels=d["labels"],
        lanes=d["lanes"],
        frames=d["frames"],
        options=options,
    ).table


def at(tl: pd.DataFrame, seconds: float) -> pd.Series:
    return tl.iloc[int(np.argmin(np.abs(tl["t_s"].to_numpy() - seconds)))]


@pytest.fixture(scope="module")
def drive() -> dict:
    return synthetic_drive()


@pytest.fixture(scope="module")
def timeline(drive: dict) -> pd.DataFrame:
    return timeline_of(drive)


def test_timeline_puts_every_signal_on_the_grid(drive: dict, timeline: pd.DataFrame) -> None:
    result = build_timeline("synth", drive["topics"], topic_types=drive["types"], frames=drive["frames"])
    assert result.sources["speed"] == "/odom (odometry)"  # not the /cmd_vel command, though it is a Twist
    assert result.sources["imu"] == "/imu/data" and result.sources["gps"] == "/gps/fix"
    assert result.sources["camera"] == CAMERA
    tl = timeline
    assert np.all(np.diff(tl["t_ns"]) == 100_000_000) and tl["t_ns"].iloc[0] == EPOCH
    assert len(tl) == 100
    steps = tl["t_s"].to_numpy()
    np.testing.assert_allclose(tl["speed_mps"], speed_at(steps), atol=1e-9)
    assert at(tl, 4.0)["accel_x"] == pytest.approx(-5.0)
    assert at(tl, 1.0)["accel_z"] == pytest.approx(9.81)
    assert at(tl, 0.0)["lat"] == pytest.approx(48.0 + 2.0 / 111_195.0)
    row = at(tl, 1.5)
    assert (row["persons"], row["vehicles"], row["person_in_ego_lane"]) == (1, 0, True)
    assert row["min_lateral_offset"] == pytest.approx(0.3)
    assert row["frame_key"].endswith(f"{EPOCH + 15 * S // 10}.jpg")
    row = at(tl, 6.5)  # a person beside the lane: counted, not in the lane
    assert (row["persons"], row["person_in_ego_lane"], row["min_lateral_offset"]) == (1, False, 3.5)
    row = at(tl, 0.5)  # a frame without detections: zero, not unknown
    assert (row["persons"], row["vehicles"], row["person_in_ego_lane"]) == (0, 0, False)
    assert row["ego_lanes"] == 2 and row["ego_lane_offset"] == pytest.approx(0.0, abs=1e-9)
    assert at(tl, 8.3)["ego_lane_offset"] == pytest.approx(0.27, abs=1e-6)
    assert (at(tl, 3.0)["brightness"], at(tl, 5.0)["brightness"]) == (120.0, 30.0)


def test_speed_falls_back_to_gps_positions(drive: dict) -> None:
    topics = {k: v for k, v in drive["topics"].items() if k != "/odom"}
    result = build_timeline("synth", topics, topic_types=drive["types"])
    assert result.sources["speed"] == "/gps/fix (speed derived from positions)"
    tl = result.table
    cruising = tl[(tl["t_s"] > 0.5) & (tl["t_s"] < 2.5)]["speed_mps"]
    np.testing.assert_allclose(cruising, 10.0, atol=0.05)
    assert at(tl, 6.5)["speed_mps"] == pytest.approx(0.0, abs=0.05)


def test_types_are_optional_fields_tell(drive: dict) -> None:
    result = build_timeline("synth", drive["topics"])
    assert result.sources["speed"] == "/odom (odometry)" and result.sources["imu"] == "/imu/data"


def test_gap_rules_leave_holes_instead_of_guessing(drive: dict) -> None:
    odom = drive["topics"]["/odom"]
    rel = (odom["header_stamp_ns"] - EPOCH) / S
    topics = {"/odom": odom[(rel < 6.0) | (rel > 7.0)]}
    strict = build_timeline(
        "synth", topics, options={"rules": {"speed_mps": {"method": "interpolate", "max_gap_ms": 500}}}
    )
    assert np.isnan(at(strict.table, 6.5)["speed_mps"]) and at(strict.table, 5.5)["speed_mps"] == 0.0
    loose = build_timeline(
        "synth", topics, options={"rules": {"speed_mps": {"method": "interpolate", "max_gap_ms": 1500}}}
    )
    assert at(loose.table, 6.5)["speed_mps"] == pytest.approx(0.0)


def test_align_interpolates_and_holds_by_rule() -> None:
    t = np.array([0, 100, 300, 1000], np.int64) * 1_000_000
    v = np.array([0.0, 1.0, 3.0, 10.0])
    grid = np.array([0, 50, 200, 299, 650, 1000, 1100], np.int64) * 1_000_000
    lin = align(t, v, grid, SignalRule(method="interpolate", max_gap_ms=250))
    np.testing.assert_allclose(lin[:4], [0.0, 0.5, 2.0, 2.99])
    assert np.isnan(lin[4]) and lin[5] == 10.0 and np.isnan(lin[6])  # 700 ms gap; past the end
    held = align(t, v, grid, SignalRule(method="asof", max_gap_ms=150))
    np.testing.assert_allclose(held[[0, 1, 2, 5, 6]], [0.0, 0.0, 1.0, 10.0, 10.0])
    assert np.isnan(held[3]) and np.isnan(held[4])  # 199 ms and 350 ms old


def test_frames_without_the_index_and_options_errors(drive: dict) -> None:
    tl = build_timeline("synth", {}, labels=drive["labels"]).table  # only labelled frames are known
    assert (tl["t_ns"].iloc[0], tl["t_ns"].iloc[-1]) == (EPOCH + S, EPOCH + 69 * S // 10)
    assert at(tl, 0.5)["persons"] == 1 and at(tl, 1.5)["vehicles"] == 1
    assert pd.isna(at(tl, 4.0)["persons"]) and pd.isna(at(tl, 4.0)["frame_key"])  # unknown, not 0
    with pytest.raises(ValueError, match="unknown signals"):
        DriveTimelineOptions(rules={"speed": {"method": "asof", "max_gap_ms": 100}})
    with pytest.raises(ValueError, match="frame rule must be asof"):
        DriveTimelineOptions(rules={"frame": {"method": "interpolate", "max_gap_ms": 100}})
    with pytest.raises(TimelineError, match="/imu/data lacks fields"):
        build_timeline(
            "synth", {"/imu/data": drive["topics"]["/gps/fix"]}, options={"imu_topic": "/imu/data"}
        )


def test_default_scenes_are_where_the_events_are(timeline: pd.DataFrame) -> None:
    scenes = find_scenes(timeline)
    by_rule = {rule: g.reset_index(drop=True) for rule, g in scenes.groupby("rule")}

    def span(rule: str) -> tuple[float, float]:
        (row,) = by_rule[rule].to_dict("records")
        return (row["start_ns"] - EPOCH) / S, (row["end_ns"] - EPOCH) / S

    assert span("person_in_ego_lane") == (1.0, 2.0)
    person = by_rule["person_in_ego_lane"].iloc[0]
    assert len(person["frame_keys"]) == 10 and person["frame_keys"][0].endswith(f"{EPOCH + S}.jpg")
    assert person["scene_id"] == f"synth:person_in_ego_lane:{EPOCH + S}" and person["duration_s"] == 1.0
    assert span("vehicle_in_ego_lane_ahead") == (2.0, 4.0)
    start, end = span("hard_braking")  # the 100 ms IMU smoothing blurs each edge by at most one step
    assert 3.0 <= start <= 3.1 and 4.9 <= end <= 5.0
    assert span("ego_stopped") == (5.0, 8.1)
    start, end = span("lane_change")  # the crossing step at 8.5 s, padded by 1 s
    assert (start, end) == (7.5, 9.6)
    assert span("night") == (4.0, 10.0)
    assert set(by_rule) == {
        "person_in_ego_lane",
        "vehicle_in_ego_lane_ahead",
        "hard_braking",
        "ego_stopped",
        "lane_change",
        "night",
    }


def test_user_rules_from_yaml_without_code(tmp_path: Path, timeline: pd.DataFrame) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "rules:\n"
        "  person_beside_road:\n"
        "    when: persons > 0 AND NOT person_in_ego_lane\n"
        "  night:\n"
        "    when: brightness < 50 AND speed_mps > 1\n"
        "    min_duration_s: 0.5\n"
    )
    rules = load_rules(mine)
    assert "ego_stopped" in rules and rules["night"].min_duration_s == 0.5
    scenes = find_scenes(timeline, rules)
    beside = scenes[scenes["rule"] == "person_beside_road"]
    assert [(r.start_ns - EPOCH, r.end_ns - EPOCH) for r in beside.itertuples()] == [(6 * S, 7 * S)]
    night = scenes[scenes["rule"] == "night"]  # dark and faster than 1 m/s: while braking, after 8.33 s
    assert [((r.start_ns - EPOCH) / S, (r.end_ns - EPOCH) / S) for r in night.itertuples()] == [
        (4.0, 4.8),
        (8.4, 10.0),
    ]


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("persons > 0 AND speed > 3", "scene rule bad: unknown column 'speed'"),
        ("speed_mps + 1", "gives DOUBLE, not true/false"),
        ("true; DROP TABLE timeline", "';' is not allowed"),
        ("persons >", "scene rule bad: syntax error"),
    ],
)
def test_bad_rules_are_refused_by_name(timeline: pd.DataFrame, when: str, message: str) -> None:
    with pytest.raises(SceneRuleError, match=message):
        find_scenes(timeline, {"bad": SceneRule(when=when)})


def test_ranges_merge_then_filter_then_pad() -> None:
    t = np.arange(20, dtype=np.int64) * 100_000_000
    hit = np.zeros(20, bool)
    hit[[2, 3, 5, 10]] = True  # runs [0.2,0.4) [0.5,0.6) [1.0,1.1)
    runs = [(200_000_000, 400_000_000), (500_000_000, 600_000_000), (1_000_000_000, 1_100_000_000)]
    assert ranges(t, hit, 100_000_000, SceneRule(when="x")) == runs
    merged = ranges(t, hit, 100_000_000, SceneRule(when="x", merge_gap_s=0.1, min_duration_s=0.3))
    assert merged == [(200_000_000, 600_000_000)]
    padded = ranges(t, hit, 100_000_000, SceneRule(when="x", pad_s=0.3))
    assert padded == [(0, 1_400_000_000)]


def test_real_imu_recording_on_header_and_log_clocks() -> None:
    """tiny_svo.bag: a real 100 Hz IMU whose header stamps (2013) and log times (2023) differ by 10 years."""
    from conftest import shared
    from rosbags.highlevel import AnyReader

    bag = shared("bags", "ros1", "tiny_svo.bag")
    rows = []
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == "/imu/data"]
        for conn, log_ns, raw in reader.messages(connections=conns):
            m = reader.deserialize(raw, conn.msgtype)
            rows.append(
                {
                    "log_time_ns": log_ns,
                    "header_stamp_ns": m.header.stamp.sec * S + m.header.stamp.nanosec,
                    "linear_acceleration.x": m.linear_acceleration.x,
                    "linear_acceleration.y": m.linear_acceleration.y,
                    "linear_acceleration.z": m.linear_acceleration.z,
                    "angular_velocity.z": m.angular_velocity.z,
                }
            )
    imu = pd.DataFrame(rows)
    types = {"/imu/data": "sensor_msgs/msg/Imu"}
    opts = {"grid_ms": 20}
    header = build_timeline("svo", {"/imu/data": imu}, topic_types=types, options=opts).table
    log = build_timeline(
        "svo", {"/imu/data": imu}, topic_types=types, options={**opts, "time_base": "log"}
    ).table
    assert header["t_ns"].iloc[0] // S == imu["header_stamp_ns"].min() // S
    assert log["t_ns"].iloc[0] // S == imu["log_time_ns"].min() // S
    assert header["accel_z"].notna().sum() >= len(header) - 2
    # the camera looks down on gravity: about -9.6 m/s^2 on z, whichever clock
    assert header["accel_z"].mean() == pytest.approx(imu["linear_acceleration.z"].mean(), abs=0.3)
    assert header["speed_mps"].isna().all()  # no speed source: NULL, never 0


def test_lane_lines_are_extended_to_the_image_bottom() -> None:
    import pyarrow as pa

    from rosbag_assets.steps.drive_timeline.frames import _lanes_with_bottom_x

    points = [
        [
            [600.0, 400.0],
            [500.0, 600.0],
            [550.0, 500.0],
        ],  # unordered; the two lowest give 2 px of x per px of y
        [[700.0, 650.0]],  # one point: its x
        [],  # nothing found
    ]
    lanes = pa.table({"image_height": [700, 700, 700], "points": points})
    bottom = _lanes_with_bottom_x(lanes)["x_bottom"].to_numpy()
    assert bottom[0] == pytest.approx(450.0) and bottom[1] == 700.0 and np.isnan(bottom[2])


def test_launchpad_configs_are_the_step_options_including_signal_rules() -> None:
    """One model per step: what the Launchpad offers (per-signal rules too) is what the step accepts."""
    import dagster as dg

    from rosbag_assets.defs.catalog import CatalogConfig
    from rosbag_assets.defs.topics import DriveTimelineConfig, ScenesConfig, SignalRuleConfig
    from rosbag_assets.steps.catalog.run import CatalogOptions
    from rosbag_assets.steps.drive_timeline.options import DEFAULT_RULES
    from rosbag_assets.steps.scenes import ScenesOptions

    for config, options in [
        (DriveTimelineConfig, DriveTimelineOptions),
        (ScenesConfig, ScenesOptions),
        (CatalogConfig, CatalogOptions),
    ]:
        assert issubclass(config, options)
        schema = config.to_config_schema().as_field().config_type.fields
        assert set(schema) == set(options.model_fields), config
        undocumented = [n for n, f in options.model_fields.items() if not f.description]
        assert not undocumented, f"{options.__name__}: fields without a description: {undocumented}"
        options.model_validate(config().model_dump())
    rules = DriveTimelineConfig.to_config_schema().as_field().config_type.fields["rules"]
    shape = rules.config_type.inner_type.inner_type  # Noneable(Map(str, Shape))
    assert set(shape.fields) == set(SignalRule.model_fields) and issubclass(SignalRuleConfig, SignalRule)
    assert all(f.description for f in SignalRule.model_fields.values())
    assert rules.default_value == {k: r.model_dump() for k, r in DEFAULT_RULES.items()}

    seen = {}

    def body(config) -> None:  # the module's string annotations cannot name a local class
        seen["options"] = DriveTimelineOptions.model_validate(config.model_dump(exclude_none=True))

    body.__annotations__ = {"config": DriveTimelineConfig, "return": None}
    probe = dg.asset(name="probe")(body)

    loose = {"method": "interpolate", "max_gap_ms": 4000}
    run_config = {"ops": {"probe": {"config": {"rules": {"speed_mps": loose}}}}}
    assert dg.materialize([probe], run_config=run_config).success
    assert seen["options"].rule("speed_mps").max_gap_ms == 4000
    assert seen["options"].rule("frame") == DEFAULT_RULES["frame"]  # left out: its default
    with pytest.raises(dg.DagsterInvalidConfigError, match="not in enum"):
        bad = {"rules": {"speed_mps": {"method": "nearest", "max_gap_ms": 1}}}
        dg.materialize([probe], run_config={"ops": {"probe": {"config": bad}}})
    with pytest.raises(ValueError, match="frame rule must be asof"):
        DriveTimelineConfig(rules={"frame": {"method": "interpolate", "max_gap_ms": 100}})


def test_timeline_checks_catch_a_broken_grid_and_clocks_that_never_meet(drive: dict) -> None:
    from rosbag_assets.steps.drive_timeline.run import timeline_checks

    def outcomes(result) -> dict[str, bool]:
        return {c.name: c.passed for c in timeline_checks(result.table, result.sources, 100_000_000)}

    args = {"topic_types": drive["types"], "labels": drive["labels"], "frames": drive["frames"]}
    good = build_timeline("synth", drive["topics"], **args)
    assert outcomes(good) == {"grid_is_regular": True, "speed_meets_frames": True}
    holes = good.table.drop(index=[10, 11])
    checks = {c.name: c for c in timeline_checks(holes, good.sources, 100_000_000)}
    assert not checks["grid_is_regular"].passed
    assert checks["grid_is_regular"].metadata["irregular_steps"]["raw_value"] == 1
    # odometry stamped on another clock (an hour off): speed exists but never at a camera frame
    odom = drive["topics"]["/odom"].copy()
    odom["header_stamp_ns"] += 3600 * S
    odom["log_time_ns"] += 3600 * S
    apart = build_timeline("synth", {**drive["topics"], "/odom": odom}, **args)
    assert apart.table["speed_mps"].notna().any()
    (speed,) = [
        c for c in timeline_checks(apart.table, apart.sources, 100_000_000) if c.name.startswith("sp")
    ]
    assert not speed.passed and speed.severity == "ERROR" and "clocks do not match" in speed.description
    # the same clock, but odometry dies before the camera starts: a gap, not a clock error, so it warns
    early = drive["topics"]["/odom"]
    early = early[early["header_stamp_ns"] < EPOCH + S // 2]
    late_frames = args | {"frames": drive["frames"][drive["frames"]["stamp_ns"] >= EPOCH + 3 * S]}
    gap = build_timeline("synth", {**drive["topics"], "/odom": early}, **late_frames)
    (speed,) = [c for c in timeline_checks(gap.table, gap.sources, 100_000_000) if c.name.startswith("sp")]
    assert (
        not speed.passed and speed.severity == "WARN" and "missing at every camera frame" in speed.description
    )
    # no speed topic at all: explicitly absent, which passes
    imu_only = build_timeline("synth", {"/imu/data": drive["topics"]["/imu/data"]}, **args)
    (speed,) = [
        c for c in timeline_checks(imu_only.table, imu_only.sources, 100_000_000) if "speed" in c.name
    ]
    assert speed.passed and speed.metadata["speed_source"]["raw_value"] == "absent"


def test_signal_picture_draws_signals_and_scene_bands_where_they_are(timeline: pd.DataFrame) -> None:
    import cv2

    from rosbag_assets.vision import signal_plot as sp

    scenes = find_scenes(timeline)
    bands = {r: list(zip(g["start_ns"], g["end_ns"], strict=True)) for r, g in scenes.groupby("rule")}
    img = sp.draw_signals(timeline, bands, title="synth")
    assert img.shape[1] == sp.WIDTH and img.shape[0] < 600
    plot_w = sp.WIDTH - sp.LABEL_W - sp.RIGHT_W
    span = (timeline["t_ns"].iloc[-1] - timeline["t_ns"].iloc[0]) / S

    def x(seconds: float) -> int:
        return sp.LABEL_W + round(seconds / span * (plot_w - 1))

    top = 22
    band_top = top + (len(sp.LINES) + len(sp.COUNTS)) * sp.PANEL_H
    row = list(bands).index("person_in_ego_lane")
    y = band_top + row * sp.BAND_H + sp.BAND_H // 2
    colour = sp.PALETTE[row]
    assert tuple(img[y, x(1.5)]) == colour and tuple(img[y, x(5.0)]) != colour  # 1.0-2.0 s only
    # the speed line: high (near the panel top) while cruising at 10 m/s, at the bottom while stopped
    panel = img[top : top + sp.PANEL_H].astype(int)

    def line_y(seconds: float) -> int:  # the darkest pixel of the column: where the line crosses it
        return int(np.argmin(panel[:, x(seconds)].sum(axis=1)))

    assert line_y(1.0) < sp.PANEL_H / 4 and line_y(6.5) > sp.PANEL_H * 3 / 4
    # persons in the ego lane (1-2 s) are red bars; the person beside the lane (6-7 s) is grey
    persons = img[top + len(sp.LINES) * sp.PANEL_H : top + (len(sp.LINES) + 1) * sp.PANEL_H]
    assert (persons[:, x(1.5)] == sp.IN_LANE).all(axis=1).any()
    assert not (persons[:, x(6.5)] == sp.IN_LANE).all(axis=1).any()
    assert (persons[:, x(6.5)] == sp.COUNT).all(axis=1).any()
    blank = sp.draw_signals(timeline.assign(speed_mps=np.nan))[top : top + sp.PANEL_H, x(1.0)].astype(int)
    assert blank.sum(axis=1).min() >= 3 * 225  # no line where the signal is NULL, only the panel and grid
    assert cv2.imencode(".png", img)[0]
