"""Pixel layer: ROS ``sensor_msgs/Image`` / ``CompressedImage`` payloads to numpy arrays and encoded files.

Arrays returned by :func:`image_to_array` follow OpenCV conventions so they can go straight to
:func:`encode_array` (``cv2.imencode``):

* colour                      -> BGR ``uint8`` (H, W, 3)  (``uint16`` for 16-bit colour / bayer)
* rgba8 / bgra8 / 8UC4        -> BGRA ``uint8`` (H, W, 4)
* mono8 / 8UC1                -> ``uint8`` (H, W)
* mono16 / 16UC1              -> ``uint16`` (H, W)
* 32FC1 (depth in metres)     -> ``float32`` (H, W)

Raw layouts are wrapped zero-copy (``np.ndarray`` over the message buffer with the row ``step`` as stride);
a copy is made only for colour-order changes, byte swapping, demosaicing, YUV conversion, and for 16/32-bit
data whose ``step`` is not a multiple of the element size or whose buffer is misaligned (OpenCV rejects
those).

Lossless policy of :func:`encode_array`: 16-bit images are always written as 16-bit PNG, and ``float32``
images (32FC1 depth) as 32-bit float TIFF, which round-trips bit-exactly (NaN/inf included) through
``cv2.imdecode(..., cv2.IMREAD_UNCHANGED)``.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


class UnsupportedEncodingError(ValueError):
    """An image encoding (or compressed format) this module cannot decode."""

    def __init__(self, encoding: str, detail: str = "") -> None:
        self.encoding = encoding
        msg = f"unsupported image encoding {encoding!r}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


@dataclass(frozen=True)
class _Layout:
    """How one ROS encoding is stored: element type, channels per pixel and the conversion to apply."""

    dtype: str  # numpy kind+size without byte order, e.g. "u1", "u2", "f4"
    channels: int
    convert: int | None = None  # cv2.COLOR_* code, None when the raw layout is already the output


_BAYER_TO_BGR = {  # ROS names the 2x2 pattern from the top-left pixel; OpenCV's aliases use the same names
    "rggb": cv2.COLOR_BayerRGGB2BGR,
    "bggr": cv2.COLOR_BayerBGGR2BGR,
    "gbrg": cv2.COLOR_BayerGBRG2BGR,
    "grbg": cv2.COLOR_BayerGRBG2BGR,
}

_LAYOUTS: dict[str, _Layout] = {
    "mono8": _Layout("u1", 1),
    "8UC1": _Layout("u1", 1),
    "mono16": _Layout("u2", 1),
    "16UC1": _Layout("u2", 1),
    "32FC1": _Layout("f4", 1),
    "bgr8": _Layout("u1", 3),
    "8UC3": _Layout("u1", 3),
    "rgb8": _Layout("u1", 3, cv2.COLOR_RGB2BGR),
    "bgra8": _Layout("u1", 4),
    "8UC4": _Layout("u1", 4),
    "rgba8": _Layout("u1", 4, cv2.COLOR_RGBA2BGRA),
    "bgr16": _Layout("u2", 3),
    "16UC3": _Layout("u2", 3),
    "rgb16": _Layout("u2", 3, cv2.COLOR_RGB2BGR),
    # packed 4:2:2, two bytes per pixel; ROS "yuv422" is UYVY, "yuv422_yuy2" is YUYV
    "yuv422": _Layout("u1", 2, cv2.COLOR_YUV2BGR_UYVY),
    "uyvy": _Layout("u1", 2, cv2.COLOR_YUV2BGR_UYVY),
    "UYVY": _Layout("u1", 2, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": _Layout("u1", 2, cv2.COLOR_YUV2BGR_YUY2),
    "yuyv": _Layout("u1", 2, cv2.COLOR_YUV2BGR_YUY2),
    "YUYV": _Layout("u1", 2, cv2.COLOR_YUV2BGR_YUY2),
}
for _pattern, _code in _BAYER_TO_BGR.items():
    _LAYOUTS[f"bayer_{_pattern}8"] = _Layout("u1", 1, _code)
    _LAYOUTS[f"bayer_{_pattern}16"] = _Layout("u2", 1, _code)

SUPPORTED_ENCODINGS: frozenset[str] = frozenset(_LAYOUTS)
_BY_LOWER = {name.lower(): layout for name, layout in _LAYOUTS.items()}

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _layout(encoding: str) -> _Layout:
    """Look an encoding up (exact name first, then case-insensitively)."""
    layout = _LAYOUTS.get(encoding) or _BY_LOWER.get(encoding.lower())
    if layout is None:
        raise UnsupportedEncodingError(encoding, f"supported: {', '.join(sorted(SUPPORTED_ENCODINGS))}")
    return layout


def is_lossless_only(encoding: str) -> bool:
    """True for encodings whose values must not go through lossy JPEG (16-bit, float depth)."""
    return np.dtype(_layout(encoding).dtype).itemsize > 1


def _as_byte_buffer(data: np.ndarray | bytes | bytearray | memoryview) -> np.ndarray:
    """View message data as a flat uint8 array without copying."""
    if isinstance(data, np.ndarray):
        buf = data.reshape(-1)
        return buf if buf.dtype == np.uint8 else buf.view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def _raw_view(
    buf: np.ndarray, dtype: np.dtype, height: int, width: int, channels: int, step: int
) -> np.ndarray:
    """Wrap ``buf`` as (H, W[, C]) honouring the row stride; zero-copy when the buffer is contiguous."""
    if not buf.flags.c_contiguous:
        buf = np.ascontiguousarray(buf)
    shape: tuple[int, ...] = (height, width, channels) if channels > 1 else (height, width)
    strides: tuple[int, ...] = (step, channels * dtype.itemsize, dtype.itemsize)
    view = np.ndarray(shape, dtype=dtype, buffer=buf, strides=strides[: len(shape)])
    # OpenCV needs row strides that are a multiple of the element size; numpy wants aligned elements.
    if step % dtype.itemsize or not view.flags.aligned:
        view = np.ascontiguousarray(view)
    return view


def image_to_array(
    encoding: str,
    height: int,
    width: int,
    step: int,
    is_bigendian: int,
    data: np.ndarray | bytes,
) -> np.ndarray:
    """Decode a raw ``sensor_msgs/Image`` payload to an OpenCV-ready array (see module docstring).

    Raises:
        UnsupportedEncodingError: the encoding is not in :data:`SUPPORTED_ENCODINGS`.
        ValueError: inconsistent geometry (empty image, ``step`` smaller than a row, data shorter
            than ``height * step``, odd width for YUV 4:2:2).
    """
    layout = _layout(encoding)
    dtype = np.dtype(layout.dtype).newbyteorder(">" if is_bigendian else "<")
    row_bytes = width * layout.channels * dtype.itemsize
    if height <= 0 or width <= 0:
        raise ValueError(f"{encoding} image has empty size {width}x{height}")
    if step < row_bytes:
        raise ValueError(f"{encoding} image step {step} is smaller than one row ({width} px, {row_bytes} B)")
    buf = _as_byte_buffer(data)
    if buf.size < height * step:
        raise ValueError(
            f"{encoding} image data too short: {buf.size} bytes < height*step = {height}*{step}"
            f" = {height * step}"
        )
    if layout.channels == 2 and width % 2:
        raise ValueError(f"{encoding} (YUV 4:2:2) needs an even width, got {width}")
    img = _raw_view(buf[: height * step], dtype, height, width, layout.channels, step)
    if not dtype.isnative:
        img = img.astype(dtype.newbyteorder("="))
    if layout.convert is not None:
        img = cv2.cvtColor(img, layout.convert)
    return img


def decode_image_message(msg: Any) -> np.ndarray:
    """Decode a deserialized ``Image`` (has ``encoding``) or ``CompressedImage`` (has ``format``) message."""
    if hasattr(msg, "encoding"):
        return image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
    compressed_format(msg.format, msg.data)
    return decode_compressed(msg.data)


def _head(data: np.ndarray | bytes, size: int) -> bytes:
    return _as_byte_buffer(data)[:size].tobytes()


def compressed_format(fmt_field: str, data: np.ndarray | bytes) -> str:
    """``"jpeg"`` or ``"png"`` for a ``CompressedImage``: magic bytes first, then the ``format`` string.

    Raises:
        UnsupportedEncodingError: neither the bytes nor the format name JPEG or PNG (e.g. ``compressedDepth``,
            whose PNG sits behind a 12-byte header, or video codecs).
    """
    head = _head(data, len(_PNG_MAGIC))
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    if head.startswith(_PNG_MAGIC):
        return "png"
    name = fmt_field.lower()
    if "compresseddepth" in name:
        raise UnsupportedEncodingError(fmt_field, "compressedDepth payloads are not supported")
    # "rgb8; jpeg compressed bgr8": the part after ';' names the codec, the part before the source encoding
    codec = name.split(";", 1)[1] if ";" in name else name
    if "jpeg" in codec or "jpg" in codec:
        return "jpeg"
    if "png" in codec:
        return "png"
    raise UnsupportedEncodingError(fmt_field, f"not JPEG/PNG (data starts with {head.hex()})")


# JPEG start-of-frame markers (SOF0..SOF15 without DHT 0xC4, JPG 0xC8, DAC 0xCC) carry height and width.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_NO_LENGTH_MARKERS = frozenset(range(0xD0, 0xDA)) | {0x01}  # RSTn, SOI, EOI: no length field


def encoded_size(data: np.ndarray | bytes | memoryview) -> tuple[int, int]:
    """(width, height) of JPEG or PNG bytes read from the header alone, without decoding pixels.

    A few microseconds per frame (Pillow's lazy open costs ~25 us); anything unusual falls back to Pillow.
    """
    buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    try:
        if bytes(buf[:8]) == _PNG_MAGIC and bytes(buf[12:16]) == b"IHDR":
            width, height = struct.unpack_from(">II", buf, 16)
            return width, height
        if bytes(buf[:2]) == b"\xff\xd8":
            pos, end = 2, len(buf)
            while pos + 4 <= end:
                if buf[pos] != 0xFF:
                    break
                marker = buf[pos + 1]
                if marker == 0xFF:  # fill byte
                    pos += 1
                    continue
                if marker in _NO_LENGTH_MARKERS:
                    pos += 2
                    continue
                (length,) = struct.unpack_from(">H", buf, pos + 2)
                if marker in _SOF_MARKERS:
                    height, width = struct.unpack_from(">HH", buf, pos + 5)
                    return width, height
                pos += 2 + length
    except (struct.error, IndexError):
        pass
    from PIL import Image

    with Image.open(io.BytesIO(bytes(buf))) as im:
        return im.size


def decode_compressed(data: np.ndarray | bytes) -> np.ndarray:
    """Decode JPEG/PNG bytes with ``cv2.IMREAD_UNCHANGED`` (keeps alpha and 16-bit depth).

    Raises:
        ValueError: the data is empty or OpenCV cannot decode it.
    """
    buf = _as_byte_buffer(data)
    if buf.size == 0:
        raise ValueError("compressed image data is empty")
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        head = _head(buf, 8).hex()
        raise ValueError(f"could not decode compressed image ({buf.size} bytes, starts with {head})")
    return img


def _check_encodable(img: np.ndarray) -> None:
    channels = 1 if img.ndim == 2 else img.shape[2] if img.ndim == 3 else 0
    if channels not in (1, 3, 4) or img.size == 0:
        raise ValueError(
            f"cannot encode array of shape {img.shape}: need non-empty (H,W), (H,W,3) or (H,W,4)"
        )
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise ValueError(f"cannot encode array of dtype {img.dtype}: need uint8, uint16 or float32")
    if img.dtype == np.float32 and channels != 1:
        raise ValueError(f"float32 images must be single-channel (depth), got shape {img.shape}")


def encode_array(img: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> tuple[bytes, str]:
    """Encode an array from :func:`image_to_array` / :func:`decode_compressed`; return ``(bytes, extension)``.

    ``fmt`` is ``"jpeg"`` or ``"png"`` and applies to 8-bit images. Lossless overrides: ``uint16`` -> 16-bit
    PNG, ``float32`` -> 32-bit float TIFF (``.tiff``), regardless of ``fmt``. JPEG drops an alpha channel.
    """
    fmt = fmt.lower()
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"unknown output format {fmt!r}: expected 'jpeg' or 'png'")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    _check_encodable(img)
    if img.dtype == np.float32:
        ext, params = ".tiff", []
    elif img.dtype == np.uint16 or fmt == "png":
        ext, params = ".png", [cv2.IMWRITE_PNG_COMPRESSION, 3]
    else:
        ext, params = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        if img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    ok, encoded = cv2.imencode(ext, img, params)
    if not ok:
        raise ValueError(f"OpenCV failed to encode {img.dtype} array of shape {img.shape} as {ext}")
    return encoded.tobytes(), ext


def resize_keep_aspect(
    img: np.ndarray,
    max_width: int | None = None,
    max_height: int | None = None,
    interpolation: int = cv2.INTER_AREA,
) -> np.ndarray:
    """Shrink ``img`` to fit in ``max_width`` x ``max_height`` keeping the aspect ratio; never upscales.

    Returns ``img`` itself when it already fits. dtype is kept. For depth with NaNs prefer
    ``interpolation=cv2.INTER_NEAREST`` (INTER_AREA averages NaN into its neighbours).
    """
    for name, limit in (("max_width", max_width), ("max_height", max_height)):
        if limit is not None and limit < 1:
            raise ValueError(f"{name} must be >= 1, got {limit}")
    height, width = img.shape[:2]
    scale = min(
        1.0,
        max_width / width if max_width else 1.0,
        max_height / height if max_height else 1.0,
    )
    if scale >= 1.0:
        return img
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if max_width:
        size = (min(size[0], max_width), size[1])
    if max_height:
        size = (size[0], min(size[1], max_height))
    return cv2.resize(img, size, interpolation=interpolation)
