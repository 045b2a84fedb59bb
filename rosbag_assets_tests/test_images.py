"""Pixel layer: ROS image payloads packed like a camera driver, through real ROS1 / MCAP bags, to arrays."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from bagwriting import make_compressed_image, make_image, write_bag
from rosbags.highlevel import AnyReader

from rosbag_assets.vision.images import (
    SUPPORTED_ENCODINGS,
    UnsupportedEncodingError,
    compressed_format,
    decode_compressed,
    decode_image_message,
    encode_array,
    image_to_array,
    is_lossless_only,
    resize_keep_aspect,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ROS1_BAGS = REPO_ROOT.parent / "shared" / "data" / "bags" / "ros1"
BAG_FORMATS = ("ros1", "mcap")
H, W = 12, 16  # even, so bayer and YUV 4:2:2 tile exactly
PAD = 3  # odd row padding: also makes 16/32-bit rows unaligned


@dataclass(frozen=True)
class Case:
    """One message as a driver would publish it, and what image_to_array must return."""

    name: str
    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int
    data: bytes
    expected: np.ndarray
    atol: int = 0
    margin: int = 0  # border pixels excluded from the comparison (demosaic edges)


def _pack(wire: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Row-major payload of ``wire`` (in wire channel and byte order) plus ``pad`` bytes per row."""
    rows = [wire[y].tobytes() + b"\xab" * pad for y in range(wire.shape[0])]
    return b"".join(rows), len(rows[0])


def _raw_case(
    name: str, encoding: str, wire: np.ndarray, expected: np.ndarray, pad: int = 0, big: bool = False
) -> Case:
    if big:
        wire = wire.astype(wire.dtype.newbyteorder(">"))
    data, step = _pack(wire, pad)
    return Case(name, encoding, wire.shape[0], wire.shape[1], step, int(big), data, expected)


def _raw_cases() -> list[Case]:
    rng = np.random.default_rng(7)
    u8 = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    u16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    f32 = rng.normal(3.0, 2.0, (H, W)).astype(np.float32)
    f32[0, 0], f32[1, 2], f32[2, 3] = np.nan, np.inf, -0.0  # depth drivers publish NaN/inf for no-return
    mono8, mono16 = u8[..., 0], u16[..., 0]
    rgb8, rgba8, rgb16 = u8[..., :3], u8, u16
    cases = []
    for pad in (0, PAD):
        sfx = f"_pad{pad}"
        cases += [
            _raw_case("mono8" + sfx, "mono8", mono8, mono8, pad),
            _raw_case("8UC1" + sfx, "8UC1", mono8, mono8, pad),
            _raw_case("mono16" + sfx, "mono16", mono16, mono16, pad),
            _raw_case("16UC1" + sfx, "16UC1", mono16, mono16, pad),
            _raw_case("32FC1" + sfx, "32FC1", f32, f32, pad),
            _raw_case("rgb8" + sfx, "rgb8", rgb8, rgb8[..., ::-1], pad),
            _raw_case("bgr8" + sfx, "bgr8", rgb8, rgb8, pad),
            _raw_case("8UC3" + sfx, "8UC3", rgb8, rgb8, pad),
            _raw_case("rgba8" + sfx, "rgba8", rgba8, rgba8[..., [2, 1, 0, 3]], pad),
            _raw_case("bgra8" + sfx, "bgra8", rgba8, rgba8, pad),
            _raw_case("8UC4" + sfx, "8UC4", rgba8, rgba8, pad),
            _raw_case("rgb16" + sfx, "rgb16", rgb16, rgb16[..., ::-1], pad),
            _raw_case("bgr16" + sfx, "bgr16", rgb16, rgb16, pad),
            _raw_case("16UC3" + sfx, "16UC3", rgb16, rgb16, pad),
        ]
    for enc, wire in (("mono16", mono16), ("16UC1", mono16), ("32FC1", f32), ("rgb16", rgb16)):
        expected = wire[..., ::-1] if enc == "rgb16" else wire
        cases.append(_raw_case(f"{enc}_bigendian", enc, wire, expected, 0, True))
    cases.append(_raw_case("16UC1_bigendian_pad", "16UC1", mono16, mono16, PAD, True))
    return cases


# Two flat colours (RGB) side by side: demosaicing must reproduce each away from the edges.
_BAYER_RGB = ((200, 100, 30), (20, 180, 240))


