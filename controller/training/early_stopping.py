"""Early stopping on a validation metric, with state that survives a resume."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EarlyStopping:
    """Track the best value of a metric; ``should_stop`` after ``patience`` epochs without improvement.

    ``patience == 0`` never stops but still tracks the best epoch, which
    decides the ``best.pt`` checkpoint.
    """

    patience: int = 0
    maximize: bool = True
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value`` for ``epoch``; return whether it is a new best."""
        improved = self.best is None or (
            value > self.best + self.min_delta if self.maximize else value < self.best - self.min_delta
        )
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
