"""The reconcile decision step, on its own: every rule from the module docstring."""

from __future__ import annotations

from dataclasses import replace

from jetfleet.common.device import DeviceInfo
from jetfleet.common.fleet import ArtifactRef, ModelSlot, ModelSpec
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.fleet.reconcile import Attempt, Decision, decide, retry_delay
from jetfleet.controller.fleet.store import Desired, DeviceRecord, Liveness

INFO = DeviceInfo("h", "b", "cpu-x86_64", False, "cpu", 2, 1000, "os", "k", "3.11", "0.1")
V1 = ModelSpec("basic_cnn", 1, "fp32", ArtifactRef("aa" * 32, 1), PreprocessSpec((8, 8), 1, (0.3,), (0.4,)))
V2 = replace(V1, version=2, onnx=ArtifactRef("bb" * 32, 1))


def _dev(name: str, serving: ModelSpec | None = None) -> DeviceRecord:
    active = (ModelSlot(serving, "onnxruntime", "f" * 32, 0.0),) if serving else ()
    return DeviceRecord(name, "a:1", INFO, {}, ("onnxruntime",), active=active)


def _one(device: DeviceRecord | None, liveness: Liveness = Liveness.ONLINE, **kw: object) -> tuple[Decision, str]:
    devices = {device.name: device} if device else {}
    (action,) = decide(
        [Desired("d", V2, "r1")],
        devices,
        {"d": liveness} if device else {},
        kw.get("in_flight", set()),  # type: ignore[arg-type]
        kw.get("attempts", {}),  # type: ignore[arg-type]
        kw.get("now", 100.0),  # type: ignore[arg-type]
    )
    return action.decision, action.reason


def test_converged_deploy_and_offline() -> None:
    assert _one(_dev("d", V2))[0] == Decision.CONVERGED
    assert _one(_dev("d", V1))[0] == Decision.DEPLOY
    assert _one(_dev("d"))[0] == Decision.DEPLOY
    assert _one(_dev("d", V1), Liveness.OFFLINE) == (Decision.WAIT_OFFLINE, "the device is offline")
    assert _one(_dev("d", V1), Liveness.STALE)[0] == Decision.WAIT_OFFLINE
    assert _one(_dev("d", V2), Liveness.OFFLINE)[0] == Decision.CONVERGED  # it serves it; nothing to push
    assert _one(None)[0] == Decision.UNKNOWN_DEVICE


def test_in_flight_is_not_started_twice() -> None:
    assert _one(_dev("d", V1), in_flight={("d", "basic_cnn")})[0] == Decision.IN_FLIGHT


def test_a_success_waits_for_the_device_to_report_it_instead_of_deploying_again() -> None:
    """The heartbeat that shows the new slot lags the deploy: until it comes, re-deploying would repeat it."""
    done = {("d", "basic_cnn"): Attempt(V2, "OK", "", 99.5, 0)}
    before = replace(_dev("d", V1), last_seen=99.0)
    after = replace(_dev("d", V1), last_seen=99.7)  # reported since, and still not serving V2: deploy again
    assert _one(before, attempts=done, now=99.6)[0] == Decision.IN_FLIGHT
    assert _one(after, attempts=done, now=99.8)[0] == Decision.DEPLOY


def test_permanent_failure_blocks_without_a_retry_storm() -> None:
    failed = Attempt(V2, "FAILED_PRECONDITION", "smoke test 40% < 98%", 90.0, 1)
    decision, reason = _one(_dev("d", V1), attempts={("d", "basic_cnn"): failed}, now=10_000.0)
    assert decision == Decision.BLOCKED and "smoke test" in reason
    # A failure of an older spec does not block a new one.
    old = replace(failed, spec=V1)
    assert _one(_dev("d"), attempts={("d", "basic_cnn"): old})[0] == Decision.DEPLOY


def test_transient_failures_back_off_exponentially_with_a_cap() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 10)] == [2.0, 4.0, 8.0, 120.0]
    failed = Attempt(V2, "UNAVAILABLE", "connection reset", 100.0, 3)
    assert _one(_dev("d", V1), attempts={("d", "basic_cnn"): failed}, now=105.0)[0] == Decision.BACKOFF
    assert _one(_dev("d", V1), attempts={("d", "basic_cnn"): failed}, now=108.0)[0] == Decision.DEPLOY


def test_decisions_come_in_a_stable_order() -> None:
    desired = [Desired("b", V2, "r"), Desired("a", V2, "r")]
    devices = {n: _dev(n) for n in "ab"}
    actions = decide(desired, devices, dict.fromkeys("ab", Liveness.ONLINE), set(), {}, 0.0)
    assert [a.device for a in actions] == ["a", "b"]
