"""The Dagster half of `make demo`: materialize all four assets for the sample drive and print what came out.

Runs against the persistent instance in $DAGSTER_HOME (the one `make dev` opens), so the demo's runs and
materializations are there in the UI afterwards.
"""

import argparse
import os
import warnings
from pathlib import Path

import dagster as dg
import pandas as pd

from rosbag_assets.compute import ComputeTargets, LocalCompute
from rosbag_assets.defs.jobs import drive_assets
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.demo.sample_drive import write_sample_drive
from rosbag_assets.io import publish
from rosbag_assets.io.storage import LocalStorage, join_key

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def run_demo(root: Path, drive: str, weights: str, allow_fallback: bool, compute_mode: str) -> int:
    landing, output = root / "landing", root / "output"
    drive_dir = landing / drive
    if not drive_dir.exists():
        print(f"writing sample drive to {drive_dir} ...")
        write_sample_drive(drive_dir)
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(drives.name, [drive])
    storage = DriveStorage(landing_root=str(landing), output_root=str(output))
    config = {"ops": {"object_labels": {"config": {"weights": weights, "allow_fallback": allow_fallback}}}}
    result = dg.materialize(
        drive_assets,
        partition_key=drive,
        instance=instance,
        resources={"storage": storage, "compute": ComputeTargets(local=LocalCompute(mode=compute_mode))},
        run_config=config,
        raise_on_error=False,
    )
    print_summary(LocalStorage(output), drive, result)
    return 0 if result.success else 1


def _read(storage: LocalStorage, drive: str, asset: str, name: str) -> tuple[pd.DataFrame, dict, str]:
    version, manifest = publish.require_current(storage, join_key(drive, asset))
    return version.read_parquet(name), manifest, version.uri()


def print_summary(storage: LocalStorage, drive: str, result: dg.ExecuteInProcessResult) -> None:
    line = "-" * 72
    print(
        f"\n{line}\nrosbag_assets demo: drive {drive!r} -> {'SUCCESS' if result.success else 'FAILED'}\n{line}"
    )
    for event in result.get_asset_check_evaluations():
        mark = "ok " if event.passed else "FAIL"
        print(f"  check [{mark}] {event.asset_key.to_user_string()}.{event.check_name}")
    if not result.success:
        for event in result.all_events:
            if event.is_failure:
                print(f"  failed: {event.message}")
        return
    bags, _, bags_uri = _read(storage, drive, "raw_bags", "bags.parquet")
    print(f"\nbags ({len(bags)}):  {bags_uri}")
    for b in bags.itertuples():
        print(
            f"  {b.bag:<28} {b.format:<13} {b.bytes / 1e6:7.1f} MB  {b.duration_s or 0:5.1f} s  {b.messages} msgs"
        )
    frames, _, frames_uri = _read(storage, drive, "extracted_frames", "index.parquet")
    shards = frames["data_key"].nunique() if "data_key" in frames else 0
    print(f"\nframes ({len(frames)}):  {frames_uri}/index.parquet")
    print(f"  stored in {shards} tar shards under {frames_uri}/frames (`tar -xf` one to get its image files)")
    for topic, n in frames.groupby("topic").size().items():
        print(f"  {topic:<40} {n:5d}")
    labels, manifest, labels_uri = _read(storage, drive, "object_labels", "labels.parquet")
    print(f"\nobject labels ({len(labels)}) by {manifest['model']}:  {labels_uri}")
    if manifest.get("fallback_reason"):
        print(
            f"  NOTE: configured weights unavailable -> {manifest['model']} used. {manifest['fallback_reason']}"
        )
    for name, n in labels.groupby("class_name").size().sort_values(ascending=False).items():
        print(f"  {name:<20} {n:5d}")
    if "in_ego_lane" in labels and labels["in_ego_lane"].notna().any():
        print(f"  placed on the road: {int(labels['in_ego_lane'].eq(True).sum())} boxes in the ego lane")
    lanes, manifest, lanes_uri = _read(storage, drive, "lane_labels", "lanes.parquet")
    with_lanes = lanes["frame_key"].nunique() if len(lanes) else 0
    print(
        f"\nlanes ({len(lanes)} polylines on {with_lanes}/{len(frames)} frames) by {manifest['model']}:  {lanes_uri}"
    )
    for side, n in lanes.groupby("side").size().items():
        print(f"  {side:<20} {n:5d}")
    anonymized, manifest, anonymized_uri = _read(storage, drive, "anonymized_frames", "index.parquet")
    print(
        f"\nanonymized frames ({len(anonymized)}: {int(anonymized['faces'].sum())} face and "
        f"{int(anonymized['plates'].sum())} plate regions hidden):  {anonymized_uri}"
    )
    print(
        f"\npreviews: {lanes_uri}/preview.jpg\n          {labels_uri}/preview.jpg\n"
        f"          {anonymized_uri}/preview.jpg"
    )
    print(
        f"\nOpen the UI: `make dev`, then http://127.0.0.1:3000 (asset group 'drives', partition {drive!r}).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="var/demo", help="folder for the landing root and outputs")
    parser.add_argument("--drive", default="sample_drive")
    parser.add_argument("--weights", default=os.environ.get("ROSBAG_ASSETS_WEIGHTS", "yolo11n.pt"))
    parser.add_argument(
        "--no-fallback", action="store_true", help="fail instead of using the offline detector"
    )
    parser.add_argument("--compute", default="subprocess", choices=["subprocess", "in_process"])
    args = parser.parse_args(argv)
    return run_demo(Path(args.root).resolve(), args.drive, args.weights, not args.no_fallback, args.compute)
