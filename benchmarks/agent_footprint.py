"""The agent's resident memory: idle, serving one ``basic_cnn``, and at its peak during a job.

Why
    A Jetson Nano has 4 GiB shared between the CPU and the GPU: every MiB the
    agent keeps resident is a MiB a TensorRT engine or the camera pipeline
    cannot have. The agent must stay within **100 MiB RSS serving one model**
    (issue: agent footprint), and the way to stay there is to import only what
    a code path needs. This benchmark measures what a real ``jetfleet-agent
    serve`` process holds, so an import that sneaks back onto the serving path
    shows up as a number.

What is measured
    ``basic_cnn`` trained on the embedded ``digits`` (``--epochs``, 3 by
    default) in a temporary registry and exported to ONNX FP32 with its
    test set: the artifacts ``jetfleet train`` produces. One real agent
    process (``jetfleet-agent serve --backend onnxruntime --job-threads 1``),
    enrolled the way ``tls_overhead.py`` enrolls one (its identity issued
    by a fresh fleet CA, mutual TLS, every manifest signed and verified),
    because that is how a device runs and verifying certificates and
    signatures has its own imports; ``--insecure`` measures a plaintext,
    unenrolled agent instead, as ``transfer.py`` runs them. No controller:
    the agent's report link and outbox stay closed in both. Its memory is
    read from outside, through ``/proc/PID``:

    - **idle, no model**: started on an empty data folder, after one
      ``GetStatus`` call and one telemetry interval;
    - **peak during deploy**: ``VmHWM`` (reset through ``clear_refs``) over
      ``AgentClient.push``: upload, ONNX check, engine build, smoke test;
    - **serving one model**: after the deployment has settled;
    - **peak during job**: ``--jobs`` classification jobs on the digits test
      set (359 images, batch ``--batch-size``), the memory read every 50 ms
      and the kernel's exact ``VmHWM`` peak taken at the end;
    - **after the job**: what stays resident once the jobs are done.

    RSS (``VmRSS``/``VmHWM``) is the headline, because the target is written
    in RSS and it is what ``top`` and the OOM killer's badness see. PSS
    (shared pages divided among the processes sharing them) and USS (pages
    only this process maps: ``Private_Clean + Private_Dirty``, what stopping
    it would give back) come from ``/proc/PID/smaps_rollup``. Read them with
    care here: this benchmark's own process has numpy, ONNX Runtime, gRPC
    and cryptography mapped from the same files, so their code pages count
    as shared and PSS and USS come out lower than on a device, where the
    agent is usually the only process mapping them and PSS is close to RSS.

Baselines (same run, same machine)
    - **python**: an empty interpreter (``python -c``), the floor of any
      Python agent;
    - **python + ORT session**: ``import onnxruntime`` and an
      ``InferenceSession`` on the same ONNX file (one intra-op thread), one
      batch run: what the runtime itself costs, so the agent's overhead is
      "serving one model" minus this.

Verdict
    RSS serving one model ÷ 100 MiB (≤ 1.00 meets the target). The exit
    status is 0 either way unless ``--strict``.

``--imports`` additionally runs the agent with ``PYTHONPROFILEIMPORTTIME``
and lists the top-level packages each phase imported, so a fix to an import
can be checked against the phase that should (or should not) pay for it.
``--agent-env KEY=VALUE`` passes an environment variable to the agent only,
e.g. ``MALLOC_ARENA_MAX=2`` to compare glibc's arena settings, and
``--agent-exe`` measures another ``jetfleet-agent`` (a candidate build, or
an installation on a device).

Usage (about 25 s, most of it importing torch and training):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/agent_footprint.py [--epochs 3] [--jobs 5] [--imports]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jetfleet.agent.identity import store_identity
from jetfleet.common import pki
from jetfleet.controller.fleet.agent_client import AgentClient
from jetfleet.controller.fleet.security import FleetPKI, init_pki
from jetfleet.controller.fleet.specs import Deployable
from jetfleet.proto.v1 import controller_pb2 as cpb

LIMIT_MIB = 100.0  # the issue's target: RSS of an agent serving one model
SAMPLE_S = 0.05  # the job's memory is read this often (a digits job takes a few hundred ms)
SETTLE_S = 1.2  # > the agent's 1 s telemetry interval: its sampler thread has run and allocated its first sample
MODEL = "basic_cnn"
NAME = "footprint"

# What a bare ONNX Runtime process needs to serve the same file: the baseline the agent's overhead is taken over.
BARE_ORT = """
import sys
import numpy as np
import onnxruntime as ort
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
inp = session.get_inputs()[0]
session.run(None, {inp.name: np.zeros((int(sys.argv[2]), *inp.shape[1:]), np.float32)})
print("ready", flush=True)
sys.stdin.read()
"""
BARE_PYTHON = 'print("ready", flush=True)\nimport sys\nsys.stdin.read()\n'


@dataclass(frozen=True)
class Memory:
    """One reading of a process's memory, in MiB."""

    rss: float
    pss: float
    uss: float

    @classmethod
    def of(cls, pid: int) -> Memory:
        """Read ``/proc/PID/smaps_rollup``: one pass over the kernel's totals, cheap enough to sample at 20 Hz."""
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0])
        uss = fields["Private_Clean"] + fields["Private_Dirty"] + fields.get("Private_Hugetlb", 0)
        return cls(fields["Rss"] / 1024, fields["Pss"] / 1024, uss / 1024)

    def peak(self, other: Memory) -> Memory:
        return Memory(max(self.rss, other.rss), max(self.pss, other.pss), max(self.uss, other.uss))


