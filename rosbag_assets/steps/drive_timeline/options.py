"""Signals, rules and options of `drive_timeline`, shared by its source readers and its grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:  # pandas only annotates: the code location imports this module (the Launchpad config)
    import pandas as pd

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
    method: Literal["interpolate", "asof"] = Field(
        description="interpolate: linear between the samples around a grid step; asof: the last sample"
    )
    max_gap_ms: float = Field(
        gt=0,
        description="interpolate: the samples on both sides of a step are at most this far apart; "
        "asof: the sample is at most this old. Beyond it the signal is NULL, never bridged",
    )
    smooth_ms: float = Field(
        0.0, ge=0, description="centred moving average over the raw samples first (IMU vibration); 0: none"
    )


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
    """How `drive_timeline` builds the grid: the step's options and the asset's Launchpad config.

    A topic left unset is chosen by message type (see `build_timeline`).
    """

    model_config = ConfigDict(extra="forbid")
    grid_ms: float = Field(100.0, gt=0, description="grid step in milliseconds")
    time_base: Literal["header", "log"] = Field(
        "header", description="header stamps (log time where a stamp is 0) or bag log time"
    )
    speed_topic: str | None = Field(None, description="speed source topic; default: chosen by message type")
    imu_topic: str | None = Field(None, description="IMU topic; default: chosen by message type")
    gps_topic: str | None = Field(None, description="GPS topic; default: chosen by message type")
    camera_topic: str | None = Field(
        None, description="camera whose labels are summarised; default: a 'front' one, else the busiest"
    )
    person_classes: list[str] = Field(["person"], description="label classes counted as persons")
    vehicle_classes: list[str] = Field(
        ["car", "truck", "bus", "motorcycle", "bicycle", "train"],
        description="label classes counted as vehicles",
    )
    min_confidence: float = Field(0.0, ge=0, le=1, description="ignore labels below this confidence")
    brightness_column: str = Field(
        "brightness", description="column of the frame index or the labels giving image brightness (0-255)"
    )
    rules: dict[str, SignalRule] = Field(
        {name: rule.model_dump() for name, rule in DEFAULT_RULES.items()},
        validate_default=True,
        description=f"how each signal is put on the grid, by signal ({', '.join(SIGNALS)}); a signal "
        "left out keeps its default rule; 'frame' (the per-frame summaries) must be asof",
    )

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