def _bayer_cases() -> list[Case]:
    cases = []
    for pattern in ("rggb", "bggr", "gbrg", "grbg"):
        for bits, pad, big in ((8, 0, False), (8, PAD, False), (16, 0, False), (16, PAD, True)):
            scale, dtype = (1, np.uint8) if bits == 8 else (257, np.uint16)
            rgb = np.zeros((H, W, 3), dtype)
            rgb[:, : W // 2] = np.array(_BAYER_RGB[0]) * scale
            rgb[:, W // 2 :] = np.array(_BAYER_RGB[1]) * scale
            mosaic = np.zeros((H, W), dtype)
            for dy in (0, 1):
                for dx in (0, 1):
                    ch = "rgb".index(pattern[2 * dy + dx])
                    mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, ch]
            expected = rgb[..., ::-1].copy()
            expected[:, W // 2 - 2 : W // 2 + 2] = 0  # the colour edge blends: not checked
            encoding = f"bayer_{pattern}{bits}"
            case = _raw_case(f"{encoding}_pad{pad}", encoding, mosaic, expected, pad, big)
            cases.append(Case(**{**case.__dict__, "margin": 2}))
    return cases


def _bt601_yuv(rgb: np.ndarray) -> np.ndarray:
    """Limited-range BT.601 Y'CbCr, as video cameras emit for 4:2:2."""
    r, g, b = (rgb[..., i] / 255.0 for i in range(3))
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return np.rint(np.stack([y, u, v], -1)).astype(np.uint8)


def _yuv_cases() -> list[Case]:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (128, 128, 128), (200, 100, 30)]
    rgb = np.zeros((H, W, 3), np.uint8)
    for i in range(W // 2):  # one colour per macropixel pair, varying per row band as well
        for band in range(H // 4):
            rgb[band * 4 : band * 4 + 4, 2 * i : 2 * i + 2] = colours[(i + band) % len(colours)]
    yuv = _bt601_yuv(rgb)
    y, u, v = yuv[..., 0], yuv[:, 0::2, 1], yuv[:, 0::2, 2]
    uyvy = np.stack([u, y[:, 0::2], v, y[:, 1::2]], -1).reshape(H, W, 2)
    yuyv = np.stack([y[:, 0::2], u, y[:, 1::2], v], -1).reshape(H, W, 2)
    cases = []
    wires = {"yuv422": uyvy, "uyvy": uyvy, "UYVY": uyvy, "yuv422_yuy2": yuyv, "yuyv": yuyv, "YUYV": yuyv}
    for enc, wire in wires.items():
        for pad in (0, PAD):
            case = _raw_case(f"{enc}_pad{pad}", enc, wire, rgb[..., ::-1].copy(), pad)
            cases.append(Case(**{**case.__dict__, "atol": 3}))
    return cases


CASES = _raw_cases() + _bayer_cases() + _yuv_cases()
CASE_BY_NAME = {case.name: case for case in CASES}


def _check(case: Case, got: np.ndarray) -> None:
    assert got.shape == case.expected.shape, case.name
    assert got.dtype == case.expected.dtype.newbyteorder("="), case.name
    exp = case.expected.astype(got.dtype)
    if case.margin:
        m = case.margin
        got, exp = got[m:-m, m:-m], exp[m:-m, m:-m]
        mask = exp.reshape(exp.shape[0], exp.shape[1], -1).any(-1)  # zeroed (unchecked) columns
        got, exp = got[mask], exp[mask]
    if got.dtype.kind == "f":
        assert got.tobytes() == exp.tobytes(), f"{case.name}: float payload not bit-exact"
    elif case.atol:
        diff = np.abs(got.astype(np.int32) - exp.astype(np.int32))
        assert diff.max() <= case.atol, f"{case.name}: max diff {diff.max()}"
    else:
        np.testing.assert_array_equal(got, exp, err_msg=case.name)


def test_every_supported_encoding_has_a_case():
    assert {case.encoding for case in CASES} == SUPPORTED_ENCODINGS


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_image_to_array_from_driver_bytes(case: Case):
    img = image_to_array(case.encoding, case.height, case.width, case.step, case.is_bigendian, case.data)
    _check(case, img)


@pytest.fixture(scope="module")
def bag_messages(tmp_path_factory) -> dict[str, dict[str, object]]:
    """Write every case (a topic each) and two compressed images to a ROS1 and an MCAP bag; read back."""
    jpeg = cv2.imencode(".jpg", np.full((8, 10, 3), (30, 120, 220), np.uint8))[1].tobytes()
    png16 = cv2.imencode(".png", np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000)[1].tobytes()
    out: dict[str, dict[str, object]] = {}
    for fmt in BAG_FORMATS:
        topics: dict[str, list[tuple[int, object]]] = {}
        for i, case in enumerate(CASES):
            stamp = 1_700_000_000_000_000_000 + i * 33_000_000
            msg = make_image(
                fmt, case.encoding, case.height, case.width, case.step, case.data,
                is_bigendian=case.is_bigendian, stamp_ns=stamp, seq=i,
            )  # fmt: skip
            topics[f"/cam/{case.name}"] = [(stamp, msg)]
        topics["/cam/jpeg/compressed"] = [(5, make_compressed_image(fmt, "rgb8; jpeg compressed bgr8", jpeg))]
        topics["/depth/png/compressed"] = [(6, make_compressed_image(fmt, "png", png16))]
        path = tmp_path_factory.mktemp(fmt) / ("drive.bag" if fmt == "ros1" else "drive")
        write_bag(path, fmt, topics)
        with AnyReader([path]) as reader:
            out[fmt] = {
                conn.topic: (ts, reader.deserialize(raw, conn.msgtype)) for conn, ts, raw in reader.messages()
            }
        assert set(out[fmt]) == set(topics)
    return out


@pytest.mark.parametrize("fmt", BAG_FORMATS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_image_round_trip_through_bag(bag_messages, fmt: str, case: Case):
    stamp, msg = bag_messages[fmt][f"/cam/{case.name}"]
    assert (msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec) == stamp
    assert (msg.encoding, msg.step, msg.is_bigendian) == (case.encoding, case.step, case.is_bigendian)
    _check(case, image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data))
    _check(case, decode_image_message(msg))


@pytest.mark.parametrize("fmt", BAG_FORMATS)
def test_compressed_round_trip_through_bag(bag_messages, fmt: str):
    _, jpeg_msg = bag_messages[fmt]["/cam/jpeg/compressed"]
    assert compressed_format(jpeg_msg.format, jpeg_msg.data) == "jpeg"
    img = decode_image_message(jpeg_msg)
    assert img.shape == (8, 10, 3)
    assert np.abs(img.astype(int) - (30, 120, 220)).max() <= 4
    _, png_msg = bag_messages[fmt]["/depth/png/compressed"]
    assert compressed_format(png_msg.format, png_msg.data) == "png"
    depth = decode_compressed(png_msg.data)
    np.testing.assert_array_equal(depth, np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000)


@pytest.mark.parametrize("fmt", BAG_FORMATS)
@pytest.mark.parametrize("name", ["mono8_pad0", "mono8_pad3", "bgr8_pad3", "16UC1_pad0", "32FC1_pad0"])
def test_native_layouts_are_zero_copy(bag_messages, fmt: str, name: str):
    _, msg = bag_messages[fmt][f"/cam/{name}"]
    img = image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
    assert np.shares_memory(img, msg.data)


def test_odd_step_16bit_is_copied_into_a_cv2_compatible_array(bag_messages):
    _, msg = bag_messages["mcap"]["/cam/16UC1_pad3"]
    img = image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
    assert img.strides[0] % img.itemsize == 0 and img.flags.aligned
    assert cv2.resize(img, (4, 3), interpolation=cv2.INTER_AREA).dtype == np.uint16


def test_conversions_do_not_alias_the_message():
    case = CASE_BY_NAME["mono16_bigendian"]
    data = np.frombuffer(case.data, np.uint8)
    img = image_to_array(case.encoding, case.height, case.width, case.step, 1, data)
    assert img.dtype.isnative and not np.shares_memory(img, data)


def test_unknown_encoding_names_it():
    with pytest.raises(UnsupportedEncodingError, match="16SC1") as info:
        image_to_array("16SC1", 2, 2, 4, 0, bytes(8))
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnsupportedEncodingError, match="'hsv8'"):
        is_lossless_only("hsv8")


@pytest.mark.parametrize(
    ("encoding", "height", "width", "step", "size", "reason"),
    [
        ("mono8", 4, 4, 4, 15, "too short"),
        ("rgb8", 4, 4, 13, 12 * 4, "too short"),  # padded step counts for every row
        ("mono16", 2, 4, 7, 14, "smaller than one row"),
        ("uyvy", 2, 3, 6, 12, "even width"),
        ("mono8", 0, 4, 4, 0, "empty"),
    ],
)
def test_bad_geometry_raises_value_error(encoding, height, width, step, size, reason):
    with pytest.raises(ValueError, match=reason):
        image_to_array(encoding, height, width, step, 0, bytes(size))


def test_is_lossless_only():
    lossless = {e for e in SUPPORTED_ENCODINGS if is_lossless_only(e)}
    assert {"mono16", "16UC1", "32FC1", "bayer_rggb16", "rgb16"} <= lossless
    assert not lossless & {"mono8", "8UC1", "rgb8", "bgra8", "bayer_grbg8", "yuv422", "YUYV"}


def _decode(blob: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("mono8_pad3", "png"),
        ("rgb8_pad0", "png"),
        ("rgba8_pad3", "png"),
        ("mono16_pad3", "png"),
        ("mono16_bigendian", "jpeg"),  # 16-bit stays lossless PNG even when JPEG is asked for
        ("rgb16_pad0", "jpeg"),
        ("bayer_gbrg16_pad3", "jpeg"),
    ],
)
def test_png_and_16bit_are_lossless(name: str, fmt: str):
    case = CASE_BY_NAME[name]
    img = image_to_array(case.encoding, case.height, case.width, case.step, case.is_bigendian, case.data)
    blob, ext = encode_array(img, fmt)
    assert ext == ".png" and blob.startswith(b"\x89PNG")
    back = _decode(blob)
    assert back.dtype == img.dtype
    np.testing.assert_array_equal(back, img)


def test_float_depth_is_bit_exact_tiff():
    case = CASE_BY_NAME["32FC1_pad3"]
    img = image_to_array(case.encoding, case.height, case.width, case.step, 0, case.data)
    for fmt in ("jpeg", "png"):
        blob, ext = encode_array(img, fmt)
        assert ext == ".tiff"
        back = _decode(blob)
        assert back.dtype == np.float32 and back.shape == img.shape
        assert back.tobytes() == np.ascontiguousarray(img).tobytes()


def _real_photo() -> np.ndarray:
    bdd = sorted((REPO_ROOT.parent / "shared" / "data" / "images" / "bdd100k").glob("*.jpg"))
    img = cv2.imread(str(bdd[0])) if bdd else None
    if img is None:
        pytest.skip("no BDD100K sample in ../shared/data")
    return img


def test_jpeg_quality():
    img = _real_photo()
    blob90, ext = encode_array(img, "jpeg", 90)
    blob50, _ = encode_array(img, "jpeg", 50)
    assert ext == ".jpg" and blob90.startswith(b"\xff\xd8\xff")
    back = _decode(blob90)
    assert back.shape == img.shape
    assert cv2.PSNR(back, img) > 35
    assert cv2.PSNR(_decode(blob50), img) < cv2.PSNR(back, img)
    assert len(blob50) < len(blob90)


def test_jpeg_drops_alpha():
    bgra = np.dstack([np.full((10, 12, 3), (10, 200, 90), np.uint8), np.zeros((10, 12), np.uint8)])
    blob, ext = encode_array(bgra, "jpeg")
    back = _decode(blob)
    assert ext == ".jpg" and back.shape == (10, 12, 3)
    assert np.abs(back.astype(int) - (10, 200, 90)).max() <= 4
    png_back = _decode(encode_array(bgra, "png")[0])
    np.testing.assert_array_equal(png_back, bgra)


@pytest.mark.parametrize(
    ("img", "kwargs", "reason"),
    [
        (np.zeros((4, 4), np.uint8), {"fmt": "gif"}, "gif"),
        (np.zeros((4, 4), np.uint8), {"quality": 0}, "quality"),
        (np.zeros((4, 4), np.int16), {}, "dtype"),
        (np.zeros((4, 4, 2), np.uint8), {}, "shape"),
        (np.zeros((4, 4, 3), np.float32), {}, "single-channel"),
    ],
)
def test_encode_array_rejects(img, kwargs, reason):
    with pytest.raises(ValueError, match=reason):
        encode_array(img, **kwargs)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_resize_keep_aspect(dtype):
    img = np.random.default_rng(1).integers(0, 200, (480, 752)).astype(dtype)
    small = resize_keep_aspect(img, max_width=320)
    assert small.shape == (round(480 * 320 / 752), 320) and small.dtype == dtype
    assert resize_keep_aspect(img, max_height=120).shape == (120, 188)
    assert resize_keep_aspect(img, max_width=376, max_height=100).shape == (100, round(752 * 100 / 480))
    assert resize_keep_aspect(img, max_width=4000, max_height=4000) is img  # never upscale
    assert resize_keep_aspect(img) is img
    colour = np.zeros((100, 50, 3), dtype)
    assert resize_keep_aspect(colour, max_width=10).shape == (20, 10, 3)
    with pytest.raises(ValueError, match="max_width"):
        resize_keep_aspect(img, max_width=0)


def test_resize_area_averages():
    img = np.zeros((4, 8), np.uint8)
    img[:, 1::2] = 200  # 1-px stripes: INTER_AREA averages them, nearest-neighbour would not
    assert np.all(resize_keep_aspect(img, max_width=4) == 100)


JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF"
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00"


@pytest.mark.parametrize(
    ("fmt_field", "data", "expected"),
    [
        ("png", JPEG_HEAD, "jpeg"),  # magic bytes win over the format string
        ("jpeg", PNG_HEAD, "png"),
        ("", JPEG_HEAD, "jpeg"),
        ("rgb8; jpeg compressed bgr8", b"\x00" * 12, "jpeg"),
        ("bgr8; png compressed bgr8", b"\x00" * 12, "png"),
        ("JPEG", b"", "jpeg"),
        ("png", np.frombuffer(b"\x01\x02", np.uint8), "png"),
    ],
)
def test_compressed_format(fmt_field, data, expected):
    assert compressed_format(fmt_field, data) == expected


@pytest.mark.parametrize("fmt_field", ["16UC1; compressedDepth png", "h264", "theora", ""])
def test_compressed_format_unsupported(fmt_field):
    with pytest.raises(UnsupportedEncodingError, match=re.escape(repr(fmt_field))):
        compressed_format(fmt_field, b"\x00\x00\x00\x00garbage")


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff\xe0 not really a jpeg", b"hello"])
def test_decode_compressed_rejects_garbage(data):
    with pytest.raises(ValueError, match="compressed image"):
        decode_compressed(data)


def _read_topic(bag: Path, topic: str) -> list:
    if not bag.exists():
        pytest.skip(f"{bag} not present")
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(conns)]


