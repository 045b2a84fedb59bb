"""The ONNX models shipped as package data in ``vision/models`` and the ONNX Runtime sessions that run them.

Each model sits next to its ``.LICENSE`` and ``.ORIGIN.md`` (which wheel, version and path it came from).
Sessions run on CPU with thread spinning off: frames are anonymized in worker processes that share cores,
and spinning ONNX Runtime threads make an oversubscribed machine several times slower.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).resolve().parent / "models"


class ModelFileError(RuntimeError):
    """A shipped model file is missing or cannot be loaded."""


@lru_cache(maxsize=8)
def cpu_session(path: str, threads: int = 0, dynamic_dims: tuple[tuple[str, ...], ...] = ()) -> Any:
    """One ONNX Runtime CPU session per (model, threads), shared in the process.

    ``dynamic_dims`` names input/output tensors whose batch, height and width dimensions are fixed in the
    file but can vary (a fully convolutional model exported with one example size); they are relabelled
    as symbolic in memory, the file stays as shipped.
    """
    import onnxruntime as ort

    if not Path(path).is_file():
        raise ModelFileError(f"model {path} is missing (package data not installed?)")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # both exports list BN initializers as graph inputs; ORT warns about each
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads > 0:
        opts.intra_op_num_threads = threads
    try:
        model: str | bytes = (
            path if not dynamic_dims else _with_dynamic_dims(path, {n for g in dynamic_dims for n in g})
        )
        return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnx and ORT raise many types; say which file failed
        raise ModelFileError(f"cannot load model {path}: {exc}") from exc


def _with_dynamic_dims(path: str, names: set[str]) -> bytes:
    """The model with dims 0, 2, 3 of the named graph inputs/outputs symbolic, serialized."""
    import onnx

    model = onnx.load(path)
    for value in [*model.graph.input, *model.graph.output]:
        if value.name in names:
            dims = value.type.tensor_type.shape.dim
            for i, symbol in ((0, "batch"), (2, "height"), (3, "width")):
                dims[i].dim_param = symbol  # setting dim_param clears the fixed dim_value
    return model.SerializeToString()
