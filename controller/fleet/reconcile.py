"""Desired versus observed: the decision step of the controller's reconcile loop.

``decide`` is a pure function (kopf style): given what the operator wants
each device to serve, what the devices last reported, what is in flight and
how earlier attempts ended, it returns the deployments to start now. All I/O
(uploads, deploy RPCs, the database) happens in the executor around it, so
every rule below is tested without a server.

Rules, per (device, model) the operator wants:

- the device serves exactly that spec → converged, nothing to do;
- the device is stale or offline → wait; it converges by itself when its
  heartbeats come back (no operator action needed);
- a deployment of it is already in flight → wait;
- the last attempt of *this* spec succeeded and the device has not reported
  since → wait for its next heartbeat: the report lags the switch, and
  deploying again would only repeat a deployment that is already active;
- the last attempt of *this* spec failed permanently (the model does not
  build, fails its smoke test, does not fit the spec) → blocked: retrying
  cannot help and would only storm the device; a new desired spec unblocks;
- the last attempt failed transiently (network, agent busy) → retry after a
  capped exponential backoff;
- otherwise → deploy.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jetfleet.common.fleet import ModelSpec
from jetfleet.controller.fleet.store import Desired, DeviceRecord, Liveness

# gRPC status names after which retrying the same spec cannot succeed.
PERMANENT_CODES = frozenset({"INVALID_ARGUMENT", "FAILED_PRECONDITION", "DATA_LOSS", "NOT_FOUND", "UNIMPLEMENTED"})
RETRY_BASE_S = 2.0  # first retry soon: most transient failures are a blip
RETRY_CAP_S = 120.0  # never wait longer than two minutes once the device is reachable


class Decision(enum.StrEnum):
    DEPLOY = "deploy"
    CONVERGED = "converged"
    WAIT_OFFLINE = "wait-offline"
    IN_FLIGHT = "in-flight"
    BLOCKED = "blocked"
    BACKOFF = "backoff"
    UNKNOWN_DEVICE = "unknown-device"


@dataclass(frozen=True)
class Attempt:
    """How the last deployment of ``spec`` to a device ended."""

    spec: ModelSpec
    code: str  # gRPC status name; "OK" = active
    reason: str
    finished_at: float
    failures: int  # consecutive failures of this spec on this device


@dataclass(frozen=True)
class Action:
    device: str
    spec: ModelSpec
    decision: Decision
    reason: str = ""
    retry_at: float = 0.0


def retry_delay(failures: int) -> float:
    """Capped exponential backoff after ``failures`` consecutive transient failures."""
    return min(RETRY_CAP_S, RETRY_BASE_S * 2 ** max(0, failures - 1))


def decide_one(
    want: Desired,
    device: DeviceRecord | None,
    liveness: Liveness | None,
    in_flight: bool,
    last: Attempt | None,
    now: float,
) -> Action:
    """The decision for one (device, model)."""
    spec = want.spec
    if device is None or liveness is None:
        return Action(want.device, spec, Decision.UNKNOWN_DEVICE, "the device is not registered")
    slot = device.serves(spec.model)
    if slot is not None and slot.spec == spec:
        return Action(want.device, spec, Decision.CONVERGED)
    if liveness != Liveness.ONLINE:
        return Action(want.device, spec, Decision.WAIT_OFFLINE, f"the device is {liveness}")
    if in_flight:
        return Action(want.device, spec, Decision.IN_FLIGHT)
    if last is not None and last.spec == spec and last.code == "OK" and device.last_seen <= last.finished_at:
        return Action(want.device, spec, Decision.IN_FLIGHT, "deployed; waiting for the device to report it")
    if last is not None and last.spec == spec and last.code != "OK":
        if last.code in PERMANENT_CODES:
            return Action(want.device, spec, Decision.BLOCKED, f"{last.code}: {last.reason}")
        retry_at = last.finished_at + retry_delay(last.failures)
        if now < retry_at:
            return Action(want.device, spec, Decision.BACKOFF, f"{last.code}: {last.reason}", retry_at)
    return Action(want.device, spec, Decision.DEPLOY)


def decide(
    desired: Iterable[Desired],
    devices: Mapping[str, DeviceRecord],
    liveness: Mapping[str, Liveness],
    in_flight: set[tuple[str, str]],
    attempts: Mapping[tuple[str, str], Attempt],
    now: float,
) -> list[Action]:
    """Decisions for every desired (device, model), in a stable order."""
    return [
        decide_one(
            want,
            devices.get(want.device),
            liveness.get(want.device),
            (want.device, want.spec.model) in in_flight,
            attempts.get((want.device, want.spec.model)),
            now,
        )
        for want in sorted(desired, key=lambda d: (d.device, d.spec.model))
    ]
