"""Live training progress with rich: an epoch bar, a batch bar, one line per finished epoch.

Bars only render on a terminal. In logs and CI the per-epoch lines remain,
and within an epoch a plain progress line (images done, images/s, ETA)
appears at least every 30 s, so a 224-pixel epoch on a CPU is not minutes of
silence.
"""

from __future__ import annotations

import time
from types import TracebackType

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from jetfleet.common.progress import LOG_INTERVAL_S, ProgressLog


class TrainProgress:
    def __init__(
        self, console: Console, epochs: int, first_epoch: int = 0, log_interval_s: float = LOG_INTERVAL_S
    ) -> None:
        self.console = console
        self.log_interval_s = log_interval_s
        self.log: ProgressLog | None = None
        self.batch_size = 1
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.epoch_task = self.progress.add_task("epochs", total=epochs, completed=first_epoch, info="")
        self.batch_task = self.progress.add_task("batches", total=1, info="")
        self._last_loss_read = 0.0

    def __enter__(self) -> TrainProgress:
        self.progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def start_epoch(self, epoch: int, batches: int, images: int = 0, batch_size: int = 1) -> None:
        self.progress.reset(self.batch_task, total=batches, description=f"epoch {epoch + 1}", info="")
        self.batch_size = batch_size
        if self.progress.disable:
            self.log = ProgressLog(f"epoch {epoch + 1}", images or batches, self._print, interval_s=self.log_interval_s)

    def _print(self, line: str) -> None:
        self.console.print(line, highlight=False)

    def batch(self, index: int, loss: torch.Tensor) -> None:
        """Advance the batch bar; read the loss (a device sync on CUDA) at most ~10 times a second.

        Off a terminal, feed the log line instead; it reads the loss only when it prints.
        """
        if self.progress.disable:
            if self.log is not None:
                done = min(self.log.total, (index + 1) * self.batch_size)
                if self.log.due():
                    self.log.update(done, f"loss {float(loss):.4f}")
            return
        now = time.monotonic()
        if now - self._last_loss_read < 0.1:
            self.progress.update(self.batch_task, completed=index + 1)
            return
        self._last_loss_read = now
        self.progress.update(self.batch_task, completed=index + 1, info=f"loss {float(loss):.4f}")

    def end_epoch(self, row: dict[str, float], best: bool) -> None:
        self.progress.advance(self.epoch_task)
        self.progress.update(self.epoch_task, info=f"val acc {row['val_accuracy']:.2%}")
        mark = " [green]★ best[/]" if best else ""
        self.console.print(
            f"epoch {int(row['epoch']):>3}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.2%}  "
            f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.2%}  lr {row['lr']:.2e}  "
            f"{row['images_per_second']:.0f} img/s{mark}"
        )
