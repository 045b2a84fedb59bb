"""`extracted_frames`: one streaming pass over each bag for all selected image topics.

Raw frames are encoded on a bounded thread pool (OpenCV releases the GIL); `CompressedImage` payloads are
passed through untouched. Frames go into an uncommitted version folder, indexed per bag
(``index/part-<bag>.parquet``), and are committed last with a drive-wide ``index.parquet``. A bag can be
extracted on its own (one Batch array child per bag) and the parts merged by `commit_extracted_frames`.

Layouts: ``shards`` (default) appends frames, in bag order, to tar shards per bag and topic
(``frames/<bag>/<topic>/shard-00000.tar``, WebDataset-style; ``tar -xf`` gives the files back) and the index
records each frame's byte range, so a drive is a few large objects instead of millions of small ones;
``files`` writes one file per frame.

Layout: `options` (the step's one options model, also the asset's Launchpad config; pydantic only, so the
code location loads without the libraries below), `bag` (one bag's pass), `wire` (Image message parsing),
`index` (per-bag parts, the drive index, the commit), `parallel` (bags in processes), `run` (the step).
Names below are imported from their module on first use.
"""

from rosbag_assets.steps.lazy import lazy_exports

_EXPORTS = {
    "BagExtraction": "bag",
    "FrameWriteError": "bag",
    "extract_bag": "bag",
    "select_connections": "bag",
    "topic_slug": "bag",
    "IncompleteDriveError": "index",
    "bags_from_inventory": "index",
    "commit_extracted_frames": "index",
    "write_part": "index",
    "COMPRESSED": "options",
    "IMAGE": "options",
    "INDEX_COLUMNS": "options",
    "LAYOUTS": "options",
    "ExtractedFramesOptions": "options",
    "bag_parallelism": "parallel",
    "parse_image_message": "wire",
    "run_extracted_frames": "run",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
