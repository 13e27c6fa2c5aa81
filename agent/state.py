"""The agent's durable state: which model serves, what served before, what happened.

One JSON file, rewritten atomically (temp file, fsync, rename) on every
change, so a power cut leaves the old state or the new one. It is small (a
few models, the last deployments), so rewriting it whole is cheaper than any
database and trivially inspectable with ``cat``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_write_text
from jetfleet.common.fleet import DeploymentRecord, ModelSlot

FORMAT = "jetfleet.agent-state/1"
HISTORY = 200  # deployments kept: weeks of activity, a few hundred KB
PREVIOUS = 5  # rollback depth per model; older engines may be evicted


@dataclass
class AgentState:
    active: dict[str, ModelSlot] = field(default_factory=dict)
    previous: dict[str, list[ModelSlot]] = field(default_factory=dict)  # oldest first
    history: list[DeploymentRecord] = field(default_factory=list)  # oldest first
    # Anti-rollback: per model, the version this agent last accepted; lower ones need a signed rollback.
    accepted: dict[str, int] = field(default_factory=dict)

    def record(self, rec: DeploymentRecord) -> None:
        """Insert or replace (by deployment id) a deployment record."""
        for i, old in enumerate(self.history):
            if old.deployment_id == rec.deployment_id:
                self.history[i] = rec
                return
        self.history.append(rec)
        del self.history[:-HISTORY]

    def push_previous(self, slot: ModelSlot) -> None:
        stack = self.previous.setdefault(slot.spec.model, [])
        stack.append(slot)
        del stack[:-PREVIOUS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "active": {k: v.to_dict() for k, v in self.active.items()},
            "previous": {k: [s.to_dict() for s in v] for k, v in self.previous.items()},
            "history": [r.to_dict() for r in self.history],
            "accepted": dict(self.accepted),
        }

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> AgentState:
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
            return cls(
                active={k: ModelSlot.from_dict(v) for k, v in data["active"].items()},
                previous={k: [ModelSlot.from_dict(s) for s in v] for k, v in data["previous"].items()},
                history=[DeploymentRecord.from_dict(r) for r in data["history"]],
                accepted=_floors(data),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise JetfleetError(f"agent state {path} is unreadable: {exc}", "restore it or move it away") from exc


def _floors(data: dict[str, Any]) -> dict[str, int]:
    """The anti-rollback floors; a state file from before signed manifests starts them at what serves."""
    if "accepted" in data:
        return {str(k): int(v) for k, v in data["accepted"].items()}
    return {model: int(slot["spec"]["version"]) for model, slot in data["active"].items()}
