"""What a job reports back: metadata and check outcomes, in dagster-pipes' wire format.

Jobs return plain data; the Pipes entry point forwards it over `dagster-pipes`, and the in-process path
hands the very same structure to Dagster. Metadata values are ``{"raw_value": v, "type": t}`` with the
Pipes metadata types ("int", "float", "text", "md", "url", "path", "json", "table", ...).
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

MetadataValue = dict[str, Any]


def md(value: str) -> MetadataValue:
    return {"raw_value": value, "type": "md"}


def text(value: str) -> MetadataValue:
    return {"raw_value": value, "type": "text"}


def url(value: str) -> MetadataValue:
    return {"raw_value": value, "type": "url"}


def path(value: str) -> MetadataValue:
    return {"raw_value": value, "type": "path"}


def json_value(value: Any) -> MetadataValue:
    return {"raw_value": value, "type": "json"}


def boolean(value: bool) -> MetadataValue:
    """A yes/no entry (Pipes' JSON type takes only objects and lists: a bare bool there breaks the run)."""
    return {"raw_value": bool(value), "type": "bool"}


def integer(value: int) -> MetadataValue:
    return {"raw_value": int(value), "type": "int"}


def number(value: float, digits: int | None = None) -> MetadataValue:
    """A float, rounded to `digits` decimals when given: seconds and rates to what a person reads (0.83 s,
    not 0.8312749)."""
    return {"raw_value": float(value) if digits is None else round(float(value), digits), "type": "float"}


def uri_value(value: str) -> MetadataValue:
    """An s3:// or https:// address as a URL, a local path as a path."""
    return url(value) if "://" in value else path(value)


OUTPUT_URL_ENV = "ROSBAG_ASSETS_OUTPUT_URL"


def output_url(key: str) -> str | None:
    """The http(s) address of an output key when the output root is served over HTTP, else None.

    ``ROSBAG_ASSETS_OUTPUT_URL`` is the address under which the output root is served (a static file server
    beside ``make dev``, an S3 website or CDN in production).
    """
    base = os.environ.get(OUTPUT_URL_ENV, "").strip()
    return f"{base.rstrip('/')}/{quote(key)}" if base else None


# The Dagster UI cannot scale a markdown picture: one wider than the Value column of the asset page's
# metadata table is cut at the column's edge and must be scrolled sideways. That column shows 320-430 px
# in a 1440 px window (less beside long keys such as "preview /camera/side/image_raw/compressed"), ~750 at
# 1920. Pictures shown inline are copies this wide, linked to the original.
INLINE_WIDTH = 320


class Writer(Protocol):
    def write_bytes(self, key: str, data: bytes) -> Any: ...


def inline_key(key: str) -> str:
    """Where the inline-width copy of the picture at `key` is stored: beside it, ``<name>.inline.<ext>``."""
    stem, dot, ext = key.rpartition(".")
    return f"{stem}.inline.{ext}" if dot and "/" not in ext else f"{key}.inline"


def fit_width(data: bytes, width: int = INLINE_WIDTH, mime: str = "image/jpeg") -> bytes:
    """`data` scaled down (area-averaged, keeping its aspect and format) to at most `width` pixels wide;
    unchanged when it is already narrow enough."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"picture ({mime}, {len(data)} bytes) could not be decoded")
    if img.shape[1] <= width:
        return data
    height = max(1, round(img.shape[0] * width / img.shape[1]))
    small = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    png = mime == "image/png"
    ok, buf = cv2.imencode(".png" if png else ".jpg", small, [] if png else [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError(f"picture ({mime}) could not be encoded at {width} px")
    return buf.tobytes()


def picture(
    data: bytes,
    alt: str,
    key: str | None = None,
    mime: str = "image/jpeg",
    storage: Writer | None = None,
    inline: bytes | None = None,
) -> MetadataValue:
    """A picture in the asset's metadata.

    The Dagster UI renders a markdown value in place only when it is shorter than 1,000 characters, and
    behind a "[Show Markdown]" button otherwise. So when the stored file (`key`, relative to the output
    root) has an http(s) address (`output_url`), the value is a short link and shows inline: a copy at most
    INLINE_WIDTH px wide (written beside the file through `storage`), which opens the full picture when
    clicked. Without an address the full picture is embedded as a data URI and opens from that button (a
    dialog up to 80% of the window wide). `inline` is a copy drawn for that width (same format) where scaling
    the picture down would leave its text unreadable.
    """
    url = output_url(key) if key else None
    if url and key:
        shown = url
        if storage is not None:
            small = inline if inline is not None else fit_width(data, INLINE_WIDTH, mime)
            if small is not data:
                storage.write_bytes(inline_key(key), small)
                shown = output_url(inline_key(key)) or url
        return md(f"[![{alt}]({shown})]({url})")
    return md(f"![{alt}](data:{mime};base64,{base64.b64encode(data).decode()})")


def table(records: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> MetadataValue:
    """A table the Dagster UI renders. `columns` are (name, type) with type in string/int/float/bool;
    floats are rounded to 3 decimals."""
    cast = {"int": int, "float": lambda v: round(float(v), 3), "bool": bool, "string": str}
    rows = [
        {name: (None if r.get(name) is None else cast[typ](r[name])) for name, typ in columns}
        for r in records
    ]
    return {
        "raw_value": {"records": rows, "schema": [{"name": n, "type": t} for n, t in columns]},
        "type": "table",
    }


@dataclass
class CheckOutcome:
    """The result of one asset check evaluated inside the step."""

    name: str
    passed: bool
    description: str = ""
    severity: str = "ERROR"  # or "WARN"
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


@dataclass
class StepResult:
    """Everything a step reports for one materialization."""

    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)
    data_version: str | None = None


class StepLog(Protocol):
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...


def default_log(name: str = "rosbag_assets") -> StepLog:
    return logging.getLogger(name)


def traceable(result: StepResult, drive: str) -> StepResult:
    """Every check result names its partition: ``drive`` in its metadata, the drive in its description."""
    for check in result.checks:
        check.metadata.setdefault("drive", text(drive))
        if not check.description.startswith(f"drive {drive}:"):
            check.description = f"drive {drive}: {check.description}"
    return result


def blocking_failures(checks: Sequence[CheckOutcome]) -> list[str]:
    """Names of the failed checks that block publication (severity ERROR); see `publish.Draft.commit`."""
    return [c.name for c in checks if not c.passed and c.severity == "ERROR"]


def publication(uri: str, rejected: list[str]) -> dict[str, MetadataValue]:
    """Metadata saying whether this version became current, and why not."""
    meta = {"published": boolean(not rejected)}
    if rejected:
        meta["not_published_because"] = md(
            f"Blocking checks failed: {', '.join(rejected)}. The version is kept at `{uri}` for inspection; "
            "the previous version stays current."
        )
    return meta
