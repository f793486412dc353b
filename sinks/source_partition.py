"""The Kafka topic partition that rows, batches and files come from."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAG_DROP = re.compile(r"[^A-Za-z0-9-]")
# Keeps the longest file name well under the 255-byte limit of common filesystems.
_MAX_TAG = 64


@dataclass(frozen=True, slots=True)
class SourcePartition:
    """The Kafka topic partition a batch's offsets belong to."""

    topic: str
    partition: int

    def __post_init__(self) -> None:
        if self.partition < 0:
            raise ValueError(f"partition must be >= 0, got {self.partition}")
        if not 1 <= len(self.tag) <= _MAX_TAG:
            raise ValueError(f"topic {self.topic!r} gives no usable file name tag")

    @property
    def tag(self) -> str:
        """The topic's last dot-separated part, kept to `[A-Za-z0-9-]`, for file names."""
        return _TAG_DROP.sub("", self.topic.rsplit(".", 1)[-1])
