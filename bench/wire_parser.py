"""A/B: extraction with the hand-written Image/CompressedImage wire parser vs rosbags' own deserializer on a
memoryview (zero-copy), end to end, interleaved in one run. Decides whether the hand-written parser stays
(issue: keep it only if the whole extraction is >= 10% faster with it).

    python -m bench.wire_parser --mb 300 --repeat 3    (also a section of `make bench`)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _extract(drive: Path, out: Path, topics: list[str], parser: str) -> float:
    from rosbag_assets.io.storage import LocalStorage
    from rosbag_assets.steps.extracted_frames import bag as bag_module
    from rosbag_assets.steps.extracted_frames import run_extracted_frames
    from rosbag_assets.steps.raw_bags import run_raw_bags

    original = bag_module.parse_image_message
    if parser == "rosbags":

        def decline(*_args: object) -> None:
            raise ValueError("use rosbags")

        bag_module.parse_image_message = decline
    try:
        src, dst = LocalStorage(drive), LocalStorage(out)
        run_raw_bags(drive="d", source=src, output=dst)
        t0 = time.perf_counter()
        run_extracted_frames(drive="d", source=src, output=dst, options={"topics": topics})
        return time.perf_counter() - t0
    finally:
        bag_module.parse_image_message = original


def main(argv: list[str] | None = None) -> int:
    from bench.genbag import COMPRESSED_TOPICS, RAW_TOPICS, write_bag

    args = argparse.ArgumentParser()
    args.add_argument("--mb", type=int, default=300)
    args.add_argument("--repeat", type=int, default=3)
    opts = args.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wire-", dir="/dev/shm") as tmp:
        work = Path(tmp)
        for fmt in ("ros1", "mcap"):
            for label, topics, compressed in (
                ("pass-through", COMPRESSED_TOPICS, True),
                ("raw", RAW_TOPICS, False),
            ):
                drive = work / f"{fmt}-{label}" / "d"
                drive.mkdir(parents=True)
                write_bag(
                    drive / ("b.bag" if fmt == "ros1" else "b"),
                    fmt,
                    opts.mb << 20,
                    compressed_only=compressed,
                )
                times: dict[str, list[float]] = {"ours": [], "rosbags": []}
                for i in range(opts.repeat):
                    for parser in ("ours", "rosbags") if i % 2 == 0 else ("rosbags", "ours"):
                        out = work / f"out-{fmt}-{label}-{parser}-{i}"
                        times[parser].append(_extract(drive, out, topics, parser))
                ours, theirs = statistics.median(times["ours"]), statistics.median(times["rosbags"])
                print(
                    f"{fmt:5s} {label:12s} hand parser {ours:6.2f}s  rosbags memoryview {theirs:6.2f}s  "
                    f"speed-up with hand parser {theirs / ours:5.2f}x"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
