"""What `topic_tables` writes: which topics, what happens to large arrays, and how big a row group is."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

IMAGE_MSGTYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
MiB = 1024 * 1024


class TopicTablesOptions(BaseModel):
    """Options of the `topic_tables` step.

    `binary` decides what happens to an array value (``uint8[]`` blobs such as PointCloud2 ``data``, or numeric
    arrays such as LaserScan ``ranges``) larger than `max_binary_bytes`: ``keep`` stores it as it is,
    ``summary`` stores null there and adds ``<field>:len`` (and ``:min``/``:max`` for numeric arrays,
    ``data:points`` and ``data:x_min``..``data:z_max`` for PointCloud2) columns filled for every row,
    ``drop`` stores null. Smaller values are always kept, so a topic's schema never depends on its data.
    The policy applies to a message's own fields (nested ones included), not to arrays inside arrays of
    messages (``list<struct>`` columns are kept whole).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    include: list[str] = Field(default_factory=lambda: ["*"], description="topic globs to write")
    exclude: list[str] = Field(default_factory=list, description="topic globs to skip (wins over include)")
    exclude_msgtypes: list[str] = Field(
        default_factory=lambda: list(IMAGE_MSGTYPES),
        description="message type globs to skip; images have their own assets",
    )
    binary: Literal["keep", "summary", "drop"] = Field(
        "summary", description="array values over max_binary_bytes: keep, summary (null + len/min/max), drop"
    )
    max_binary_bytes: int = Field(64 * 1024, ge=0, description="array values up to this size are always kept")
    row_group_rows: int = Field(10_000, ge=1, description="rows per Parquet row group (at most)")
    row_group_bytes: int = Field(64 * MiB, ge=1, description="flush a topic's rows once they hold this much")
    buffer_bytes: int = Field(
        256 * MiB, ge=1, description="flush the fullest topic once all topics of a bag hold this much"
    )
    compression: Literal["zstd", "snappy", "lz4", "gzip", "none"] = Field(
        "zstd", description="Parquet compression codec"
    )
    fast_path: bool = Field(
        True,
        description="decode row groups of fixed-layout topics straight from the bytes (off: all via rosbags)",
    )
    msgdefs: dict[str, str] = Field(
        default_factory=dict,
        description="message type -> .msg (or .idl) text, for types a bag carries no definition of",
    )

    def wants(self, topic: str, msgtype: str) -> bool:
        """Whether `topic` of `msgtype` gets a table."""
        if any(fnmatchcase(msgtype, g) for g in self.exclude_msgtypes):
            return False
        if any(fnmatchcase(topic, g) for g in self.exclude):
            return False
        return any(fnmatchcase(topic, g) for g in self.include)