def test_real_bag_tiny_svo_mono8():
    msgs = _read_topic(ROS1_BAGS / "tiny_svo.bag", "/camera/image_raw")
    assert len(msgs) == 10
    frames = [decode_image_message(m) for m in msgs]
    assert all(f.shape == (480, 752) and f.dtype == np.uint8 for f in frames)
    assert all(f.std() > 5 for f in frames)  # a real scene, not a blank buffer
    assert not np.array_equal(frames[0], frames[-1])
    np.testing.assert_array_equal(_decode(encode_array(frames[0], "png")[0]), frames[0])


def test_real_bag_ros_numpy_rgb8_and_rgba_png():
    (img_msg,) = _read_topic(ROS1_BAGS / "ros_numpy_test.bag", "/image")
    img = image_to_array(img_msg.encoding, img_msg.height, img_msg.width, img_msg.step, 0, img_msg.data)
    assert img_msg.encoding == "rgb8" and img.shape == (240, 360, 3) and img.dtype == np.uint8
    raw = np.asarray(img_msg.data).reshape(240, 360, 3)
    np.testing.assert_array_equal(img, raw[..., ::-1])  # RGB on the wire -> BGR for OpenCV
    (cmp_msg,) = _read_topic(ROS1_BAGS / "ros_numpy_test.bag", "/compressedimage")
    assert compressed_format(cmp_msg.format, cmp_msg.data) == "png"
    assert decode_compressed(cmp_msg.data).shape == (2, 2, 4)


def test_real_bags_davis_mono8_and_duckietown_jpeg():
    for topic, count in (("/dvs/image_raw", 4), ("/dvs1/image_raw", 3)):
        msgs = _read_topic(ROS1_BAGS / "get_images_tiny.bag", topic)
        assert len(msgs) == count
        assert {decode_image_message(m).shape for m in msgs} == {(260, 346)}
    (msg,) = _read_topic(ROS1_BAGS / "duckietown_sim_compressed.bag", "/gym/observations")
    assert compressed_format(msg.format, msg.data) == "jpeg"
    img = decode_image_message(msg)
    assert img.shape[2] == 3 and sorted(img.shape[:2]) == [123, 124]
    blob, ext = encode_array(resize_keep_aspect(img, max_width=64), "jpeg", 80)
    assert ext == ".jpg" and _decode(blob).shape[1] == 64
