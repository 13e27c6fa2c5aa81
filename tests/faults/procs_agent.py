"""Real agent (and controller) processes for the fault suite, and the invariants every fault test ends with.

Fault scenarios 1-3 (test_upload_cut, test_agent_killed, test_bad_models)
start agent processes only through :func:`start_agent_process`, build an
:class:`AgentClient` only in :meth:`AgentProc.connect`, and start a
controller and run the ``jetfleet`` CLI only through
:func:`start_controller_process`. The transport (mutual TLS and signed manifests) is therefore switched here and nowhere else
in those tests: see :func:`_agent_transport` (each agent gets an identity from
the test's own CA), :meth:`AgentProc.connect` (mutual TLS, manifests signed by
the test's key) and :func:`start_controller_process` (the same PKI folder).

    with agent_processes(tmp_path, invariants.record) as procs:
        ap = procs.start("jetson-01", env=failpoints(tmp_path, "agent.build=once-kill"))
        ap.client.push(spec, files)        # over real gRPC on loopback
        ap.wait_dead()                     # -9: the failpoint killed it
        ap.restart()                       # same data folder, no failpoints
        check_invariants(invariants, ap, deployed=[spec])
    invariants.check()

Processes are real ``jetfleet-agent serve`` daemons (the console script of
this virtualenv), killed with real signals; nothing of ours is mocked. Starts,
kills and restarts are noted on the test's timeline (``faults.harness.Invariants``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents import provision
from faults.harness import Invariants

from jetfleet.agent.identity import AgentIdentity
from jetfleet.agent.state import AgentState
from jetfleet.common.failpoints import DIR_VAR, ENV_VAR
from jetfleet.common.fleet import DeploymentRecord, DeploymentState, ModelSlot, ModelSpec
from jetfleet.controller.fleet.agent_client import AgentClient
from jetfleet.controller.fleet.procs import Daemon
from jetfleet.controller.fleet.security import Enrollments, FleetPKI, init_pki
from jetfleet.controller.registry.db import make_engine
from jetfleet.proto import convert

BIN = Path(sys.executable).parent


# ---------------------------------------------------------------------------------------------- transport
def fleet_pki_of(tmp: Path) -> FleetPKI:
    """The test's own fleet CA and manifest key (``tmp/pki``, made as `jetfleet certs init` makes it)."""
    folder = tmp / "pki"
    if not (folder / "ca.pem").exists():
        init_pki(folder)
    return FleetPKI(folder)


_CONTROLLER_DBS: dict[int, Path] = {}  # a running controller's port -> its database


def _record_enrolled(db: Path, cert_pem: bytes) -> None:
    """Record a provisioned agent's certificate where enrollment would have (the controller honours only those)."""
    engine = make_engine(f"sqlite:///{db}")
    try:
        enrollments = Enrollments(engine)
        if not enrollments.is_enrolled(cert_pem):
            enrollments.record_certificate(cert_pem)
    finally:
        engine.dispose()


def _enroll_with(controller: str | None, data_dir: Path) -> None:
    """If ``controller`` is one of this test's controllers, make the agent in ``data_dir`` enrolled there."""
    db = _CONTROLLER_DBS.get(int(controller.rsplit(":", 1)[1])) if controller else None
    identity = AgentIdentity.load(data_dir)
    if db is not None and identity is not None:
        _record_enrolled(db, identity.credentials.cert_pem)


def _agent_transport(tmp: Path, name: str) -> list[str]:
    """Enroll the agent (its identity from the test's CA, as enrollment writes it): mutual TLS, signed manifests."""
    if AgentIdentity.load(tmp / name) is None:
        provision(tmp / name, name, fleet_pki_of(tmp))
    return []


