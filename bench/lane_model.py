"""Lane model: our TwinLiteNet runner vs a bare ONNX Runtime session on the same ONNX file and frames.

``python -m bench.lane_model [--frames 8] [--repeats 3]``. Both sides start from decoded BGR frames (the
7 real BDD100K dash-cam frames, cycled), resize to 640x360, feed RGB/255 NCHW float32, run the session on
CPU and turn the two logit maps into boolean masks; ours also reports the whole backend (masks + lane
polylines). Runs alternate bare/ours in one process and the median is kept, because the machine is shared
and noisy; the figure that matters is the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAMES_DIR = ROOT.parent / "shared" / "data" / "images" / "bdd100k"


def load_frames(n: int) -> list[np.ndarray]:
    files = sorted(FRAMES_DIR.glob("*.jpg"))
    if not files:
        raise SystemExit(f"no frames in {FRAMES_DIR}")
    return [cv2.imread(str(files[i % len(files)])) for i in range(n)]


def bare_session(model: Path) -> Callable[[list[np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """What someone would write by hand from the model card: default session, numpy preprocessing, argmax."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def run(frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        x = np.stack([cv2.resize(f, (640, 360))[:, :, ::-1].transpose(2, 0, 1) for f in frames])
        drivable, lanes = session.run(["drivable", "lanes"], {"images": x.astype(np.float32) / 255.0})
        return list(zip(drivable.argmax(1).astype(bool), lanes.argmax(1).astype(bool), strict=True))

    return run


def _time(fn: Callable[[list[np.ndarray]], Any], frames: list[np.ndarray], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(frames), batch):
        fn(frames[i : i + batch])
    return (time.perf_counter() - t0) / len(frames)


def measure(n_frames: int = 8, repeats: int = 3, batches: tuple[int, ...] = (1, 8)) -> dict[str, Any]:
    """Seconds per frame (median of ``repeats``) for bare / ours (masks) / ours (masks + polylines)."""
    from rosbag_assets.vision.lane_lines import TwinLiteLaneBackend
    from rosbag_assets.vision.twinlitenet import DEFAULT_MODEL, TwinLiteNet

    frames = load_frames(n_frames)
    bare = bare_session(DEFAULT_MODEL)
    out: dict[str, Any] = {"frames": n_frames, "repeats": repeats}
    for batch in batches:
        ours = TwinLiteNet(batch_size=batch)
        backend = TwinLiteLaneBackend(batch_size=batch)
        sides: dict[str, Callable[[list[np.ndarray]], Any]] = {
            "bare": bare,
            "ours": ours.run,
            "backend": backend.detect_batch,
        }
        for fn in sides.values():  # warm-up: first-run allocations and thread-pool start
            fn(frames[:batch])
        times: dict[str, list[float]] = {k: [] for k in sides}
        for r in range(repeats):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                times[name].append(_time(sides[name], frames, batch))
        med = {k: statistics.median(v) for k, v in times.items()}
        out[f"batch{batch}"] = {
            **{f"{k}_s_per_frame": round(v, 4) for k, v in med.items()},
            "speed_ratio": round(med["bare"] / med["ours"], 3),  # >= 1: ours at least as fast as bare
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    result = measure(args.frames, args.repeats)
    print(f"lane model, {result['frames']} frames, median of {result['repeats']} (seconds per frame)")
    print(f"{'batch':>5} {'bare ORT':>9} {'ours':>9} {'backend':>9} {'speed ratio (bare/ours)':>24}")
    for key in sorted(k for k in result if k.startswith("batch")):
        row = result[key]
        print(
            f"{key[5:]:>5} {row['bare_s_per_frame']:>9.4f} {row['ours_s_per_frame']:>9.4f} "
            f"{row['backend_s_per_frame']:>9.4f} {row['speed_ratio']:>24.3f}"
        )
    worst = min(result[k]["speed_ratio"] for k in result if k.startswith("batch"))
    print(f"worst speed ratio: {worst:.3f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
