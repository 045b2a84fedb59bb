"""Contact-sheet tiles: a large JPEG is decoded at a reduced scale, and the tile looks the same."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from rosbag_assets.vision import preview

BDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "bdd100k"


def _real_jpeg() -> tuple[bytes, int]:
    frames = sorted(BDD.glob("*.jpg"))
    if not frames:
        pytest.skip("no shared BDD100K frames")
    data = frames[0].read_bytes()
    return data, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[1]


def test_large_jpeg_is_decoded_reduced_and_matches_the_full_decode_once_tiled() -> None:
    data, width = _real_jpeg()
    reduced = preview.thumbnail(data, width, preview.TILE_WIDTH)
    full = preview.thumbnail(data)
    assert preview.TILE_WIDTH <= reduced.shape[1] < full.shape[1]
    size = (preview.TILE_WIDTH, round(full.shape[0] * preview.TILE_WIDTH / full.shape[1]))
    a, b = (
        cv2.resize(reduced, size, interpolation=cv2.INTER_AREA),
        cv2.resize(full, size, interpolation=cv2.INTER_AREA),
    )
    assert cv2.PSNR(a, b) > 30


def test_reduced_decode_never_goes_below_the_shown_width_and_leaves_png_alone() -> None:
    data, width = _real_jpeg()
    assert preview.thumbnail(data, width, width).shape[1] == width  # no room to reduce
    png = cv2.imencode(".png", np.full((64, 640), 40000, np.uint16))[1].tobytes()
    tile = preview.thumbnail(png, 640, 80)  # 16-bit PNG: full decode, stretched and coloured
    assert tile.shape == (64, 640, 3) and tile.dtype == np.uint8
