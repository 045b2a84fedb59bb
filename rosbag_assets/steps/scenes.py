"""`scenes`: time ranges of a drive where a rule over its timeline holds.

Rules are data, not code: DuckDB SQL boolean expressions in YAML (defaults in `scene_rules.yaml`), so a
user adds "pedestrian while moving fast" without touching Python. Each rule is checked before it runs:
one expression, only timeline columns (an unknown column is an error naming the rule and the column),
and a true/false result. `run_scenes` is the step: the published timeline in, ``scenes.parquet`` out.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rosbag_assets.io.tables import Table, read_table
from rosbag_assets.steps import report
from rosbag_assets.steps.scenes_options import ScenesOptions
from rosbag_assets.steps.sql import column_refs
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.vision import preview
from rosbag_assets.vision.signal_plot import INLINE, draw_signals

SCENE_COLUMNS = ["drive", "scene_id", "rule", "start_ns", "end_ns", "duration_s", "frame_keys"]
WINDOW = "WINDOW w AS (PARTITION BY drive ORDER BY t_ns)"


class SceneRuleError(ValueError):
    """A scene rule that cannot run (names the rule and what is wrong)."""


class SceneRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    when: str = Field(min_length=1)
    description: str = ""
    min_duration_s: float = Field(0.0, ge=0)
    merge_gap_s: float = Field(0.0, ge=0)
    pad_s: float = Field(0.0, ge=0)


def default_rules_path() -> Path:
    return Path(str(resources.files("rosbag_assets.steps").joinpath("scene_rules.yaml")))


def load_rules(*paths: str | Path, defaults: bool = True) -> dict[str, SceneRule]:
    """Rules from the shipped defaults (unless `defaults=False`) and then each YAML file, later ones winning."""
    rules: dict[str, SceneRule] = {}
    for path in ([default_rules_path()] if defaults else []) + [Path(p) for p in paths]:
        doc = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(doc, dict) or not isinstance(doc.get("rules"), dict):
            raise SceneRuleError(f"{path}: expected a mapping with a 'rules:' mapping of name -> rule")
        for name, body in doc["rules"].items():
            try:
                rules[str(name)] = SceneRule(**(body if isinstance(body, dict) else {"when": body}))
            except ValidationError as exc:
                raise SceneRuleError(f"{path}: scene rule {name}: {exc}") from exc
    return rules


def validate_rules(
    rules: dict[str, SceneRule], con: duckdb.DuckDBPyConnection, table: str = "timeline"
) -> None:
    """Raise `SceneRuleError` for a rule that is not one boolean expression over `table`'s columns."""
    columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    for name, rule in rules.items():
        if ";" in rule.when:
            raise SceneRuleError(f"scene rule {name}: ';' is not allowed, a rule is one expression")
        sql = f"SELECT ({rule.when}) FROM {table} {WINDOW}"
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
        if tree.get("error"):
            raise SceneRuleError(f"scene rule {name}: {tree.get('error_message')} in {rule.when!r}")
        unknown = sorted(column_refs(tree) - set(columns))
        if unknown:
            raise SceneRuleError(
                f"scene rule {name}: unknown column {unknown[0]!r} in {rule.when!r}; timeline columns: {columns}"
            )
        try:
            (kind,) = [r[1] for r in con.execute(f"DESCRIBE {sql}").fetchall()]
        except duckdb.Error as exc:
            raise SceneRuleError(f"scene rule {name}: {exc}") from exc
        if kind not in ("BOOLEAN", '"NULL"'):
            raise SceneRuleError(f"scene rule {name}: {rule.when!r} gives {kind}, not true/false")


def find_scenes(
    timeline: Table, rules: dict[str, SceneRule] | None = None, *, grid_ns: int | None = None
) -> pd.DataFrame:
    """Scenes of every drive in `timeline` for every rule (default: the shipped ones).

    A step where a rule holds stands for [t, t + grid); consecutive steps form a range; ranges closer
    than `merge_gap_s` merge; shorter than `min_duration_s` are dropped; then `pad_s` widens them
    (clipped to the timeline). `frame_keys` lists the camera frames seen in the range, in time order.
    """
    rules = load_rules() if rules is None else rules
    data = read_table(timeline)
    con = duckdb.connect()
    con.register("timeline", data)
    validate_rules(rules, con)
    if not rules or not data.num_rows:
        return _empty()
    names = list(rules)
    hits = ", ".join(f"coalesce(({rules[n].when}), false) AS r{i}" for i, n in enumerate(names))
    df = con.execute(
        f"SELECT drive, t_ns, frame_key, {hits} FROM timeline {WINDOW} ORDER BY drive, t_ns"
    ).df()
    rows = []
    for drive, steps in df.groupby("drive", sort=True):
        t = steps["t_ns"].to_numpy(np.int64)
        step = grid_ns or (int(np.median(np.diff(t))) if len(t) > 1 else 100_000_000)
        keys = steps["frame_key"].to_numpy(object)
        for i, name in enumerate(names):
            for start, end in ranges(t, steps[f"r{i}"].to_numpy(bool), step, rules[name]):
                lo, hi = np.searchsorted(t, [start, end], "left")
                frame_keys = list(dict.fromkeys(k for k in keys[lo:hi] if isinstance(k, str)))
                rows.append(
                    {
                        "drive": drive,
                        "scene_id": f"{drive}:{name}:{start}",
                        "rule": name,
                        "start_ns": start,
                        "end_ns": end,
                        "duration_s": (end - start) / 1e9,
                        "frame_keys": frame_keys,
                    }
                )
    return pd.DataFrame(rows, columns=SCENE_COLUMNS) if rows else _empty()


