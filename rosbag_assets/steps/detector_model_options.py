"""`detector_model`'s options, also the asset's Launchpad config.

Pydantic, the standard library and `detector_tune`'s search space only: every run process loads the code
location, which imports this.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rosbag_assets.steps.detector_tune import TUNE_SPACE

# Ultralytics' optimizers (engine/trainer.py build_optimizer): a typo fails here, not after the dataset download
OPTIMIZERS = frozenset({"auto", "SGD", "MuSGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSprop"})

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # a dataset or version name


class DetectorModelOptions(BaseModel):
    """`detector_model`'s options (also its Launchpad config). ``device=None`` picks cuda:0 when available."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(
        "default", pattern=NAME_PATTERN, description="Name of the training_dataset to train on."
    )
    dataset_version: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Train on this committed training_dataset version; default: the current one.",
    )
    base_weights: str = Field(
        "yolo11n.pt",
        description="Starting weights: Ultralytics name, local path, s3:// or https:// URL, or an architecture "
        ".yaml (untrained, nothing to download).",
    )
    epochs: int = Field(50, ge=1, description="Training epochs (early stopping may end sooner).")
    imgsz: int = Field(640, ge=32, description="Training and evaluation image size (pixels, square).")
    batch: int = Field(16, ge=-1, description="Images per batch; -1: Ultralytics AutoBatch (CUDA only).")
    optimizer: str = Field("auto", description="Ultralytics optimizer: auto, SGD, AdamW, ...")
    lr0: float | None = Field(None, gt=0, description="Initial learning rate (needs a non-auto optimizer).")
    augmentation: Literal["none", "default", "strong"] = Field(
        "default", description="Augmentation preset (AUGMENTATION_PRESETS); never vertical flips."
    )
    hyperparameters: dict[str, float] = Field(
        default_factory=dict,
        description="Further Ultralytics training arguments of TUNE_SPACE (momentum, box, hsv_h, ...), e.g. "
        "the values a tuning run found.",
    )
    patience: int = Field(20, ge=1, description="Stop after this many epochs without val improvement.")
    seed: int = Field(0, description="Random seed of training.")
    device: str | None = Field(None, description="cpu, cuda:0, ...; default: the GPU when present.")
    workers: int = Field(4, ge=0, description="Data-loader worker processes.")
    amp: Literal["auto", "fp16", "bf16", "fp32"] = Field(
        "auto", description="Mixed precision on CUDA: auto picks bf16 where supported (see amp_arg)."
    )
    tune: bool = Field(False, description="Search hyperparameters (Ultralytics tuner) before training.")
    tune_iterations: int = Field(10, ge=1, description="Tuning trials.")
    tune_epochs: int | None = Field(
        None, ge=1, description="Epochs per tuning trial; default min(epochs, 10)."
    )
    plots: bool = Field(False, description="Let Ultralytics draw its plots (off: fonts/offline safety).")
    cache_dir: str | None = Field(None, description="Weights cache; default: weights.default_cache_dir().")
    eval_tolerance: float = Field(
        0.01, ge=0, description="The fine-tuned mAP50-95 may be at most this much below the base model's."
    )
    trained_model: str | None = Field(
        None,
        description="Skip training: evaluate and publish this model.tar.gz (best.pt, metrics.json, results.csv "
        "as a detector_model SageMaker job writes; s3:// or a path). A SageMaker tuning run sets it to the "
        "best trial's artefact.",
    )

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        if value not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {value!r}; Ultralytics knows {sorted(OPTIMIZERS)}")
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _known_hyperparameters(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(TUNE_SPACE))
        if unknown:
            raise ValueError(f"unknown hyperparameters {unknown}; known: {sorted(TUNE_SPACE)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DetectorModelOptions:
        if self.lr0 is not None and self.optimizer == "auto":
            raise ValueError(
                "lr0 is ignored by optimizer='auto'; also choose an optimizer, e.g. 'SGD' or 'AdamW'"
            )
        if self.trained_model and self.tune:
            raise ValueError("tune has no effect with trained_model (nothing is trained)")
        return self
