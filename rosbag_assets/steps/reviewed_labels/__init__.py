"""`reviewed_labels`: a drive's boxes as people reviewed them in a labelling tool, imported from the tool's file.

The file is a SageMaker Ground Truth bounding-box OUTPUT manifest (an adjustment or verification job writes it
to ``<S3OutputPath>/<job>/manifests/output/output.manifest``) or a COCO JSON exported by a labelling tool (CVAT,
Label Studio, ...). It is read only from under the configured roots (the output root, the landing root):
anything else is refused, never opened. Every entry about this drive must name a frame of the drive's current
`extracted_frames`, else nothing is published and the error names the file and the entry; entries about other
drives are left to those drives' imports (one file often covers a dataset's many drives).

A new version keeps the earlier reviews of the frames this file does not cover, so importing job after job
accumulates and a frame's newest review wins. `training_dataset` reads the current version and prefers it to
the model's boxes on every frame it covers (a frame reviewed as empty loses its model boxes).

Layout: `options` (the Launchpad config; pydantic only, so the code location loads without pandas), `source`
(finding and parsing the file), `picture` (the preview), `run` (the step). Names below are imported from their
module on first use.
"""

from rosbag_assets.steps.lazy import lazy_exports

_EXPORTS = {
    "ASSET": "options",
    "REVIEWS_PREFIX": "options",
    "ReviewedLabelsOptions": "options",
    "model_labels": "picture",
    "preview_sheet": "picture",
    "ROW_COLUMNS": "run",
    "read_current": "run",
    "run_reviewed_labels": "run",
    "assign_to_drive": "source",
    "drives_named_in": "source",
    "is_review_file": "source",
    "parse_file": "source",
    "resolve_file": "source",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