# ---------------------------------------------------------------------------------------------- agents
@dataclass
class AgentProc:
    """One ``jetfleet-agent serve`` process with its own data folder, and a client connected to it."""

    name: str
    data_dir: Path
    log_file: Path
    args: list[str]
    env: dict[str, str]
    daemon: Daemon | None = None
    client: AgentClient = None  # type: ignore[assignment]  # connected by _spawn, replaced by restart
    port: int = 0
    host: str = "127.0.0.1"  # where the test dials it (its advertise or listen host: another namespace's address)
    note: Callable[..., None] = lambda what, **detail: None  # the test's timeline
    _log_from: int = 0  # where this run's lines start in log_file
    _clients: list[AgentClient] = field(default_factory=list)

    # -- connections (the one AgentClient constructor of the fault suite) --------------------------------
    def connect(self, port: int | None = None) -> AgentClient:
        """A client for this agent, dialling ``port`` (default: the agent's own; a proxy's, for link faults)."""
        fleet = fleet_pki_of(self.data_dir.parent)
        client = AgentClient(
            f"{self.host}:{port or self.port}",
            self.name,
            credentials=fleet.controller_credentials(),
            signer=fleet.signer(),
        )
        self._clients.append(client)
        return client

    # -- life cycle --------------------------------------------------------------------------------------
    def _spawn(self, env: dict[str, str] | None) -> None:
        self.env = dict(env or {})
        full = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, DIR_VAR)}
        full.update(OMP_NUM_THREADS="1", **self.env)
        self._log_from = self.log_file.stat().st_size if self.log_file.exists() else 0
        self.daemon = Daemon(self.args, self.log_file, env=full)
        self.port = self.daemon.port
        self.client = self.connect()
        self.note("agent started", agent=self.name, pid=self.pid, port=self.port, env=self.env)

    @property
    def pid(self) -> int:
        assert self.daemon is not None
        return self.daemon.proc.pid

    @property
    def returncode(self) -> int | None:
        assert self.daemon is not None
        return self.daemon.proc.poll()

    def kill(self) -> int:
        """SIGKILL from outside, as the OOM killer or a power cut would; returns the exit status (-9)."""
        assert self.daemon is not None
        self.note("SIGKILL sent", agent=self.name, pid=self.pid)
        os.kill(self.pid, signal.SIGKILL)
        return self.wait_dead()

    def wait_dead(self, timeout: float = 30.0) -> int:
        """Wait for the process to end by itself (e.g. a ``kill`` failpoint); returns the exit status."""
        assert self.daemon is not None
        code = self.daemon.proc.wait(timeout=timeout)
        self.note("agent exited", agent=self.name, pid=self.pid, returncode=code)
        return code

    def stop(self) -> int | None:
        """Close the clients, then SIGTERM (graceful; SIGKILL if it hangs); the exit status."""
        self._close_clients()
        return self.daemon.stop() if self.daemon is not None else None

    def restart(self, env: dict[str, str] | None = None) -> None:
        """Start again on the same data folder (stopping it first if it still runs), with ``env`` only."""
        if self.daemon is not None and self.daemon.proc.poll() is None:
            self.daemon.stop()
        self._close_clients()
        self._spawn(env)

    def _close_clients(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()

    # -- what is on its disk and in its log ------------------------------------------------------------
    @property
    def staging(self) -> Path:
        return self.data_dir / "artifacts" / "staging"

    @property
    def blobs(self) -> Path:
        return self.data_dir / "artifacts" / "blobs"

    @property
    def engines(self) -> Path:
        return self.data_dir / "engines"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "state.json"

    def engine_entries(self) -> list[str]:
        return sorted(p.name for p in self.engines.iterdir() if p.is_dir() and not p.name.startswith("."))

    def engine_leftovers(self) -> list[str]:
        return sorted(p.name for p in self.engines.glob(".tmp-*"))

    def staged(self) -> list[str]:
        return sorted(p.name for p in self.staging.iterdir())

    def saved_state(self) -> AgentState:
        """The state file as a restart would read it (raises if it does not parse)."""
        return AgentState.load(self.state_file)

    def log(self) -> str:
        """This run's log lines."""
        with open(self.log_file, errors="replace") as fh:
            fh.seek(self._log_from)
            return fh.read()

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        until(lambda: text in self.log(), timeout, f"{text!r} in the log of {self.name}")

    # -- what it says over gRPC ----------------------------------------------------------------------
    def active(self) -> list[ModelSlot]:
        return [convert.slot_from_pb(s) for s in self.client.status().active]

    def history(self, n: int = 200) -> list[DeploymentRecord]:
        return [convert.record_from_pb(r) for r in self.client.status(history=n).history]

    def record(self, deployment_id: str) -> DeploymentRecord:
        (rec,) = [r for r in self.history() if r.deployment_id == deployment_id]
        return rec


class AgentProcs:
    """Starts agent processes for one test and stops every one of them afterwards."""

    def __init__(self, tmp_path: Path, note: Callable[..., None] | None = None) -> None:
        self.tmp_path = tmp_path
        self.note = note
        self.started: list[AgentProc] = []

    def start(self, name: str = "jetson-01", **kw: object) -> AgentProc:
        ap = start_agent_process(self.tmp_path, name, note=self.note, **kw)  # type: ignore[arg-type]
        self.started.append(ap)
        return ap

    def close(self) -> None:
        for ap in self.started:
            with contextlib.suppress(Exception):
                ap.stop()


@contextlib.contextmanager
def agent_processes(tmp_path: Path, note: Callable[..., None] | None = None) -> Iterator[AgentProcs]:
    """Agent processes for one test (``note``: the timeline to record on); all stopped at the end."""
    procs = AgentProcs(tmp_path, note)
    try:
        yield procs
    finally:
        procs.close()


def start_agent_process(
    tmp_path: Path,
    name: str = "jetson-01",
    env: dict[str, str] | None = None,
    controller: str | None = None,
    extra_args: Iterable[str] = (),
    note: Callable[..., None] | None = None,
    prefix: Sequence[str] = (),
    listen: str = "127.0.0.1:0",
    advertise: str | None = None,
) -> AgentProc:
    """``jetfleet-agent serve`` on loopback (any free port), ONNX Runtime, one inference thread.

    Its data folder is ``tmp_path/name``, its log ``tmp_path/name.log``; ``env``
    is added to this process's environment (failpoints are never inherited).
    Prefer :func:`agent_processes`, which also stops it after the test.

    ``prefix`` runs it through another command that execs it (``ip netns exec NS``:
    the agent in its own network namespace, see ``faults/netns.py``); ``listen`` and
    ``advertise`` are the agent's own options, and the test's client dials the
    advertised host (else the listen host) on the bound port.
    """
    data_dir = tmp_path / name
    args = [
        *prefix, str(BIN / "jetfleet-agent"), "serve", *_agent_transport(tmp_path, name),
        "--name", name, "--listen", listen, "--data-dir", str(data_dir),
        "--backend", "onnxruntime", "--job-threads", "1",
        *(["--advertise", advertise] if advertise else []),
        *(["--controller", controller] if controller else []), *extra_args,
    ]  # fmt: skip
    host = (advertise or listen).rsplit(":", 1)[0]
    host = "127.0.0.1" if host in ("0.0.0.0", "[::]", "") else host
    ap = AgentProc(name, data_dir, tmp_path / f"{name}.log", args, {}, host=host)
    if note is not None:
        ap.note = note
    _enroll_with(controller, data_dir)
    ap._spawn(env)
    return ap


def failpoints(tmp_path: Path, spec: str) -> dict[str, str]:
    """The environment that arms ``spec`` (``"agent.build=once-kill"``), markers kept under ``tmp_path``."""
    marks = tmp_path / "failpoints"
    marks.mkdir(exist_ok=True)
    return {ENV_VAR: spec, DIR_VAR: str(marks)}


# ---------------------------------------------------------------------------------------------- controller
@dataclass
class ControllerProc:
    """``jetfleet controller serve`` over the registry in ``home``; :meth:`cli` runs ``jetfleet`` against it."""

    home: Path
    daemon: Daemon
    pki_dir: Path  # the CLI authenticates with the operator's certificate from here
    log_from: int = 0  # where this run's lines start in the daemon's log file (restarts append to it)

    @property
    def port(self) -> int:
        return self.daemon.port

    @property
    def pid(self) -> int:
        return self.daemon.proc.pid

    @property
    def db(self) -> Path:
        """The controller's database (the embedded SQLite registry in ``home``)."""
        return self.home / "registry.db"

    def log(self) -> str:
        """This run's log lines."""
        with open(self.daemon.log_file, errors="replace") as fh:
            fh.seek(self.log_from)
            return fh.read()

    def kill(self) -> int:
        """SIGKILL from outside (a power cut, the OOM killer); returns the exit status (-9)."""
        os.kill(self.pid, signal.SIGKILL)
        return self.daemon.proc.wait(timeout=30)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "JETFLEET_HOME": str(self.home), "JETFLEET_PKI": str(self.pki_dir), "COLUMNS": "200"}
        return subprocess.run(
            [str(BIN / "jetfleet"), *args, "--controller", self.address],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    def stop(self) -> None:
        self.daemon.stop()


def start_controller_process(
    tmp_path: Path, home: Path, port: int = 0, env: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> ControllerProc:
    """A controller on loopback that calls a device offline after 3 s without heartbeats (0.3 s apart).

    ``port`` pins its port (0: any free one), so a restarted controller is where
    its agents dial; ``host`` is where it listens (``0.0.0.0`` for agents in other
    network namespaces; the CLI still dials 127.0.0.1); ``env`` is added to its
    environment (failpoints are never inherited). Every run appends to
    ``tmp_path/controller.log``; :meth:`ControllerProc.log` reads this run's lines.
    """
    exe = str(BIN / "jetfleet")
    pki_dir = fleet_pki_of(tmp_path).folder  # the agents' CA: they are enrolled from the same folder
    args = [exe, "controller", "serve", "--listen", f"{host}:{port}", "--offline-after", "3",
            "--heartbeat-interval", "0.3", "--pki", str(pki_dir), "--enroll-listen", "127.0.0.1:0"]  # fmt: skip
    full = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, DIR_VAR)}
    full.update(JETFLEET_HOME=str(home), OMP_NUM_THREADS="1", **(env or {}))
    log_file = tmp_path / "controller.log"
    log_from = log_file.stat().st_size if log_file.exists() else 0
    ctl = ControllerProc(home, Daemon(args, log_file, env=full), pki_dir, log_from)
    _CONTROLLER_DBS[ctl.port] = ctl.db
    for cert in tmp_path.glob("*/identity/agent.pem"):  # agents provisioned before it started
        _record_enrolled(ctl.db, cert.read_bytes())
    return ctl


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (to pin a daemon's port across its restarts)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def copy_registry(model_root: Path, home: Path) -> None:
    """A controller home holding a copy of the digits registry (``digits_model.root``): its own to change."""
    home.mkdir()
    shutil.copy(model_root / "registry.db", home / "registry.db")
    shutil.copytree(model_root / "blobs", home / "blobs")


def cli_json(ctl: ControllerProc, *args: str) -> Any | None:
    """``jetfleet ARGS --json`` against ``ctl``, parsed; None when the controller does not answer."""
    out = ctl.cli(*args, "--json", timeout=60)
    return json.loads(out.stdout) if out.returncode == 0 else None


# ---------------------------------------------------------------------------------------------- checks
def until(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition", every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(every)


def check_invariants(
    inv: Invariants, ap: AgentProc, deployed: Iterable[ModelSpec], staging_empty: bool = True, when: str = ""
) -> None:
    """State (on ``inv``) what must hold on an agent after any fault, once it runs again.

    - the state file parses, and says what the agent serves;
    - every active model is a spec that was deployed on purpose, with its engine in the cache;
    - versions only move as deployed: per model, the last ACTIVE record in the history is what serves;
    - no deployment is left RUNNING, no engine build leaves a ``.tmp-*`` folder;
    - (``staging_empty``) no partial upload is left in staging.

    ``inv.check()`` at the end of the test judges them all at once.
    """
    at = f" ({when})" if when else ""
    deployed = list(deployed)
    try:
        state = ap.saved_state()
        json.loads(ap.state_file.read_text())  # plain JSON too, for people with `cat`
    except Exception as exc:  # the invariant is "it parses": record why not, judge the rest
        inv.expect(f"the state file parses{at}", False, exc)
        state = AgentState()
    else:
        inv.expect(f"the state file parses{at}", True)
    active, history, engines = ap.active(), ap.history(), ap.engine_entries()
    served = {s.spec.model: (s.spec, s.engine_fingerprint) for s in active}
    saved = {m: (s.spec, s.engine_fingerprint) for m, s in state.active.items()}
    inv.expect(f"the state file names what serves{at}", served == saved, f"serving {served}, saved {saved}")
    rogue = [s.spec.ref for s in active if s.spec not in deployed]
    inv.expect(f"only deployed models serve{at}", not rogue, rogue)
    unbacked = [s.spec.ref for s in active if s.engine_fingerprint not in engines]
    inv.expect(f"every serving model's engine is in the cache{at}", not unbacked, unbacked)
    running = [r.deployment_id for r in history if r.state == DeploymentState.RUNNING]
    inv.expect(f"no deployment is left RUNNING{at}", not running, running)
    last_active: dict[str, ModelSpec] = {}
    for rec in history:
        if rec.state == DeploymentState.ACTIVE:
            last_active[rec.spec.model] = rec.spec
    surprise = [r.deployment_id for r in history if r.state == DeploymentState.ACTIVE and r.spec not in deployed]
    inv.expect(f"every activation was of a deployed spec{at}", not surprise, surprise)
    now = {m: spec for m, (spec, _) in served.items()}
    inv.expect(f"what serves is what was last activated{at}", last_active == now, f"{last_active} vs {now}")
    inv.expect(f"no unfinished engine build is left{at}", not ap.engine_leftovers(), ap.engine_leftovers())
    if staging_empty:
        inv.expect(f"no partial upload is left in staging{at}", not ap.staged(), ap.staged())
    inv.record("invariants stated", agent=ap.name, when=when, serving=[s.spec.ref for s in active])
