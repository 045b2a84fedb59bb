"""`drive_report`: one self-contained HTML page per drive, for people who do not open Dagster.

Built from the published (CURRENT) versions of `raw_bags`, `extracted_frames`, `object_labels` and
`lane_labels` that exist; a missing one is named as missing, never fatal. Pictures are embedded JPEG/PNG
data, so the page can be mailed or copied anywhere. Published like every asset (a version + CURRENT.json)
under ``<drive>/report/``, and the current page is also copied to ``<drive>/report/index.html``.
"""

from __future__ import annotations

import base64
import html
import itertools
import time
from collections.abc import Iterable
from typing import Any

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.steps import report
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.vision import preview

REPORT_DIR = "report"
FRAMES_PER_TOPIC = 6
THUMBNAIL_FRAMES = 4
UPSTREAM = ("raw_bags", "extracted_frames", "object_labels", "lane_labels")
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 12px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto}.grid{display:grid;grid-template-columns:repeat(3,1fr);gap:6px}
.grid figure{margin:0}.grid figcaption{font-size:12px;color:#555}.miss{color:#a33}
.bar{background:#4a7fc1;height:10px;display:inline-block}
"""


def _img(data: bytes, alt: str, mime: str = "image/jpeg") -> str:
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'


def _table(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            numeric = isinstance(v, int | float) and not isinstance(v, bool)
            text = (
                f"{v:,.2f}"
                if isinstance(v, float)
                else f"{v:,}"
                if numeric
                else ("" if v is None else str(v))
            )
            cells.append(f'<td class="n">{text}</td>' if numeric else f"<td>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _current(output: Storage, drive: str) -> dict[str, tuple[publish.Version, dict[str, Any]] | None]:
    found = {}
    for asset in UPSTREAM:
        manifest = publish.current(output, join_key(drive, asset))
        found[asset] = (
            (publish.Version(output, join_key(drive, asset), manifest["version"]), manifest)
            if manifest
            else None
        )
    return found


def _bags_section(version: publish.Version) -> tuple[str, dict[str, Any]]:
    bags = version.read_parquet("bags.parquet")
    topics = version.read_parquet("topics.parquet")
    parts = ["<h2>Bags and topics</h2>"]
    if version.storage.exists(version.key("timeline.png")):
        parts.append(_img(version.storage.read_bytes(version.key("timeline.png")), "timeline", "image/png"))
    cols = ["bag", "format", "bytes", "duration_s", "messages", "ok", "error"]
    parts.append(_table(bags[cols].to_dict("records"), cols))
    per_topic = topics.groupby(["topic", "msgtype"], as_index=False)["count"].sum()
    parts.append(_table(per_topic.to_dict("records"), ["topic", "msgtype", "count"]))
    return "\n".join(parts), {"bags": len(bags), "messages": int(bags["messages"].sum())}


def _counts_table(counts: dict[str, int], label: str) -> str:
    peak = max(counts.values(), default=1) or 1
    rows = "".join(
        f'<tr><td>{html.escape(k)}</td><td class="n">{v:,}</td>'
        f'<td><span class="bar" style="width:{round(200 * v / peak)}px"></span></td></tr>'
        for k, v in counts.items()
    )
    return f"<table><tr><th>{html.escape(label)}</th><th>count</th><th></th></tr>{rows}</table>"


def _frames_section(
    output: Storage,
    frames: tuple[publish.Version, dict[str, Any]],
    labels: Any,
    lanes: Any,
    firsts: list[tuple[Any, str]],
) -> tuple[str, dict[str, Any]]:
    """Frames spread evenly over each camera topic, with their object boxes and lanes drawn; the first
    drawn frames (each topic's first before any second one) go to `firsts`, for the thumbnail."""
    import numpy as np

    from rosbag_assets.io.frames import read_frame_bytes
    from rosbag_assets.vision import preview
    from rosbag_assets.vision.lanes import Lane, draw_lanes

    version, _ = frames
    index = version.read_parquet("index.parquet")
    parts = ["<h2>Frames</h2>", _counts_table(index.groupby("topic").size().to_dict(), "topic (frames)")]
    shown = 0
    per_topic: list[list[tuple[Any, str]]] = []
    for topic, rows in index.groupby("topic", sort=True):
        picks = np.unique(np.linspace(0, len(rows) - 1, min(FRAMES_PER_TOPIC, len(rows))).round().astype(int))
        figures = []
        per_topic.append([])
        for row in rows.iloc[picks].to_dict("records"):
            try:
                img = preview.thumbnail(read_frame_bytes(output, version, row))
            except Exception as exc:
                figures.append(f'<figure class="miss">{html.escape(row["frame_key"])}: {exc}</figure>')
                continue
            key = row["frame_key"]
            if labels is not None:
                img = preview.draw_boxes(img, labels[labels["frame_key"] == key].to_dict("records"))
            if lanes is not None:
                mine = lanes[lanes["frame_key"] == key]
                img = draw_lanes(
                    img,
                    [
                        Lane(int(r.lane_id), r.side, [tuple(p) for p in r.points], r.score)
                        for r in mine.itertuples()
                    ],
                )
            small = preview.contact_sheet([img], columns=1, tile_width=320)
            stamp = time.strftime("%H:%M:%S", time.gmtime(row["stamp_ns"] / 1e9))
            if len(per_topic[-1]) < THUMBNAIL_FRAMES:
                per_topic[-1].append((small, str(topic)))
            caption = f"{stamp}.{row['stamp_ns'] % 1_000_000_000 // 1_000_000:03d} · {row['bag']}"
            picture = _img(preview.jpeg_bytes(small), key)
            figures.append(f"<figure>{picture}<figcaption>{html.escape(caption)}</figcaption></figure>")
            shown += 1
        parts.append(f"<h3>{html.escape(topic)}</h3><div class='grid'>{''.join(figures)}</div>")
    rounds = itertools.zip_longest(*per_topic)  # each camera's first frame, then each one's second, ...
    firsts += [f for frames_of_round in rounds for f in frames_of_round if f is not None][:THUMBNAIL_FRAMES]
    return "\n".join(parts), {"frames": len(index), "frames_shown": shown}


def _topic_chart(version: publish.Version, drive: str) -> Any:
    """The drive's messages per topic over time (from `raw_bags`' rates), readable at 320 px."""
    from rosbag_assets.vision.topic_rows import draw_topic_rows

    if not version.storage.exists(version.key("rates.parquet")):
        return None
    bags = version.read_parquet("bags.parquet").dropna(subset=["start_ns"]).to_dict("records")
    rates = version.read_parquet("rates.parquet").to_dict("records")
    return draw_topic_rows(bags, rates, f"{drive}: messages per topic over time")


def build_report(
    output: Storage, drive: str, thumbnail: list[Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """The HTML page of `drive` from whatever is published, and a summary of what it holds. Given a list as
    `thumbnail`, a picture of the page (first frames and topic chart, BGR) is appended to it."""
    firsts: list[tuple[Any, str]] = []
    current = _current(output, drive)
    summary: dict[str, Any] = {"sources": {a: (v[1]["version"] if v else None) for a, v in current.items()}}
    sections = []
    missing = [a for a, v in current.items() if v is None]
    if current["raw_bags"]:
        text, info = _bags_section(current["raw_bags"][0])
        sections.append(text)
        summary.update(info)
    labels = lanes = None
    if current["object_labels"]:
        version, manifest = current["object_labels"]
        labels = version.read_parquet("labels.parquet")
        counts = (
            labels.groupby("class_name").size().sort_values(ascending=False).to_dict() if len(labels) else {}
        )
        note = (
            f" — fallback: {html.escape(manifest['fallback_reason'])}"
            if manifest.get("fallback_reason")
            else ""
        )
        sections.append(
            f"<h2>Objects</h2><p>{len(labels):,} boxes by <b>{html.escape(str(manifest.get('model')))}</b>"
            f"{note}</p>{_counts_table({str(k): int(v) for k, v in counts.items()}, 'class')}"
        )
        summary["labels"], summary["classes"] = len(labels), {str(k): int(v) for k, v in counts.items()}
    if current["lane_labels"]:
        version, manifest = current["lane_labels"]
        lanes = version.read_parquet("lanes.parquet")
        sides = lanes.groupby("side").size().to_dict() if len(lanes) else {}
        sections.append(
            f"<h2>Lanes</h2><p>{len(lanes):,} lane lines on {lanes['frame_key'].nunique() if len(lanes) else 0:,}"
            f" frames by <b>{html.escape(str(manifest.get('model')))}</b></p>"
            f"{_counts_table({str(k): int(v) for k, v in sides.items()}, 'side')}"
        )
        summary["lanes"] = len(lanes)
    if current["extracted_frames"]:
        text, info = _frames_section(output, current["extracted_frames"], labels, lanes, firsts)
        sections.append(text)
        summary.update(info)
    sources = "".join(
        f"<li>{a}: {html.escape(v[0].uri()) if v else '<span class=miss>not published yet</span>'}</li>"
        for a, v in current.items()
    )
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Drive {html.escape(drive)}</title>"
        f"<style>{_CSS}</style></head><body><h1>Drive {html.escape(drive)}</h1>"
        f"<p>Generated {generated}. Built from these published versions:</p><ul>{sources}</ul>"
        + "\n".join(sections)
        + "</body></html>"
    )
    summary["missing"] = missing
    if thumbnail is not None:
        from rosbag_assets.vision.report_thumbnail import report_thumbnail

        chart = _topic_chart(current["raw_bags"][0], drive) if current["raw_bags"] else None
        thumbnail.append(report_thumbnail(firsts, chart))
    return page, summary


@step_runner()
def run_drive_report(step: Step) -> report.StepResult:
    """Build the drive's HTML report and publish it under ``<drive>/report/``."""
    drive, output, log = step.drive, step.output, step.log
    pictures: list[Any] = []
    page, summary = build_report(output, drive, pictures)
    if len(summary["missing"]) == len(UPSTREAM):
        raise FileNotFoundError(f"{output.uri(drive)}: nothing is published for drive {drive!r} yet")
    for asset in summary["missing"]:
        log.warning(f"drive_report {drive}: {asset} is not published yet; its section is left out")
    prefix = step.key(REPORT_DIR)
    staging = step.begin(REPORT_DIR)
    data = page.encode()
    staging.write_bytes("index.html", data)
    thumbnail = preview.jpeg_bytes(pictures[0], quality=85)
    staging.write_bytes("thumbnail.jpg", thumbnail)
    uri = staging.commit({"drive": drive, **summary})
    latest_key = join_key(prefix, "index.html")
    output.write_bytes(latest_key, data)  # a stable address for bookmarks: the page of the current version
    log.info(f"drive_report {drive}: {len(data) / 1e6:.1f} MB page at {output.uri(latest_key)}")
    link = report.output_url(latest_key)
    metadata = {
        "report": report.url(link) if link else report.uri_value(output.uri(latest_key)),
        "report_version": report.uri_value(staging.uri("index.html")),
        "thumbnail": report.picture(
            thumbnail, f"{drive} report", staging.key("thumbnail.jpg"), storage=staging.storage
        ),
        "page_mb": report.number(len(data) / 1e6, digits=2),
        "frames_shown": report.integer(summary.get("frames_shown", 0)),
        "sources": report.json_value(summary["sources"]),
        "elapsed_s": step.elapsed(),
    }
    if summary["missing"]:
        metadata["missing"] = report.text(", ".join(summary["missing"]))
    metadata.update(report.publication(uri, []))
    return report.StepResult(metadata=metadata)
