"""`drive_timeline`: a drive's chosen signals on one fixed time grid (default 100 ms).

Topics are recorded at their own rates (IMU 100 Hz, GPS 1-10 Hz, cameras 10-30 Hz) and jitter, so rules
over several signals ("a person in the ego lane while the car moves") need them on common instants. Each
signal has an explicit rule: `interpolate` (linear between the samples around a grid step, if they are at
most `max_gap_ms` apart) or `asof` (the last sample, if at most `max_gap_ms` old). Nothing is
extrapolated or bridged over longer gaps: a missing signal is NULL, not a guess.

Alignment is numpy `searchsorted` over sorted sample times. `bench/timeline.py` (one hour of 100 Hz IMU
onto a 100 ms grid, 2-core VM under load): numpy incl. sorting 57-69 ms, pandas `merge_asof` (backward +
forward) 45-56 ms, a DuckDB double ASOF JOIN 0.49-0.61 s. numpy and pandas are within noise; numpy is the
shortest code and the same index serves the asof rule and the per-frame summaries.

Layout: `options` (signals, rules, and `DriveTimelineOptions`, also the asset's Launchpad config),
`signals` (speed/IMU/GPS samples per source topic), `frames` (per-frame object and lane summaries), `grid`
(the grid and the interpolate/asof alignment), `run` (the step: published data in, timeline out, checks).

Names below are imported from their module on first use, so that the code location, which imports
`options` (the Launchpad config), loads without pandas, pyarrow and the like.
"""

from rosbag_assets.steps.lazy import lazy_exports

_EXPORTS = {
    "align": "grid",
    "build_timeline": "grid",
    "DriveTimelineOptions": "options",
    "SignalRule": "options",
    "TimelineError": "options",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
