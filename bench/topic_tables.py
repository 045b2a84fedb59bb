"""topic_tables speed against reading the same topics: ``python -m bench.topic_tables [--size-mb 200]``.

The baseline is what any consumer of the bag pays at least: AnyReader iterating and deserialising the very
topics the step writes. The step must reach half of that rate (ratio = baseline seconds / step seconds >= 0.5).
Workloads: all real bags of ``shared/data/bags`` in one call, and a generated bag of Imu (200 Hz), Odometry
(50 Hz) and TF (50 Hz) messages of about `--size-mb`, as ROS1 and as ROS2 MCAP. Best of `--repeat` runs each,
in this process, the two sides alternating; the ratio is of CPU seconds (the machine is shared: wall time
mostly measures the neighbours; it is printed too). ``--no-fast-path`` measures the generic path alone (every
message deserialised by rosbags and flattened), without the fixed-layout decoding of `steps.topic_tables.fastpath`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from rosbag_assets.io.bags import DEFAULT_TYPESTORE
from rosbag_assets.steps.topic_tables import TopicTablesOptions, write_topic_tables

ROOT = Path(__file__).resolve().parent.parent
REAL_BAGS = ROOT.parent / "shared" / "data" / "bags"
CACHE = Path(tempfile.gettempdir()) / "rosbag_bench" / "topic_tables"
EPOCH_NS = 1_700_000_000_000_000_000
IMU_HZ, ODOM_HZ = 200, 50
IMU, ODOM, TF = "sensor_msgs/msg/Imu", "nav_msgs/msg/Odometry", "tf2_msgs/msg/TFMessage"


def write_motion_bag(path: Path, fmt: str, target_mb: float) -> Path:
    """A bag of about `target_mb` MB: /imu (Imu 200 Hz), /odom (Odometry 50 Hz), /tf (TFMessage 50 Hz)."""
    store = get_typestore(Stores.ROS1_NOETIC if fmt == "ros1" else Stores.ROS2_HUMBLE)
    if TF not in store.fielddefs:  # Noetic's store lacks tf2_msgs
        store.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", TF))
    t = store.types
    serialize = store.serialize_ros1 if fmt == "ros1" else store.serialize_cdr
    rng = np.random.default_rng(0)

    def header(ns: int, frame: str) -> object:
        stamp = t["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
        extra = {"seq": 0} if fmt == "ros1" else {}
        return t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame, **extra)

    def vec(v: np.ndarray) -> object:
        return t["geometry_msgs/msg/Vector3"](x=float(v[0]), y=float(v[1]), z=float(v[2]))

    def quat(v: np.ndarray) -> object:
        return t["geometry_msgs/msg/Quaternion"](x=float(v[0]), y=float(v[1]), z=float(v[2]), w=float(v[3]))

    def imu(ns: int) -> object:
        v = rng.standard_normal(10)
        cov = np.full(9, 1e-3)
        return t[IMU](header(ns, "imu"), quat(v[:4]), cov, vec(v[4:7]), cov, vec(v[7:10]), cov)

    def odom(ns: int) -> object:
        v = rng.standard_normal(13)
        point = t["geometry_msgs/msg/Point"](x=float(v[0]), y=float(v[1]), z=float(v[2]))
        pose = t["geometry_msgs/msg/PoseWithCovariance"](
            pose=t["geometry_msgs/msg/Pose"](position=point, orientation=quat(v[3:7])),
            covariance=np.eye(6).ravel(),
        )
        twist = t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](linear=vec(v[7:10]), angular=vec(v[10:13])),
            covariance=np.eye(6).ravel(),
        )
        return t[ODOM](header(ns, "odom"), "base_link", pose, twist)

    def tf(ns: int) -> object:
        v = rng.standard_normal(7)
        tr = t["geometry_msgs/msg/Transform"](translation=vec(v[:3]), rotation=quat(v[3:7]))
        return t[TF]([t["geometry_msgs/msg/TransformStamped"](header(ns, "odom"), "base_link", tr)])

    per_second = IMU_HZ * len(serialize(imu(0), IMU)) + ODOM_HZ * (
        len(serialize(odom(0), ODOM)) + len(serialize(tf(0), TF))
    )
    ticks = int(target_mb * 1e6 / per_second * IMU_HZ)
    plan = [("/imu", IMU, imu), ("/odom", ODOM, odom), ("/tf", TF, tf)]
    ros1 = fmt == "ros1"
    writer = Ros1Writer(path) if ros1 else Ros2Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    with writer:
        conns = {topic: writer.add_connection(topic, mt, typestore=store) for topic, mt, _ in plan}
        for i in range(ticks):
            ns = EPOCH_NS + i * (10**9 // IMU_HZ)
            for topic, mt, make in plan:
                if topic == "/imu" or i % (IMU_HZ // ODOM_HZ) == 0:
                    writer.write(conns[topic], ns, serialize(make(ns), mt))
    return path


def motion_bag(fmt: str, target_mb: float) -> Path:
    """The generated bag, made once and kept under the temp folder."""
    path = CACHE / f"motion_{fmt}_{int(target_mb)}mb{'.bag' if fmt == 'ros1' else ''}"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.unlink(missing_ok=True) if partial.is_file() else None
        write_motion_bag(partial, fmt, target_mb)
        partial.rename(path)
    return path


def read_all(bags: list[Path], options: TopicTablesOptions) -> int:
    """The baseline: iterate and deserialise every topic the step would write."""
    count = 0
    for bag in bags:
        with AnyReader([bag], default_typestore=DEFAULT_TYPESTORE) as reader:
            wanted = [c for c in reader.connections if options.wants(c.topic, c.msgtype)]
            known = [c for c in wanted if c.msgtype in reader.typestore.fielddefs]
            for conn, _, raw in reader.messages(connections=known) if known else ():
                reader.deserialize(raw, conn.msgtype)
                count += 1
    return count


def best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the fastest of `repeat` runs.

    CPU time is the figure of merit: on a shared host wall time mostly measures the neighbours.
    """
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.process_time() - cpu, time.perf_counter() - wall))
    return min(runs)


