"""Signals, rules and options of `drive_timeline`, shared by its source readers and its grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

ODOMETRY_LIKE = ("nav_msgs/Odometry", "geometry_msgs/TwistWithCovarianceStamped")
TWIST_STAMPED = "geometry_msgs/TwistStamped"
GPS_FIX = "gps_common/GPSFix"
NAV_SAT_FIX = "sensor_msgs/NavSatFix"
IMU = "sensor_msgs/Imu"
# Velocity columns per speed source, best source first; speed is the horizontal norm of the vector.
SPEED_SOURCES: list[tuple[str, tuple[str, ...]]] = [
    ("odometry", ("twist.twist.linear.x", "twist.twist.linear.y")),
    ("twist", ("twist.linear.x", "twist.linear.y")),
    ("gps_speed", ("speed",)),
    ("gps_positions", ("latitude", "longitude")),
]
IMU_COLUMNS = {
    "accel_x": "linear_acceleration.x",
    "accel_y": "linear_acceleration.y",
    "accel_z": "linear_acceleration.z",
    "yaw_rate": "angular_velocity.z",
}
SIGNALS = ("speed_mps", *IMU_COLUMNS, "lat", "lon", "frame")
TIMELINE_COLUMNS = [
    "drive",
    "t_ns",
    "t_s",
    "speed_mps",
    *IMU_COLUMNS,
    "lat",
    "lon",
    "camera_topic",
    "frame_key",
    "frame_stamp_ns",
    "persons",
    "vehicles",
    "person_in_ego_lane",
    "vehicle_in_ego_lane",
    "min_lateral_offset",
    "ego_lanes",
    "ego_lane_offset",
    "brightness",
]
EARTH_RADIUS_M = 6_371_008.8


class TimelineError(ValueError):
    """A chosen topic or table cannot feed the timeline (names the topic and what is missing)."""


class SignalRule(BaseModel):
    """How one signal is put on the grid."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["interpolate", "asof"]
    # interpolate: the samples on both sides of a step are at most this far apart; asof: at most this old.
    max_gap_ms: float = Field(gt=0)
    # centred moving average over the raw samples first (IMU vibration), 0 = none
    smooth_ms: float = Field(0.0, ge=0)


DEFAULT_RULES: dict[str, SignalRule] = {
    # 1.5 s bridges 1 Hz GPS-derived speed; odometry at 50 Hz never needs it
    "speed_mps": SignalRule(method="interpolate", max_gap_ms=1500),
    **{s: SignalRule(method="interpolate", max_gap_ms=250, smooth_ms=100) for s in IMU_COLUMNS},
    "lat": SignalRule(method="interpolate", max_gap_ms=2500),
    "lon": SignalRule(method="interpolate", max_gap_ms=2500),
    # per-frame summaries: the last camera frame, if it is at most 200 ms old
    "frame": SignalRule(method="asof", max_gap_ms=200),
}


class DriveTimelineOptions(BaseModel):
    """Grid, sources and rules. A topic left None is chosen by message type (see `build_timeline`)."""

    model_config = ConfigDict(extra="forbid")
    grid_ms: float = Field(100.0, gt=0)
    time_base: Literal["header", "log"] = "header"  # header stamps (log time where a stamp is 0) or log time
    speed_topic: str | None = None
    imu_topic: str | None = None
    gps_topic: str | None = None
    camera_topic: str | None = (
        None  # the camera whose labels are summarised (None: a "front" one, else busiest)
    )
    person_classes: list[str] = ["person"]
    vehicle_classes: list[str] = ["car", "truck", "bus", "motorcycle", "bicycle", "train"]
    min_confidence: float = Field(0.0, ge=0, le=1)
    brightness_column: str = "brightness"  # in the frame index or the labels; NULL when neither has it
    rules: dict[str, SignalRule] = {}  # overrides of DEFAULT_RULES, by signal name

    @field_validator("rules")
    @classmethod
    def _known_signals(cls, rules: dict[str, SignalRule]) -> dict[str, SignalRule]:
        unknown = set(rules) - set(SIGNALS)
        if unknown:
            raise ValueError(f"rules for unknown signals {sorted(unknown)}; signals: {list(SIGNALS)}")
        if "frame" in rules and rules["frame"].method != "asof":
            raise ValueError(
                "the frame rule must be asof: counts and flags of a frame cannot be interpolated"
            )
        return rules

    def rule(self, signal: str) -> SignalRule:
        return self.rules.get(signal, DEFAULT_RULES[signal])


@dataclass
class DriveTimeline:
    table: pd.DataFrame  # TIMELINE_COLUMNS, one row per grid step
    sources: dict[str, str | None] = field(default_factory=dict)  # signal group -> "topic (how)"
