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
import copy
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable  # typing's: subscripted at run time (StepProgress), on 3.8

from jetfleet.agent.engines.base import Backend, BuildError, Runner
from jetfleet.agent.engines.cache import EngineCache, EngineKey
from jetfleet.agent.errors import ABORTED, FAILED_PRECONDITION, INTERNAL, INVALID_ARGUMENT, NOT_FOUND, AgentError
from jetfleet.agent.onnx_guard import check_onnx_file
from jetfleet.agent.smoke import SmokeTestFailed, check_io, smoke_test
from jetfleet.agent.state import AgentState
from jetfleet.agent.store import ArtifactStore
from jetfleet.common.device import DeviceInfo
from jetfleet.common.errors import JetfleetError
from jetfleet.common.failpoints import failpoint
from jetfleet.common.fleet import DeploymentRecord, DeploymentState, ModelSlot, ModelSpec, Step

log = logging.getLogger(__name__)

PRUNE_GRACE_S = 3600.0  # an upload waits this long for its deployment before it counts as unused
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
        self._running: str = ""  # the deployment holding _deploying, for the "busy" message

    # -- start-up --------------------------------------------------------
    def restore(self) -> None:
        """After a (re)start: finish interrupted deployments, reload the active engines."""
        removed = self.cache.clean()
        if removed:
            log.info("removed %d unfinished engine build(s)", removed)
        now = time.time()
        interrupted = [r for r in self.state.history if r.state == DeploymentState.RUNNING]
        for rec in interrupted:
            state = DeploymentState.ROLLED_BACK if rec.previous else DeploymentState.FAILED
            done = rec.finish(state, now, reason="the agent stopped during the deployment", code=ABORTED)
            self._commit(lambda s, done=done: s.record(done))
        if not self.state_path.exists():
            self._commit(lambda s: None)  # a fresh agent writes its (empty) state: the folder says what it is
        for name, slot in list(self.state.active.items()):
            try:
                runner = self._reload(slot)
                self._loaded[name] = Loaded(self.state.active[name], runner)
            except Exception as exc:  # keep starting: other models may still serve
                log.error("model %s cannot be loaded: %s", slot.spec.ref, exc)
                self._unavailable[name] = str(exc)

    def _reload(self, slot: ModelSlot) -> Runner:
        """The runner of an active slot after a restart.

        Same fingerprint: the cached engine (rebuilt from the verified blob if
        the cache lost it). A different fingerprint (JetPack, TensorRT or ORT
        upgraded, backend changed) means a new engine: it goes through the
        full verify, build, I/O check and smoke test before it serves, and the
        slot is rewritten to name it.
        """
        if self.engine_key(slot.spec).fingerprint() == slot.engine_fingerprint:
            runner, _, _ = self._engine(slot.spec, _quiet)
            return runner
        log.warning("%s: the engine fingerprint changed since activation; rebuilding and smoke-testing", slot.spec.ref)
        runner, facts = self._prepare(slot.spec, self.smoke_margin, _quiet)
        fresh = replace(
            slot,
            backend=self.backend.name,
            engine_fingerprint=self.engine_key(slot.spec).fingerprint(),
            smoke_accuracy=facts.get("smoke_accuracy"),  # type: ignore[arg-type]
        )
        self._commit(lambda s: s.active.__setitem__(slot.spec.model, fresh))
        return runner

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
                last = loaded.retired and loaded.users == 0
            if last:
                _close(loaded)

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
        self,
        deployment_id: str,
        spec: ModelSpec,
        margin: float | None,
        progress: StepProgress = lambda *a: None,
        downgrade: bool = False,
    ) -> Outcome:
        """Activate ``spec``; on any failure the previous model keeps serving.

        Idempotent by ``deployment_id``: a retry of a finished deployment
        returns its record without doing anything again. A version below the
        one last accepted for the model is refused unless ``downgrade`` (the
        signed manifest said rollback); checked here, under the activation
        slot, so two deployments cannot race past the check.
        """
        if margin is not None and not 0 <= margin <= 100:  # NaN fails too: it would disable the gate
            raise AgentError(INVALID_ARGUMENT, f"smoke margin must be 0-100 points, got {margin}")
        with self._exclusive(deployment_id):
            if (seen := self._seen(deployment_id, spec.model, spec, rollback=False)) is not None:
                return seen
            floor = self.accepted_version(spec.model)
            if not downgrade and floor is not None and spec.version < floor:
                raise AgentError(
                    FAILED_PRECONDITION,
                    f"{spec.ref} is older than version {floor} already accepted on {self.agent}",
                    "a downgrade needs a signed rollback",
                )
            current = self._current(spec.model)
            if (
                current is not None
                and current.spec == spec
                and spec.model in self._loaded
                and current.engine_fingerprint == self.engine_key(spec).fingerprint()
            ):
                rec = self._begin(deployment_id, spec, current, rollback=False)
                done = rec.finish(
                    DeploymentState.ACTIVE, time.time(), engine_cached=True, reason="already active", code="OK"
                )
                self._record(done)
                progress(Step.ACTIVATE, f"{spec.ref} is already active", 1.0)
                return Outcome(done)
            rec = self._begin(deployment_id, spec, current, rollback=False)
            margin = self.smoke_margin if margin is None else margin

            def prepare(steps: StepProgress) -> tuple[Runner, dict[str, object]]:
                runner, facts = self._prepare(spec, margin, steps)
                return runner, {**facts, "downgrade": downgrade}

            return self._run(rec, prepare, progress)

    @contextlib.contextmanager
    def _exclusive(self, deployment_id: str) -> Iterator[None]:
        """Hold the one activation slot, or refuse at once (ABORTED: retry later) while another runs."""
        if not self._deploying.acquire(blocking=False):
            raise AgentError(
                ABORTED, f"deployment {self._running} is in progress on {self.agent}", "retry when it finishes"
            )
        self._running = deployment_id
        try:
            yield
        finally:
            self._running = ""
            self._deploying.release()

    def _seen(self, deployment_id: str, model: str, spec: ModelSpec | None, rollback: bool) -> Outcome | None:
        """The stored outcome of a finished deployment with this id (a retry), or None for a new one."""
        with self._lock:
            rec = next((r for r in self.state.history if r.deployment_id == deployment_id), None)
        if rec is None:
            return None
        same = rec.rollback == rollback and rec.spec.model == model and (spec is None or rec.spec == spec)
        if not same:
            raise AgentError(INVALID_ARGUMENT, f"deployment id {deployment_id} was already used for another deployment")
        return Outcome(rec, rec.code or "OK")

    def rollback(self, deployment_id: str, model: str, progress: StepProgress = lambda *a: None) -> Outcome:
        """Go back to the model that served before the active one (its cached engine, no smoke test)."""
        with self._exclusive(deployment_id):
            if (seen := self._seen(deployment_id, model, None, rollback=True)) is not None:
                return seen
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
                return runner, {"engine_cached": cached, "build_s": build_s, "smoke_accuracy": target.smoke_accuracy}

            return self._run(rec, prepare, progress)

    def accepted_version(self, model: str) -> int | None:
        """The anti-rollback floor: the version of ``model`` last accepted here (None: never deployed)."""
        with self._lock:
            return self.state.accepted.get(model)

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
        self._commit(lambda s: s.record(rec))

    def _commit(self, change: Callable[[AgentState], None]) -> None:
        """Apply ``change`` to a copy of the state, save it, and only then make it the state.

        If the save fails (a full disk), memory keeps agreeing with the disk.
        """
        with self._lock:
            self._commit_locked(change)

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
            done, old = self._swap(rec, runner, facts)
        except Exception as exc:  # the save failed: nothing changed
            runner.close()
            return self._fail(rec, Step.ACTIVATE, exc)
        if old is not None:
            _close(old)  # after the commit point: a failure here is logged, never a rollback
        self.prune()
        tracker(Step.ACTIVATE, f"{rec.spec.ref} is active", 1.0)
        return Outcome(done)

    def _prepare(self, spec: ModelSpec, margin: float, progress: StepProgress) -> tuple[Runner, dict[str, object]]:
        progress(Step.STAGE, f"locating {spec.onnx.short}", -1)
        self.store.path(spec.onnx)
        if spec.test_set is not None:
            self.store.path(spec.test_set)
        progress(Step.VERIFY, f"verifying sha256 of {spec.onnx.short}", -1)
        check_onnx_file(self.store.verify(spec.onnx))  # self-contained: no external data to follow
        if spec.test_set is not None:
            self.store.verify(spec.test_set)
        runner, cached, build_s = self._engine(spec, progress)
        try:
            progress(Step.SMOKE_TEST, "classifying the test set", -1)
            test_path = self.store.path(spec.test_set) if spec.test_set else None
            accuracy = smoke_test(runner, spec, test_path, margin)
        except BaseException:
            runner.close()
            raise
        return runner, {"engine_cached": cached, "build_s": build_s, "smoke_accuracy": accuracy}

    def _engine(self, spec: ModelSpec, progress: StepProgress) -> tuple[Runner, bool, float]:
        """The engine for ``spec`` from the cache, or built there first, checked against the spec's input and
        output: (runner, was cached, build seconds)."""
        key = self.engine_key(spec)
        path = self.cache.get(key)
        cached, build_s = path is not None, 0.0
        if path is None:
            progress(Step.BUILD, f"building a {self.backend.name} engine ({spec.precision})", 0.0)
            onnx_path = self.store.verify(spec.onnx)
            check_onnx_file(onnx_path)  # every build, rollbacks and restarts too: not only fresh deployments
            start = time.perf_counter()

            def build(out: Path) -> None:
                self.backend.build(onnx_path, spec.precision, out, _build_progress(progress))
                failpoint("agent.build")  # the engine file is written, not yet moved into the cache

            path = self.cache.put(key, build)
            build_s = time.perf_counter() - start
        else:
            progress(Step.BUILD, f"engine {key.fingerprint()[:12]} found in the cache", 1.0)
        try:
            runner = self.backend.load(path)
        except BuildError:
            self.cache.remove(key.fingerprint())  # unusable (e.g. a truncated file): rebuild next time
            raise
        try:
            check_io(runner, spec)  # every engine is checked against the spec it will serve
        except BaseException:
            runner.close()
            raise
        return runner, cached, build_s

    def prune(self, grace_s: float = PRUNE_GRACE_S) -> tuple[int, int]:
        """Delete blobs and engines no active or rollback slot needs: (blobs, engines) removed.

        Anything touched within ``grace_s`` stays: an artifact uploaded for the
        next deployment is unreferenced until that deployment runs. Failures
        are logged: pruning must never fail an activation.
        """
        with self._lock:
            slots = [*self.state.active.values(), *(s for stack in self.state.previous.values() for s in stack)]
        keep_blobs = {r.sha256 for s in slots for r in (s.spec.onnx, s.spec.test_set) if r is not None}
        keep_engines = {s.engine_fingerprint for s in slots}
        try:
            blobs = self.store.prune(keep_blobs, grace_s)
            engines = self.cache.prune(keep_engines, grace_s)
        except OSError as exc:
            log.warning("pruning unused artifacts failed: %s", exc)
            return 0, 0
        if blobs or engines:
            log.info("pruned %d unused artifact(s) and %d engine(s)", blobs, engines)
        return blobs, engines

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

    def _swap(
        self, rec: DeploymentRecord, runner: Runner, facts: dict[str, object]
    ) -> tuple[DeploymentRecord, Loaded | None]:
        """Commit the new slot (the state file rename), then serve it; returns the retired model to close."""
        model = rec.spec.model
        lowers_floor = rec.rollback or bool(facts.pop("downgrade", False))  # an explicit, signed rollback
        slot = ModelSlot(
            spec=rec.spec,
            backend=self.backend.name,
            engine_fingerprint=self.engine_key(rec.spec).fingerprint(),
            activated_at=time.time(),
            smoke_accuracy=facts.get("smoke_accuracy"),  # type: ignore[arg-type]
        )
        done = rec.finish(DeploymentState.ACTIVE, slot.activated_at, code="OK", **facts)

        def change(s: AgentState) -> None:
            if rec.rollback:
                s.previous[model].pop()
            elif rec.previous is not None:
                s.push_previous(rec.previous)
            s.active[model] = slot
            floor = s.accepted.get(model)
            s.accepted[model] = slot.spec.version if floor is None or lowers_floor else max(floor, slot.spec.version)
            s.record(done)

        with self._lock:
            failpoint("agent.swap")  # everything verified, nothing committed
            self._commit_locked(change)  # the commit point: after this rename the new model is the one
            failpoint("agent.swap.committed")  # on disk, not yet serving
            old = self._loaded.get(model)
            self._loaded[model] = Loaded(slot, runner)
            self._unavailable.pop(model, None)
            if old is not None:
                old.retired = True
                if old.users > 0:
                    old = None  # its last job closes it
        return done, old

    def _commit_locked(self, change: Callable[[AgentState], None]) -> None:
        new = copy.deepcopy(self.state)
        change(new)
        new.save(self.state_path)
        self.state = new

    def _fail(self, rec: DeploymentRecord, step: Step, exc: BaseException) -> Outcome:
        code = _code_of(exc)
        reason = str(exc) if code != INTERNAL else f"{type(exc).__name__}: {exc}"
        if code == INTERNAL:
            log.exception("deployment %s failed unexpectedly", rec.deployment_id, exc_info=exc)
        state = DeploymentState.ROLLED_BACK if rec.previous is not None else DeploymentState.FAILED
        done = rec.finish(state, time.time(), failed_step=step, reason=reason, code=code)
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


def _close(loaded: Loaded) -> None:
    """Free a retired engine; a failure to free is logged, it cannot undo an activation."""
    try:
        loaded.runner.close()
    except Exception:
        log.exception("closing the engine of %s failed", loaded.slot.spec.ref)


def _quiet(step: Step, message: str, fraction: float) -> None:
    log.info("%s: %s", step.name.lower(), message)


def _code_of(exc: BaseException) -> str:
    if isinstance(exc, AgentError):
        return exc.code
    if isinstance(exc, SmokeTestFailed):
        return FAILED_PRECONDITION
    if isinstance(exc, (BuildError, JetfleetError)):
        return INVALID_ARGUMENT
    return INTERNAL