def compare(name: str, bags: list[Path], options: TopicTablesOptions, repeat: int) -> dict[str, float]:
    size = sum(f.stat().st_size for b in bags for f in ([b] if b.is_file() else b.rglob("*")))
    messages = read_all(bags, options)  # also warms the page cache for both sides
    out = Path(tempfile.mkdtemp(prefix="topic_tables_"))
    try:
        write_topic_tables(bags, out, options)  # warm-up: imports, code generation of the types
        base_runs, ours_runs = [], []
        for _ in range(repeat):  # alternate, so both sides see the same neighbours
            base_runs.append(best(lambda: read_all(bags, options), 1))
            shutil.rmtree(out, ignore_errors=True)
            ours_runs.append(best(lambda: write_topic_tables(bags, out, options), 1))
        written = sum(f.stat().st_size for f in out.rglob("*.parquet"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    (base, base_wall), (ours, ours_wall) = min(base_runs), min(ours_runs)
    row = {
        "bag_mb": size / 1e6,
        "messages": messages,
        "read_cpu_s": base,
        "ours_cpu_s": ours,
        "read_wall_s": base_wall,
        "ours_wall_s": ours_wall,
        "read_msg_per_cpu_s": messages / base,
        "ours_msg_per_cpu_s": messages / ours,
        "parquet_mb": written / 1e6,
        "ratio": base / ours,
        "ratio_wall": base_wall / ours_wall,
    }
    print(
        f"{name:<12} {row['bag_mb']:7.1f} MB {messages:>8} msgs | CPU s: read {base:6.2f} ours {ours:6.2f} | "
        f"wall s: read {base_wall:6.2f} ours {ours_wall:6.2f} | parquet {row['parquet_mb']:6.1f} MB | "
        f"ratio {row['ratio']:.2f} (wall {row['ratio_wall']:.2f})",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200)
    parser.add_argument("--formats", default="ros1,mcap")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--binary", default="summary", choices=["keep", "summary", "drop"])
    parser.add_argument(
        "--no-fast-path", action="store_true", help="every message through rosbags (the generic path's speed)"
    )
    args = parser.parse_args(argv)
    options = TopicTablesOptions(binary=args.binary, fast_path=not args.no_fast_path)
    results = {}
    real = sorted(p for p in REAL_BAGS.rglob("*") if p.is_file()) if REAL_BAGS.is_dir() else []
    if real:
        results["real_bags"] = compare("real_bags", real, options, args.repeat)
    for fmt in args.formats.split(","):
        bag = motion_bag(fmt, args.size_mb)
        results[f"motion_{fmt}"] = compare(f"motion_{fmt}", [bag], options, args.repeat)
    worst = min(r["ratio"] for r in results.values())
    print(f"worst ratio (read CPU s / ours CPU s) {worst:.2f} (bar: >= 0.5)")
    return results


if __name__ == "__main__":
    main()
