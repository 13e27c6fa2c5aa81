"""One real agent against one real controller on loopback: enroll, deploy INT8, classify, compare with the registry.

Why this exists: the unit and end-to-end tests run every agent from the controller's own virtualenv, on
the workstation's Python and CPU. A Jetson runs the agent from another Python (JetPack's system one) on
aarch64, with only ``jetfleet[agent]`` installed. This driver keeps the controller side (training, the
registry, the controller daemon, the CLI) in the virtualenv that runs it and starts *only the agent*
through a command prefix, so the same flow checks any agent we can start from here:

    # an aarch64 userland under qemu-user (scripts/test-arm64.sh): data folders live inside the chroot
    python scripts/device_e2e.py --agent-cmd "chroot build/arm64/root /opt/jetfleet/bin/jetfleet-agent" \\
        --agent-root build/arm64/root --expect-arch aarch64
    # another virtualenv on this machine (scripts/test-old-python.sh): no root, same file system
    python scripts/device_e2e.py --agent-cmd build/py38/bin/jetfleet-agent --expect-python 3.8

The flow is the operator's, command by command (README "Fleet operations"): ``certs init``, ``train``
(registers and exports FP32/FP16/INT8), ``controller serve``, ``devices enroll`` for a token,
``jetfleet-agent enroll`` and ``serve``, ``deploy --precision int8 --wait``, ``jobs run`` on the digits
test set. It passes when the device serves the registry's INT8 artifact (same sha256) and its reported
top-1 is within ``--tolerance`` points of the registry's figure for that artifact, and when the device
facts say what we expected (architecture, Python).

``--agent-root`` is the agent's file system root as seen from here (a chroot): the agent's data folder
and the CA file it is handed are made under it, and the paths on its command line are translated to
the agent's view. Without it both sides share one file system.

Every process it starts runs in its own process group and is stopped (SIGTERM, then SIGKILL) on the way
out, on success, failure, Ctrl-C or SIGTERM alike. It prints PASS or FAIL with the figures, the time of
each phase, and on failure the tails of the controller's and the agent's logs; the exit status is 0 only
on PASS. Nothing is downloaded: digits ships inside scikit-learn.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

READY = re.compile(r"listening on port (\d+)")
MODEL = "basic_cnn"
INT8_KIND = "onnx-int8-qdq"
LOG_TAIL_LINES = 60


class Failed(Exception):
    """A check or a step failed; the message says which and why (the summary prints it)."""


class Interrupted(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C, so every ``finally`` stops what it started."""


# --------------------------------------------------------------------------- where the agent lives


@dataclass(frozen=True)
class AgentSide:
    """How to start the agent and how its file system maps onto ours.

    ``root`` is None when the agent sees the same file system (another virtualenv on this machine);
    otherwise it is the host path of the agent's ``/`` (a chroot), and every path on the agent's
    command line must be under it.
    """

    cmd: tuple[str, ...]
    root: Path | None

    def path(self, host_path: Path) -> str:
        """``host_path`` as the agent sees it."""
        if self.root is None:
            return str(host_path)
        try:
            inside = host_path.resolve().relative_to(self.root.resolve())
        except ValueError:
            raise Failed(f"{host_path} is not under the agent's root {self.root}") from None
        return "/" + inside.as_posix()

    def argv(self, *args: str) -> list[str]:
        return [*self.cmd, *args]


# --------------------------------------------------------------------------- processes