def _empty() -> pd.DataFrame:
    """No scenes, typed, so the catalog learns the real column types even from a drive without scenes."""
    kinds = {"start_ns": "int64", "end_ns": "int64", "duration_s": "float64", "frame_keys": "object"}
    return pd.DataFrame({c: pd.Series([], dtype=kinds.get(c, "str")) for c in SCENE_COLUMNS})


def ranges(t: np.ndarray, hit: np.ndarray, step: int, rule: SceneRule) -> list[tuple[int, int]]:
    """[start, end) ns ranges where `hit` holds, merged, filtered by duration and padded."""
    idx = np.flatnonzero(hit)
    if not len(idx):
        return []
    cut = np.flatnonzero(np.diff(idx) > 1)
    firsts, lasts = idx[np.r_[0, cut + 1]], idx[np.r_[cut, len(idx) - 1]]
    runs = _merge(
        [(int(t[a]), int(t[b]) + step) for a, b in zip(firsts, lasts, strict=True)], rule.merge_gap_s
    )
    runs = [(a, b) for a, b in runs if b - a >= round(rule.min_duration_s * 1e9)]
    if rule.pad_s:
        pad, lo, hi = round(rule.pad_s * 1e9), int(t[0]), int(t[-1]) + step
        runs = _merge([(max(lo, a - pad), min(hi, b + pad)) for a, b in runs], 0.0)
    return runs


def _merge(runs: list[tuple[int, int]], gap_s: float) -> list[tuple[int, int]]:
    gap = round(gap_s * 1e9)
    merged: list[tuple[int, int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


@step_runner(ScenesOptions)
def run_scenes(step: Step[ScenesOptions]) -> report.StepResult:
    """Find the ranges where each scene rule holds over the drive timeline; publish ``scenes.parquet``."""
    drive, opts, log = step.drive, step.options, step.log
    tl_version, tl_manifest = step.current("drive_timeline")
    timeline = tl_version.read_parquet("timeline.parquet")
    rules = load_rules(*([opts.rules_file] if opts.rules_file else []), defaults=opts.defaults)
    grid_ns = round(float(tl_manifest.get("grid_ms", 100.0)) * 1e6)
    scenes = find_scenes(timeline, rules, grid_ns=grid_ns)
    staging = step.begin("scenes")
    staging.write_parquet("scenes.parquet", scenes)
    bands = {
        name: list(zip(part["start_ns"], part["end_ns"], strict=True))
        for name in rules
        for part in [scenes[scenes["rule"] == name]]
    }
    picture = preview.png_bytes(
        draw_signals(timeline, bands, title=f"{drive}: {len(scenes)} scenes over {len(rules)} rules")
    )
    staging.write_bytes("scenes.png", picture)
    uri = staging.commit(
        {
            "drive": drive,
            "drive_timeline_version": tl_version.version,
            "rules": {name: rule.model_dump() for name, rule in rules.items()},
            "rules_file": opts.rules_file,
            "scenes": len(scenes),
        }
    )
    per_rule = scenes.groupby("rule").agg(scenes=("scene_id", "size"), seconds=("duration_s", "sum"))
    records = [
        {
            "rule": name,
            "scenes": int(per_rule.loc[name, "scenes"]) if name in per_rule.index else 0,
            "seconds": float(per_rule.loc[name, "seconds"]) if name in per_rule.index else 0.0,
        }
        for name in rules
    ]
    log.info(f"scenes {drive}: {len(scenes)} scenes over {len(rules)} rules")
    metadata = {
        "scenes": report.integer(len(scenes)),
        "rules": report.integer(len(rules)),
        "per_rule": report.table(records, [("rule", "string"), ("scenes", "int"), ("seconds", "float")]),
        "scenes_uri": report.uri_value(staging.uri("scenes.parquet")),
        "picture": report.picture(
            picture,
            f"{drive} scenes per rule",
            staging.key("scenes.png"),
            mime="image/png",
            storage=staging.storage,
            inline=preview.png_bytes(
                draw_signals(
                    timeline,
                    bands,
                    title=f"{drive}: {len(scenes)} scene{'s' * (len(scenes) != 1)}",
                    layout=INLINE,
                )
            ),
        ),
        "drive_timeline_version": report.text(tl_version.version),
        "elapsed_s": step.elapsed(),
    }
    metadata.update(report.publication(uri, []))
    return report.StepResult(metadata=metadata)