def status_kib(pid: int, field: str) -> int:
    """A ``VmXXX`` line of ``/proc/PID/status`` in KiB."""
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"/proc/{pid}/status has no {field}")
    return int(match.group(1))


def reset_peak(pid: int) -> None:
    """Set the kernel's ``VmHWM`` back to the current RSS, so the next reading is the peak of what follows."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@contextmanager
def sampled(pid: int) -> Iterator[list[Memory]]:
    """Read the process's memory every ``SAMPLE_S`` while the block runs; the list fills in as it goes.

    Sampling gives PSS and USS at their (sampled) peak, which the kernel
    does not track; the exact RSS peak comes from ``VmHWM``.
    """
    samples = [Memory.of(pid)]
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(SAMPLE_S):
            samples.append(Memory.of(pid))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()
        samples.append(Memory.of(pid))


def peak_of(pid: int, samples: list[Memory]) -> Memory:
    """The sampled peak, with RSS raised to the kernel's exact ``VmHWM`` when sampling missed it."""
    peak = samples[0]
    for sample in samples[1:]:
        peak = peak.peak(sample)
    return peak.peak(Memory(status_kib(pid, "VmHWM") / 1024, 0.0, 0.0))


def trained_model(work: Path, epochs: int) -> Deployable:
    """``basic_cnn`` trained on digits, registered and exported to ONNX FP32 with its test set (as `jetfleet train`)."""
    from rich.console import Console

    from jetfleet.controller.fleet.specs import deployable
    from jetfleet.controller.registry.blobs import BlobStore
    from jetfleet.controller.registry.db import make_engine, migrate
    from jetfleet.controller.registry.optimize import export_version
    from jetfleet.controller.registry.runs import register_run
    from jetfleet.controller.registry.store import Registry
    from jetfleet.controller.training.config import TrainConfig
    from jetfleet.controller.training.trainer import train

    train(TrainConfig(epochs=epochs), work / "run", Console(file=io.StringIO()))
    engine = make_engine(f"sqlite:///{work / 'registry.db'}")
    migrate(engine)
    try:
        registry = Registry(engine, BlobStore(work / "blobs"))
        version = register_run(registry, work / "run", name=MODEL)
        export_version(registry, version.ref, log=lambda _msg: None)
        return deployable(registry, version.ref, "fp32")
    finally:
        engine.dispose()


def enroll_directly(data_dir: Path, fleet: FleetPKI) -> None:
    """The identity enrollment would write, issued by the CA without the token round trip (as ``tls_overhead.py``)."""
    key = pki.new_private_key()
    cert = fleet.issue_device(NAME, pki.make_csr(key, pki.Identity("device", NAME)))
    reply = cpb.EnrollResponse(
        certificate_pem=cert, ca_pem=fleet.ca_pem, manifest_public_key_pem=fleet.signing_public_pem()
    )
    store_identity(data_dir / "identity", pki.Identity("device", NAME), key, reply, "benchmark")


