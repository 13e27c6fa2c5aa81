"""Deploy, activate and roll back models: stage → verify → build → smoke test → swap.

The previous model serves until the very last step. Every step before the
swap works on new objects only, so a failure anywhere simply drops them and
reports the step and reason ("rolled back"); the swap itself is one state
file rename plus one dictionary assignment under a lock.

Jobs borrow a :class:`Loaded` model through :meth:`ModelManager.use`; a
model swapped out while a job still runs is closed when that job returns, so
no job ever sees a half-activated or a freed engine.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from jetfleet.agent.engines.base import Backend, BuildError, Runner
from jetfleet.agent.engines.cache import EngineCache, EngineKey
from jetfleet.agent.errors import FAILED_PRECONDITION, INTERNAL, INVALID_ARGUMENT, NOT_FOUND, AgentError
from jetfleet.agent.smoke import SmokeTestFailed, check_io, smoke_test
from jetfleet.agent.state import AgentState
from jetfleet.agent.store import ArtifactStore
from jetfleet.common.device import DeviceInfo
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import DeploymentRecord, DeploymentState, ModelSlot, ModelSpec, Step

log = logging.getLogger(__name__)

# progress(step, message, fraction 0-1 or negative = unknown)
StepProgress = Callable[[Step, str, float], None]


@dataclass
class Loaded:
    """A serving model: its slot and runner, with a count of jobs using it."""

    slot: ModelSlot
    runner: Runner
    users: int = 0
    retired: bool = False


@dataclass(frozen=True)
class Outcome:
    """A finished deployment and the gRPC status name it ends with ("OK" when active)."""

    record: DeploymentRecord
    code: str = "OK"


class ModelManager:
    """Owns the active models of one agent and their durable state."""

    def __init__(
        self,
        agent: str,
        data_dir: Path,
        store: ArtifactStore,
        backend: Backend,
        device: DeviceInfo,
        smoke_margin: float,
    ) -> None:
        self.agent = agent
        self.store = store
        self.backend = backend
        self.device = device
        self.smoke_margin = smoke_margin
        self.cache = EngineCache(data_dir / "engines")
        self.state_path = data_dir / "state.json"
        self.state = AgentState.load(self.state_path)
        self._loaded: dict[str, Loaded] = {}
        self._unavailable: dict[str, str] = {}  # model -> why its engine could not be loaded at start
        self._lock = threading.Lock()  # guards _loaded, state and the users counters
        self._deploying = threading.Lock()  # one activation at a time: builds compete for the GPU anyway

    # -- start-up --------------------------------------------------------
    def restore(self) -> None:
        """After a (re)start: finish interrupted deployments, reload the active engines."""
        removed = self.cache.clean()
        if removed:
            log.info("removed %d unfinished engine build(s)", removed)
        now = time.time()
        for rec in list(self.state.history):
            if rec.state == DeploymentState.RUNNING:
                state = DeploymentState.ROLLED_BACK if rec.previous else DeploymentState.FAILED
                self.state.record(rec.finish(state, now, reason="the agent stopped during the deployment"))
        self.state.save(self.state_path)
        for name, slot in self.state.active.items():
            try:
                runner, _, _ = self._engine(slot.spec, _quiet)
                self._loaded[name] = Loaded(slot, runner)
            except Exception as exc:  # keep starting: other models may still serve
                log.error("model %s cannot be loaded: %s", slot.spec.ref, exc)
                self._unavailable[name] = str(exc)

    # -- queries ---------------------------------------------------------
    def active(self) -> list[ModelSlot]:
        with self._lock:
            return [loaded.slot for loaded in self._loaded.values()]

    def history(self, n: int) -> list[DeploymentRecord]:
        with self._lock:
            return list(self.state.history[-n:]) if n > 0 else []

    @contextlib.contextmanager
    def use(self, model: str | None) -> Iterator[Loaded]:
        """Borrow the active model (the only one when ``model`` is empty) for a job."""
        with self._lock:
            loaded = self._pick(model)
            loaded.users += 1
        try:
            yield loaded
        finally:
            with self._lock:
                loaded.users -= 1
                if loaded.retired and loaded.users == 0:
                    loaded.runner.close()

    def _pick(self, model: str | None) -> Loaded:
        if model:
            if model in self._loaded:
                return self._loaded[model]
            if model in self._unavailable:
                raise AgentError(FAILED_PRECONDITION, f"model {model} is not serving: {self._unavailable[model]}")
            raise AgentError(NOT_FOUND, f"no active model named {model!r} on {self.agent}")
        if len(self._loaded) == 1:
            return next(iter(self._loaded.values()))
        if not self._loaded:
            raise AgentError(FAILED_PRECONDITION, f"{self.agent} serves no model yet", "deploy one first")
        names = ", ".join(sorted(self._loaded))
        raise AgentError(INVALID_ARGUMENT, f"{self.agent} serves several models ({names}): name one")

    # -- deploy ----------------------------------------------------------
    def deploy(
        self, deployment_id: str, spec: ModelSpec, margin: float | None, progress: StepProgress = lambda *a: None
    ) -> Outcome:
        """Activate ``spec``; on any failure the previous model keeps serving."""
        with self._deploying:
            current = self._current(spec.model)
            if current is not None and current.spec == spec and spec.model in self._loaded:
                rec = self._begin(deployment_id, spec, current, rollback=False)
                done = rec.finish(DeploymentState.ACTIVE, time.time(), engine_cached=True, reason="already active")
                self._record(done)
                progress(Step.ACTIVATE, f"{spec.ref} is already active", 1.0)
                return Outcome(done)
            rec = self._begin(deployment_id, spec, current, rollback=False)
            margin = self.smoke_margin if margin is None else margin
            return self._run(rec, lambda steps: self._prepare(spec, margin, steps), progress)

    def rollback(self, deployment_id: str, model: str, progress: StepProgress = lambda *a: None) -> Outcome:
        """Go back to the model that served before the active one (its cached engine, no smoke test)."""
        with self._deploying:
            current = self._current(model)
            stack = self.state.previous.get(model, [])
            if current is None:
                raise AgentError(NOT_FOUND, f"no active model named {model!r} on {self.agent}")
            if not stack:
                raise AgentError(
                    FAILED_PRECONDITION, f"{model} has no previous version on {self.agent} to roll back to"
                )
            target = stack[-1]
            rec = self._begin(deployment_id, target.spec, current, rollback=True)

            def prepare(steps: StepProgress) -> tuple[Runner, dict[str, object]]:
                steps(Step.VERIFY, f"checking {target.spec.onnx.short}", -1)
                self.store.verify(target.spec.onnx)
                runner, cached, build_s = self._engine(target.spec, steps)
                check_io(runner, target.spec)
                return runner, {"engine_cached": cached, "build_s": build_s, "smoke_accuracy": target.smoke_accuracy}

            return self._run(rec, prepare, progress)

    def _current(self, model: str) -> ModelSlot | None:
        with self._lock:
            return self.state.active.get(model)

    def _begin(
        self, deployment_id: str, spec: ModelSpec, current: ModelSlot | None, rollback: bool
    ) -> DeploymentRecord:
        rec = DeploymentRecord(
            deployment_id, self.agent, spec, DeploymentState.RUNNING, time.time(), previous=current, rollback=rollback
        )
        self._record(rec)
        return rec

    def _record(self, rec: DeploymentRecord) -> None:
        with self._lock:
            self.state.record(rec)
            self.state.save(self.state_path)

    def _run(
        self,
        rec: DeploymentRecord,
        prepare: Callable[[StepProgress], tuple[Runner, dict[str, object]]],
        progress: StepProgress,
    ) -> Outcome:
        """Run ``prepare`` (every step before the swap), then swap; turn any failure into a rollback."""
        tracker = _StepTracker(progress)
        try:
            runner, facts = prepare(tracker)
        except Exception as exc:
            return self._fail(rec, tracker.step, exc)
        tracker(Step.ACTIVATE, "switching to the new model", 0.0)
        try:
            done = self._swap(rec, runner, facts)
        except Exception as exc:
            runner.close()
            return self._fail(rec, Step.ACTIVATE, exc)
        tracker(Step.ACTIVATE, f"{rec.spec.ref} is active", 1.0)
        return Outcome(done)

    def _prepare(self, spec: ModelSpec, margin: float, progress: StepProgress) -> tuple[Runner, dict[str, object]]:
        progress(Step.STAGE, f"locating {spec.onnx.short}", -1)
        self.store.path(spec.onnx)
        if spec.test_set is not None:
            self.store.path(spec.test_set)
        progress(Step.VERIFY, f"verifying sha256 of {spec.onnx.short}", -1)
        self.store.verify(spec.onnx)
        if spec.test_set is not None:
            self.store.verify(spec.test_set)
        runner, cached, build_s = self._engine(spec, progress)
        try:
            check_io(runner, spec)
            progress(Step.SMOKE_TEST, "classifying the test set", -1)
            test_path = self.store.path(spec.test_set) if spec.test_set else None
            accuracy = smoke_test(runner, spec, test_path, margin)
        except BaseException:
            runner.close()
            raise
        return runner, {"engine_cached": cached, "build_s": build_s, "smoke_accuracy": accuracy}

    def _engine(self, spec: ModelSpec, progress: StepProgress) -> tuple[Runner, bool, float]:
        """Load the engine from the cache, or build it there first: (runner, was cached, build seconds)."""
        key = self.engine_key(spec)
        path = self.cache.get(key)
        cached, build_s = path is not None, 0.0
        if path is None:
            progress(Step.BUILD, f"building a {self.backend.name} engine ({spec.precision})", 0.0)
            onnx_path = self.store.path(spec.onnx)
            start = time.perf_counter()
            path = self.cache.put(
                key, lambda out: self.backend.build(onnx_path, spec.precision, out, _build_progress(progress))
            )
            build_s = time.perf_counter() - start
        else:
            progress(Step.BUILD, f"engine {key.fingerprint()[:12]} found in the cache", 1.0)
        try:
            return self.backend.load(path), cached, build_s
        except BuildError:
            self.cache.remove(key.fingerprint())  # unusable (e.g. a truncated file): rebuild next time
            raise

    def engine_key(self, spec: ModelSpec) -> EngineKey:
        return EngineKey(
            artifact_sha256=spec.onnx.sha256,
            backend=self.backend.name,
            backend_version=self.backend.version(),
            device_class=self.device.device_class,
            compute_capability=self.device.compute_capability,
            l4t_release=self.device.l4t_release,
            precision=spec.precision,
            builder_flags=self.backend.builder_flags(spec.precision),
        )

    def _swap(self, rec: DeploymentRecord, runner: Runner, facts: dict[str, object]) -> DeploymentRecord:
        model = rec.spec.model
        slot = ModelSlot(
            spec=rec.spec,
            backend=self.backend.name,
            engine_fingerprint=self.engine_key(rec.spec).fingerprint(),
            activated_at=time.time(),
            smoke_accuracy=facts.get("smoke_accuracy"),  # type: ignore[arg-type]
        )
        done = rec.finish(DeploymentState.ACTIVE, slot.activated_at, **facts)
        with self._lock:
            old = self._loaded.get(model)
            if rec.rollback:
                self.state.previous[model].pop()
            elif rec.previous is not None:
                self.state.push_previous(rec.previous)
            self.state.active[model] = slot
            self.state.record(done)
            self.state.save(self.state_path)  # the commit point: after this rename the new model is the one
            self._loaded[model] = Loaded(slot, runner)
            self._unavailable.pop(model, None)
            if old is not None:
                old.retired = True
                if old.users == 0:
                    old.runner.close()
        return done

    def _fail(self, rec: DeploymentRecord, step: Step, exc: BaseException) -> Outcome:
        code = _code_of(exc)
        reason = str(exc) if code != INTERNAL else f"{type(exc).__name__}: {exc}"
        if code == INTERNAL:
            log.exception("deployment %s failed unexpectedly", rec.deployment_id, exc_info=exc)
        state = DeploymentState.ROLLED_BACK if rec.previous is not None else DeploymentState.FAILED
        done = rec.finish(state, time.time(), failed_step=step, reason=reason)
        self._record(done)
        return Outcome(done, code)


class _StepTracker:
    """Forwards progress and remembers the step in flight, so a failure names it."""

    def __init__(self, progress: StepProgress) -> None:
        self.progress = progress
        self.step = Step.STAGE

    def __call__(self, step: Step, message: str, fraction: float) -> None:
        self.step = step
        self.progress(step, message, fraction)


def _build_progress(progress: StepProgress) -> Callable[[float, str], None]:
    return lambda fraction, message: progress(Step.BUILD, message, fraction)


def _quiet(step: Step, message: str, fraction: float) -> None:
    log.info("%s: %s", step.name.lower(), message)


def _code_of(exc: BaseException) -> str:
    if isinstance(exc, AgentError):
        return exc.code
    if isinstance(exc, SmokeTestFailed):
        return FAILED_PRECONDITION
    if isinstance(exc, BuildError | JetfleetError):
        return INVALID_ARGUMENT
    return INTERNAL
