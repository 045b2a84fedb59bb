"""``weights: "asset"``: a step runs the current detector this project trained, named by its asset version.

`object_labels` accepts ``"asset"`` / ``"asset:<dataset>"`` as weights; `resolve_asset_weights` turns that into
a local file and a URI naming the exact model (and export) version, which every label row records.
"""

from __future__ import annotations

from pathlib import Path

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage
from rosbag_assets.steps.detector_export import export_prefix
from rosbag_assets.steps.detector_model import model_prefix
from rosbag_assets.vision.weights import default_cache_dir

ASSET_SCHEME = "asset"


def is_asset_spec(spec: str | None) -> bool:
    return spec is not None and (spec == ASSET_SCHEME or spec.startswith(f"{ASSET_SCHEME}:"))


def resolve_asset_weights(output: Storage, spec: str, cache_dir: Path | None = None) -> tuple[Path, str]:
    """``"asset"`` / ``"asset:<dataset>"`` -> (local weights file, URI naming the model asset version).

    Prefers the current detector_export's ONNX when it was exported from the current detector_model (a
    stale export is ignored), else the model's best.pt. The URI is ``asset:models/<d>/detector_model@<v>``,
    plus ``+detector_export@<v>`` when the ONNX runs, so each label row names the exact model it came from.
    """
    dataset = spec.partition(":")[2] or "default"
    model, _ = publish.require_current(output, model_prefix(dataset))
    uri = f"{ASSET_SCHEME}:{model_prefix(dataset)}@{model.version}"
    key = model.key("best.pt")
    exported = publish.current(output, export_prefix(dataset))
    if exported and exported.get("model_version") == model.version and "onnx" in exported.get("files", {}):
        export = publish.Version(output, export_prefix(dataset), exported["version"])
        key = export.key(exported["files"]["onnx"])
        uri += f"+detector_export@{export.version}"
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    local = cache / "assets" / key
    if not local.is_file():
        local.parent.mkdir(parents=True, exist_ok=True)
        part = local.with_name(local.name + ".part")
        output.download_file(key, part)
        part.replace(local)
    return local, uri