class Daemon:
    """A long-running process in its own process group, its output copied to a log file.

    Ready means a line matching ``listening on port N`` on its stderr (both daemons print one); a
    thread pumps the output, so a daemon that stays silent or dies is noticed by the deadline
    instead of blocking a ``readline``.
    """

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.port: int | None = None
        self._ready = threading.Event()
        self._log: TextIO = log_path.open("a", encoding="utf-8", errors="replace")
        self._log.write(f"$ {shlex.join(self.argv)}\n")
        self._log.flush()
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own group: we stop it and anything it spawned, and Ctrl-C reaches only us
            )
        except OSError as exc:
            self._log.close()
            raise Failed(f"cannot start the {name}: {exc}") from None
        self._pump = threading.Thread(target=self._copy, name=f"{name}-log", daemon=True)
        self._pump.start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            if self.port is None and (match := READY.search(line)):
                self.port = int(match.group(1))
                self._ready.set()

    def wait_ready(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None:
                raise Failed(f"{self.name} exited with status {self.proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise Failed(f"{self.name} printed no 'listening on port' line within {timeout:.0f} s")
        assert self.port is not None
        return self.port

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 20.0) -> int:
        """SIGTERM to the group, SIGKILL after ``grace`` seconds; returns the exit status."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of the group, if it spawned any
        self._pump.join(timeout=5)
        self._log.write(f"[exit status {self.proc.returncode}]\n")
        self._log.close()
        return self.proc.returncode

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


def run(argv: Sequence[str], env: dict[str, str], cwd: Path, timeout: float, what: str) -> str:
    """Run a one-shot command; its stdout, or Failed with everything it printed."""
    print(f"   $ {shlex.join(argv)}", flush=True)
    try:
        done = subprocess.run(
            list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
    except OSError as exc:
        raise Failed(f"{what}: cannot run {argv[0]}: {exc}") from None
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"{what}: timed out after {timeout:.0f} s\n{_text(exc.stdout)}{_text(exc.stderr)}") from None
    if done.returncode != 0:
        raise Failed(f"{what}: exit status {done.returncode}\n{done.stdout}{done.stderr}".rstrip())
    return done.stdout


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def run_json(argv: Sequence[str], env: dict[str, str], cwd: Path, timeout: float, what: str) -> Any:
    out = run(argv, env, cwd, timeout, what)
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise Failed(f"{what}: not JSON ({exc}): {out[:2000]}") from None


# --------------------------------------------------------------------------- phases and the report


@dataclass
class Report:
    """What the summary prints: phase timings, the figures, and the checks with their outcome."""

    phases: list[tuple[str, float]] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - t0
            self.phases.append((name, took))
            print(f"   ({took:.1f} s)", flush=True)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append((name, ok, detail))
        print(f"   {'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)


def print_summary(report: Report, error: str | None) -> None:
    verdict = "PASS" if report.passed and error is None else "FAIL"
    print("\n" + "=" * 72)
    print(f"device e2e: {verdict}")
    for name, value in report.figures.items():
        print(f"  {name:<28} {value}")
    for name, ok, detail in report.checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    if error:
        print(f"  error: {error}")
    print("  phases:")
    for name, took in report.phases:
        print(f"    {took:7.1f} s  {name}")
    print(f"    {time.monotonic() - report.started:7.1f} s  total")
    print("=" * 72, flush=True)


def print_log_tail(title: str, path: Path) -> None:
    if not path.exists():
        return
    lines = path.read_text(errors="replace").splitlines()
    print(f"\n---- {title} ({path}), last {min(len(lines), LOG_TAIL_LINES)} of {len(lines)} lines ----")
    print("\n".join(lines[-LOG_TAIL_LINES:]))
    print(f"---- end of {title} ----", flush=True)


# --------------------------------------------------------------------------- the flow


@dataclass
class Settings:
    """The command line, parsed."""

    agent: AgentSide
    cwd: Path  # where agent commands run: the prefix may be relative to the invoker's folder
    jetfleet: str
    work: Path
    agent_data: Path
    name: str
    epochs: int
    tolerance_points: float
    expect_arch: str | None
    expect_python: str | None
    start_timeout: float
    step_timeout: float
    keep: bool


def controller_env(home: Path) -> dict[str, str]:
    """The controller side: our registry and PKI under ``home``, nothing inherited that points elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETFLEET_")}
    env["JETFLEET_HOME"] = str(home)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def agent_env() -> dict[str, str]:
    """The agent: no JETFLEET_* of ours (it must find everything through its command line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETFLEET_")}
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def registry_int8(show: dict[str, Any]) -> tuple[int, str, float, int]:
    """(version, INT8 artifact sha256, its registry top-1, test-set images) from ``models show --json``."""
    artifacts = {a["kind"]: a for a in show.get("artifacts", [])}
    if INT8_KIND not in artifacts:
        raise Failed(f"the registry has no {INT8_KIND} artifact for {MODEL}: {sorted(artifacts)}")
    accuracy = [
        m["value"] for m in show.get("metrics", []) if m["name"] == "accuracy" and m["artifact_kind"] == INT8_KIND
    ]
    if not accuracy:
        raise Failed(f"the registry has no accuracy for {MODEL}'s {INT8_KIND} artifact")
    images = int(artifacts.get("test-set", {}).get("details", {}).get("images", 0))
    return int(show["version"]), artifacts[INT8_KIND]["sha256"], float(accuracy[0]), images


def flow(s: Settings, report: Report, daemons: dict[str, Daemon]) -> None:
    home = s.work / "home"
    home.mkdir(parents=True)
    cenv, aenv = controller_env(home), agent_env()
    jf = [s.jetfleet]

    with report.phase("agent: what it detects (jetfleet-agent info)"):
        info = run_json(s.agent.argv("info", "--json"), aenv, s.cwd, s.start_timeout, "jetfleet-agent info")
        device = info.get("device", {})
        report.figures["agent python"] = str(device.get("python"))
        report.figures["agent device class"] = str(device.get("device_class"))
        report.figures["agent onnxruntime"] = str(device.get("onnxruntime_version"))
        print(f"   device: {json.dumps(device)}")
        print(f"   backends: {json.dumps(info.get('backends'))}")

    with report.phase("controller: certs init"):
        run([*jf, "certs", "init"], cenv, s.work, 120, "jetfleet certs init")

    with report.phase(f"controller: train {MODEL} on digits ({s.epochs} epochs), register, export"):
        run(
            [*jf, "train", "--model", MODEL, "--dataset", "digits", "--epochs", str(s.epochs), "--device", "cpu",
             "--out", str(s.work / "run")],
            cenv, s.work, s.step_timeout, "jetfleet train",
        )  # fmt: skip
        show = run_json([*jf, "models", "show", MODEL, "--json"], cenv, s.work, 120, "jetfleet models show")
        version, int8_sha, int8_acc, test_images = registry_int8(show)
        report.figures["registry"] = f"{MODEL}:{version}, INT8 sha256 {int8_sha[:12]}…, {test_images} test images"
        report.figures["registry INT8 top-1"] = f"{int8_acc:.2%}"

    with report.phase("controller: serve on loopback"):
        daemons["controller"] = Daemon(
            "controller",
            [*jf, "controller", "serve", "--listen", "127.0.0.1:0", "--enroll-listen", "127.0.0.1:0",
             "--heartbeat-interval", "1", "--offline-after", "30"],
            s.work / "controller.log", cenv, s.work,
        )  # fmt: skip
        port = daemons["controller"].wait_ready(s.start_timeout)
        address = f"127.0.0.1:{port}"
        print(f"   controller on {address}")

    def fleet(*args: str) -> list[str]:
        return [*jf, *args, "--controller", address]  # --controller is an option of each subcommand

    with report.phase(f"agent: enroll {s.name}"):
        token = run_json(fleet("devices", "enroll", "--name", s.name, "--json"), cenv, s.work, 60, "devices enroll")
        s.agent_data.mkdir(parents=True, exist_ok=True)
        ca = s.agent_data / "ca.pem"
        shutil.copyfile(home / "pki" / "ca.pem", ca)
        config = s.agent_data / "agent.toml"
        config.write_text("# empty: every setting comes from the command line (keeps /etc/jetfleet out of it)\n")
        run(
            s.agent.argv(
                "enroll", "--config", s.agent.path(config), "--name", s.name,
                "--data-dir", s.agent.path(s.agent_data / "data"), "--enroll-address", token["enroll_address"],
                "--token", token["token"], "--ca", s.agent.path(ca), "--ca-sha256", token["ca_sha256"],
            ),
            aenv, s.cwd, s.start_timeout, "jetfleet-agent enroll",
        )  # fmt: skip

    with report.phase(f"agent: serve {s.name}, online at the controller"):
        daemons["agent"] = Daemon(
            "agent",
            s.agent.argv(
                "serve", "--config", s.agent.path(config), "--name", s.name, "--listen", "127.0.0.1:0",
                "--controller", address, "--data-dir", s.agent.path(s.agent_data / "data"),
                "--backend", "onnxruntime", "--job-threads", "1", "--tag", "e2e=device",
            ),
            s.work / "agent.log", aenv, s.cwd,
        )  # fmt: skip
        daemons["agent"].wait_ready(s.start_timeout)
        row = wait_online(fleet, cenv, s.work, s.name, s.start_timeout)
        print(f"   {s.name}: {row.get('liveness')}")

    with report.phase("controller: device facts (devices show)"):
        shown = run_json(fleet("devices", "show", s.name, "--json"), cenv, s.work, 60, "devices show")
        facts = find_facts(shown)
        print(f"   facts: {json.dumps(facts)}")
        report.figures["reported device class"] = str(facts.get("device_class"))
        report.figures["reported python"] = str(facts.get("python"))
        if s.expect_arch is not None:
            klass = str(facts.get("device_class", ""))
            report.check(
                "device architecture",
                klass == f"cpu-{s.expect_arch}" or facts.get("board") == s.expect_arch,
                f"device_class {klass!r}, board {facts.get('board')!r} (want {s.expect_arch})",
            )
        if s.expect_python is not None:
            py = str(facts.get("python", ""))
            report.check(
                "agent Python",
                py == s.expect_python or py.startswith(s.expect_python + "."),
                f"{py!r} (want {s.expect_python})",
            )

    with report.phase("deploy INT8 (--wait)"):
        outcome = run_json(
            fleet("deploy", "--model", MODEL, "--precision", "int8", "--devices", "all", "--wait",
                  "--timeout", str(int(s.step_timeout)), "--json"),
            cenv, s.work, s.step_timeout + 60, "jetfleet deploy",
        )  # fmt: skip
        mine = outcome.get(s.name, {})
        report.check("deployment", mine.get("phase") == "active", f"{s.name}: {json.dumps(mine)[:400]}")

    with report.phase("job: classify the digits test set on the device"):
        jobs = run_json(
            fleet("jobs", "run", "--model", MODEL, "--devices", s.name, "--dataset", "digits-test", "--json"),
            cenv, s.work, s.step_timeout, "jetfleet jobs run",
        )  # fmt: skip
        check_job(s, report, jobs, int8_sha, int8_acc, test_images)


def wait_online(
    fleet: Callable[..., list[str]], env: dict[str, str], cwd: Path, name: str, timeout: float
) -> dict[str, Any]:
    """Poll ``devices list`` until ``name`` is online; its row (``fleet`` adds ``--controller``)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        rows = run_json(fleet("devices", "list", "--json"), env, cwd, 60, "devices list")
        seen = {d.get("name"): d for d in rows}
        if seen.get(name, {}).get("liveness") == "online":
            return seen[name]
        time.sleep(1.0)
    raise Failed(f"{name} did not come online within {timeout:.0f} s (devices list: {json.dumps(seen)[:1500]})")


def find_facts(shown: dict[str, Any]) -> dict[str, Any]:
    """The DeviceInfo inside ``devices show --json`` (looked up by its fields, wherever it is nested)."""
    stack: list[Any] = [shown]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "device_class" in node and "python" in node:
                return node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise Failed(f"devices show has no device facts: {json.dumps(shown)[:1500]}")


def check_job(
    s: Settings, report: Report, jobs: dict[str, Any], int8_sha: str, int8_acc: float, test_images: int
) -> None:
    if jobs.get("failures"):
        raise Failed(f"the job failed on {json.dumps(jobs['failures'])}")
    results = [r for r in jobs.get("results", []) if r.get("agent") == s.name]
    if len(results) != 1:
        raise Failed(f"expected one result from {s.name}, got {json.dumps(jobs)[:1500]}")
    r = results[0]
    slot = r.get("model", {})
    spec = slot.get("spec", {})
    top1 = r.get("top1")
    items = int(r.get("items", 0))
    latency = r.get("latency", {})
    report.figures["device INT8 top-1"] = f"{top1:.2%}" if isinstance(top1, (int, float)) else "not reported"
    report.figures["device items"] = f"{items} ({len(r.get('errors', []))} errors)"
    report.figures["device latency (batch 32)"] = (
        f"median {latency.get('median_ms', 0):.2f} ms, p99 {latency.get('p99_ms', 0):.2f} ms, "
        f"{r.get('throughput', 0):.0f} items/s"
    )
    report.check(
        "served artifact",
        spec.get("precision") == "int8" and spec.get("onnx", {}).get("sha256") == int8_sha,
        f"{spec.get('model')}:{spec.get('version')}/{spec.get('precision')} "
        f"sha256 {str(spec.get('onnx', {}).get('sha256'))[:12]}… on {slot.get('backend')}",
    )
    report.check(
        "items classified",
        items == test_images and not r.get("errors"),
        f"{items} of {test_images}, {len(r.get('errors', []))} errors",
    )
    if isinstance(top1, (int, float)):
        delta = (float(top1) - int8_acc) * 100
        report.check(
            "accuracy vs registry",
            abs(delta) <= s.tolerance_points,
            f"device {float(top1):.2%} vs registry {int8_acc:.2%} (Δ {delta:+.2f} points, allowed ±{s.tolerance_points})",
        )
    else:
        report.check("accuracy vs registry", False, "the result carries no top-1")


# --------------------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    here = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--agent-cmd", required=True, help="command prefix that runs jetfleet-agent (split like a shell)")
    p.add_argument("--agent-root", type=Path, help="host path of the agent's / (a chroot); absent = same file system")
    p.add_argument(
        "--jetfleet",
        default=str(Path(sys.executable).parent / "jetfleet"),
        help="the controller side's jetfleet command (default: beside this Python)",
    )
    p.add_argument("--work", type=Path, default=here / "build" / "device-e2e", help="parent of this run's folder")
    p.add_argument("--name", default="jetson-e2e-01", help="the device's name (a DNS label)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--tolerance", type=float, default=0.5, help="allowed |device - registry| top-1, in points")
    p.add_argument("--expect-arch", help="the device facts must name this machine (e.g. aarch64)")
    p.add_argument("--expect-python", help="the agent must run on this Python (e.g. 3.8)")
    p.add_argument("--start-timeout", type=float, default=180.0, help="s for an agent command or daemon to start")
    p.add_argument("--step-timeout", type=float, default=300.0, help="s for training, a deploy, a job")
    p.add_argument("--keep", action="store_true", help="keep this run's folders even when it passes")
    a = p.parse_args(argv)
    cmd = tuple(shlex.split(a.agent_cmd))
    if not cmd:
        p.error("--agent-cmd is empty")
    root = a.agent_root.resolve() if a.agent_root else None
    if root is not None and not root.is_dir():
        p.error(f"--agent-root {root} is not a folder")
    a.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=a.work)).resolve()
    if root is None:
        agent_data = work / "agent"
    else:
        parent = root / "var" / "lib" / "jetfleet-e2e"
        parent.mkdir(parents=True, exist_ok=True)
        agent_data = Path(tempfile.mkdtemp(prefix="run-", dir=parent))
    return Settings(
        agent=AgentSide(cmd, root),
        cwd=Path.cwd(),
        jetfleet=a.jetfleet,
        work=work,
        agent_data=agent_data,
        name=a.name,
        epochs=a.epochs,
        tolerance_points=a.tolerance,
        expect_arch=a.expect_arch,
        expect_python=a.expect_python,
        start_timeout=a.start_timeout,
        step_timeout=a.step_timeout,
        keep=a.keep,
    )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    s = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    report = Report()
    daemons: dict[str, Daemon] = {}
    error: str | None = None
    print(f"device e2e: agent {shlex.join(s.agent.cmd)}; work {s.work}; agent data {s.agent_data}", flush=True)
    try:
        flow(s, report, daemons)
    except Failed as exc:
        error = str(exc)
    except (KeyboardInterrupt, Interrupted) as exc:
        error = f"interrupted ({exc or 'Ctrl-C'})"
    finally:
        for name in ("agent", "controller"):  # the agent first: it reports to the controller until it stops
            if name in daemons:
                died = not daemons[name].alive()
                status = daemons[name].stop()
                if died and error is None:
                    error = f"the {name} exited by itself (status {status}) during the run"
    passed = report.passed and error is None
    if not passed:
        for name in ("controller", "agent"):
            print_log_tail(f"{name} log", s.work / f"{name}.log")
    print_summary(report, error)
    if passed and not s.keep:
        shutil.rmtree(s.work, ignore_errors=True)
        shutil.rmtree(s.agent_data, ignore_errors=True)
    else:
        print(f"kept: {s.work} and {s.agent_data}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