class AgentProcess:
    """A real ``jetfleet-agent serve`` on loopback; its stderr is drained on a thread so it can never block."""

    def __init__(self, exe: str, data_dir: Path, env: dict[str, str], insecure: bool) -> None:
        args = [exe, "serve", "--name", NAME, "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
                "--backend", "onnxruntime", "--job-threads", "1", "--log-level", "warning",
                *(["--insecure"] if insecure else [])]  # fmt: skip
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.port = 0
        listening = threading.Event()

        def drain() -> None:
            for line in self.proc.stderr:  # type: ignore[union-attr]
                self.lines.append(line)
                found = re.search(r"listening on port (\d+)", line)
                if found:
                    self.port = int(found.group(1))
                    listening.set()
            listening.set()  # the agent exited: let the waiter see it

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()
        listening.wait(120)
        if not self.port:
            self.stop()
            raise SystemExit("the agent did not start:\n" + "".join(self.lines[-20:]))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drain.join(timeout=5)


def child_env() -> dict[str, str]:
    """The environment of every measured process: one OpenMP thread unless the caller chose otherwise."""
    return {"OMP_NUM_THREADS": "1", **os.environ}


def bare_process(code: str, *args: str) -> Memory:
    """Memory of ``python -c code`` once it prints ``ready`` (it then waits for its stdin to close)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env()
    )
    try:
        if proc.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
            raise SystemExit(f"the baseline process failed: {' '.join(args)}")
        return Memory.of(proc.pid)
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)


@dataclass
class Footprint:
    """The agent's memory at each phase, and the import lines its stderr carried up to each phase's end."""

    phases: dict[str, Memory]
    imports: dict[str, list[str]]
    mappings: list[tuple[str, float]]  # serving one model: the largest RSS by mapped file, MiB


def rss_by_mapping(pid: int, most: int = 8) -> list[tuple[str, float]]:
    """Where the RSS is: ``/proc/PID/smaps`` summed per mapped file (anonymous memory and the heap by name).

    This is the measured reason behind a missed target: it names the shared
    libraries (ONNX Runtime, gRPC, cryptography...) and the Python heap that
    make up the figure, so a reader sees what a fix would have to remove.
    """
    totals: dict[str, float] = {}
    name = "[anonymous]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            name = (
                Path(head[5]).name if len(head) > 5 and head[5].startswith("/") else (head[5:6] or ["[anonymous]"])[0]
            )
        elif head and head[0] == "Rss:":
            totals[name] = totals.get(name, 0.0) + int(head[1]) / 1024
    return sorted(totals.items(), key=lambda kv: -kv[1])[:most]


def measure_agent(work: Path, model: Deployable, opts: argparse.Namespace) -> Footprint:
    """Start an agent on an empty data folder and walk it through the phases the target cares about."""
    env = {**child_env(), **dict(kv.split("=", 1) for kv in opts.agent_env)}
    if opts.imports:
        env["PYTHONPROFILEIMPORTTIME"] = "1"
    if opts.insecure:
        fleet = None
    else:
        init_pki(work / "pki")
        fleet = FleetPKI(work / "pki")
        enroll_directly(work / "agent", fleet)
    agent = AgentProcess(opts.agent_exe, work / "agent", env, opts.insecure)
    phases: dict[str, Memory] = {}
    marks: dict[str, int] = {}
    if fleet is None:
        client = AgentClient(f"127.0.0.1:{agent.port}", NAME)
    else:
        client = AgentClient(
            f"127.0.0.1:{agent.port}", NAME, credentials=fleet.controller_credentials(), signer=fleet.signer()
        )
    try:
        client.status(history=0)
        time.sleep(SETTLE_S)
        phases["idle, no model"] = Memory.of(agent.pid)
        marks["start + idle"] = len(agent.lines)

        reset_peak(agent.pid)
        with sampled(agent.pid) as samples:
            outcome = client.push(model.spec, model.files)
        if not outcome.ok:
            raise SystemExit(f"the deployment failed: {outcome.details}")
        phases["peak during deploy"] = peak_of(agent.pid, samples)
        client.status(history=0)
        time.sleep(SETTLE_S)
        phases["serving one model"] = Memory.of(agent.pid)
        mappings = rss_by_mapping(agent.pid)
        marks["deploy"] = len(agent.lines)

        reset_peak(agent.pid)
        assert model.spec.test_set is not None  # export_version stores it
        with sampled(agent.pid) as samples:
            for _ in range(opts.jobs):
                result = client.run_job(MODEL, test_set=model.spec.test_set, batch_size=opts.batch_size, warmup=0)
        phases[f"peak during job (x{opts.jobs})"] = peak_of(agent.pid, samples)
        time.sleep(SETTLE_S)
        phases["after the jobs"] = Memory.of(agent.pid)
        marks["job"] = len(agent.lines)
        print(
            f"job: {result.items} images, top-1 {result.top1 or 0:.3f}, {len(samples)} memory samples "
            f"every {SAMPLE_S * 1000:.0f} ms over {opts.jobs} jobs"
        )
    finally:
        client.close()
        agent.stop()
    imports, start = {}, 0
    for phase, end in marks.items():
        imports[phase] = [line for line in agent.lines[start:end] if line.startswith("import time:")]
        start = end
    return Footprint(phases, imports, mappings)


def packages(lines: list[str]) -> list[str]:
    """Top-level non-stdlib packages named in ``-X importtime`` lines, in first-import order.

    The standard library is left out: it is there for any Python program and
    is not what "import only what a path needs" is about.
    """
    seen: dict[str, None] = {}
    for line in lines:
        if "self [us]" in line:
            continue  # the header
        top = line.rsplit("|", 1)[-1].strip().split(".")[0]
        if top and not top.startswith("_") and top not in sys.stdlib_module_names:
            seen.setdefault(top, None)
    return list(seen)


def report(footprint: Footprint, baselines: dict[str, Memory], opts: argparse.Namespace) -> int:
    print(f"{'phase':<28}{'RSS MiB':>10}{'PSS MiB':>10}{'USS MiB':>10}")
    for label, mem in baselines.items():
        print(f"{'baseline: ' + label:<28}{mem.rss:>10.1f}{mem.pss:>10.1f}{mem.uss:>10.1f}")
    for label, mem in footprint.phases.items():
        print(f"{'agent: ' + label:<28}{mem.rss:>10.1f}{mem.pss:>10.1f}{mem.uss:>10.1f}")
    mode = "plaintext (--insecure)" if opts.insecure else "enrolled (mutual TLS, signed manifests)"
    print(f"agent: {mode}{''.join(' ' + kv for kv in opts.agent_env)}")
    serving = footprint.phases["serving one model"].rss
    runtime = baselines["python + ORT session"].rss
    print(
        f"agent overhead over a bare ONNX Runtime process serving the same model: "
        f"{serving - runtime:+.1f} MiB RSS ({serving / runtime:.2f}x)"
    )
    ok = serving <= LIMIT_MIB
    print(
        f"serving one model: {serving:.1f} MiB RSS vs limit {LIMIT_MIB:.0f} MiB = {serving / LIMIT_MIB:.2f}x "
        f"(target <= 1.00): {'MET' if ok else 'MISSED'}"
    )
    print(
        "serving one model, the largest resident mappings: " + ", ".join(f"{n} {m:.1f}" for n, m in footprint.mappings)
    )
    if not ok:
        print(
            "why missed: the agent's floor is ONNX Runtime, gRPC and the Python heap; an enrolled agent also keeps "
            "cryptography (its mTLS identity and Ed25519 manifest checks) resident: see the mappings above"
        )
    if opts.imports:
        for phase, lines in footprint.imports.items():
            print(f"imported during {phase}: {', '.join(packages(lines)) or '(nothing)'}")
    return 0 if ok or not opts.strict else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (the weights need to be real, not good)")
    parser.add_argument("--jobs", type=int, default=5, help="classification jobs on the test set in the job phase")
    parser.add_argument("--batch-size", type=int, default=32, help="the job's batch (AgentClient's default)")
    parser.add_argument("--imports", action="store_true", help="list the packages the agent imports in each phase")
    parser.add_argument(
        "--agent-exe",
        default=str(Path(sys.executable).parent / "jetfleet-agent"),
        help="the jetfleet-agent to measure (default: this environment's)",
    )
    parser.add_argument("--agent-env", action="append", default=[], metavar="KEY=VALUE", help="for the agent only")
    parser.add_argument("--insecure", action="store_true", help="run the agent unenrolled, in plaintext")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    opts = parser.parse_args()
    if any("=" not in kv for kv in opts.agent_env):
        parser.error("--agent-env takes KEY=VALUE")
    if opts.jobs < 1:
        parser.error("--jobs must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        model = trained_model(work / "model", opts.epochs)
        print(f"trained and exported {MODEL} on digits in {time.perf_counter() - started:.0f} s")
        onnx_path = model.files[model.spec.onnx.sha256]
        baselines = {
            "python": bare_process(BARE_PYTHON),
            "python + ORT session": bare_process(BARE_ORT, str(onnx_path), str(opts.batch_size)),
        }
        footprint = measure_agent(work, model, opts)
    return report(footprint, baselines, opts)


if __name__ == "__main__":
    sys.exit(main())
