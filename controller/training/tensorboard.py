"""TensorBoard event files, written only when the ``tensorboard`` package is installed."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any


class TensorBoardLog:
    """A no-op unless tensorboard imports; training must never depend on it."""

    def __init__(self, log_dir: Path, write: bool = True) -> None:
        self.writer: Any = None
        if not write:  # a DDP rank other than 0
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(log_dir=str(log_dir))

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def epoch(self, row: dict[str, float]) -> None:
        if self.writer is None:
            return
        step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key.replace("_", "/", 1), value, step)
        self.writer.flush()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.writer is not None:
            self.writer.close()
