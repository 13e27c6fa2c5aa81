"""What mutual TLS and signed manifests cost: the same agent work over mTLS and over plaintext.

What is measured
    Two real ``jetfleet-agent serve`` processes on 127.0.0.1: one enrolled
    (its identity issued by a fresh fleet CA, mutual TLS, manifests verified
    with the pinned key), one started with ``--insecure`` (the baseline, same
    process, same machine, interleaved rounds). For each:

    - upload: a random artifact (``--size-mib``, 64 MiB by default) through
      ``AgentClient.upload`` at the default 256 KiB chunk, signed manifest
      included on the TLS side; MB/s = bytes ÷ wall time to the agent's ack
      (it hashes, writes, fsyncs and renames the blob);
    - status: ``GetStatus`` round trips on an open channel, p50 in ms (the
      handshake is paid once per channel, so this is the per-call cost).

    Ratios are TLS ÷ plaintext: throughput (1.0 = free) and latency (1.0 = free).

Usage:

    .venv/bin/python benchmarks/tls_overhead.py [--size-mib N] [--rounds N] [--calls N]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jetfleet.agent.identity import store_identity
from jetfleet.common import pki
from jetfleet.common.fleet import ArtifactRef, ModelSpec
from jetfleet.common.hashing import sha256_file
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.fleet.agent_client import AgentClient
from jetfleet.controller.fleet.security import FleetPKI, init_pki
from jetfleet.proto.v1 import controller_pb2 as cpb

MiB = 1024 * 1024


def start_agent(work: Path, name: str, secure: bool) -> tuple[subprocess.Popen[str], int]:
    exe = Path(sys.executable).parent / "jetfleet-agent"
    args = [str(exe), "serve", "--name", name, "--listen", "127.0.0.1:0", "--data-dir", str(work / name),
            "--backend", "onnxruntime", "--log-level", "warning", *([] if secure else ["--insecure"])]  # fmt: skip
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    line = ""
    while "listening on port" not in line:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        if not line and proc.poll() is not None:
            raise SystemExit(f"{name} did not start")
    return proc, int(re.search(r"port (\d+)", line).group(1))  # type: ignore[union-attr]


def enroll_directly(data_dir: Path, name: str, fleet: FleetPKI) -> None:
    """The identity enrollment would write, issued by the CA without the token round trip."""
    key = pki.new_private_key()
    cert = fleet.issue_device(name, pki.make_csr(key, pki.Identity("device", name)))
    reply = cpb.EnrollResponse(
        certificate_pem=cert, ca_pem=fleet.ca_pem, manifest_public_key_pem=fleet.signing_public_pem()
    )
    store_identity(data_dir / "identity", pki.Identity("device", name), key, reply, "benchmark")


def fresh(blob: Path, n: int) -> ArtifactRef:
    """Change the last bytes so each upload is new to the agent (no dedup)."""
    with open(blob, "r+b") as fh:
        fh.seek(-8, os.SEEK_END)
        fh.write(n.to_bytes(8, "little"))
    return ArtifactRef(*sha256_file(blob))


def spec_for(ref: ArtifactRef) -> ModelSpec:
    return ModelSpec("bench", 1, "fp32", ref, PreprocessSpec((8, 8), 1, (0.5,), (0.25,), ("a", "b")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=300)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        init_pki(work / "pki")
        fleet = FleetPKI(work / "pki")
        enroll_directly(work / "secure", "secure", fleet)
        blob = work / "artifact.bin"
        with open(blob, "wb") as fh:
            for _ in range(opts.size_mib):
                fh.write(os.urandom(MiB))
        procs, clients = [], {}
        try:
            for name, secure in (("secure", True), ("plain", False)):
                proc, port = start_agent(work, name, secure)
                procs.append(proc)
                if secure:
                    clients[name] = AgentClient(
                        f"127.0.0.1:{port}", name, credentials=fleet.controller_credentials(), signer=fleet.signer()
                    )
                else:
                    clients[name] = AgentClient(f"127.0.0.1:{port}", name)
            uploads: dict[str, list[float]] = {"secure": [], "plain": []}
            status: dict[str, list[float]] = {"secure": [], "plain": []}
            n = 0
            for _ in range(opts.rounds):
                for name, client in clients.items():
                    n += 1
                    ref = fresh(blob, n)
                    manifest = client.sign(spec_for(ref), f"bench-{n}")
                    start = time.perf_counter()
                    client.upload(blob, ref, manifest=manifest)
                    uploads[name].append(time.perf_counter() - start)
                    (work / name / "artifacts" / "blobs" / ref.sha256).unlink()
                    client.status(history=0)  # the channel is open: time calls, not the handshake
                    for _ in range(opts.calls // opts.rounds):
                        start = time.perf_counter()
                        client.status(history=0)
                        status[name].append((time.perf_counter() - start) * 1000)
        finally:
            for client in clients.values():
                client.close()
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    size = opts.size_mib * MiB
    mbps = {k: size / statistics.median(v) / 1e6 for k, v in uploads.items()}
    p50 = {k: statistics.median(v) for k, v in status.items()}
    print(f"{opts.size_mib} MiB uploads and {opts.calls} status calls per agent, median of {opts.rounds} rounds")
    print(f"{'':<10}{'upload MB/s':>12}{'status p50 ms':>15}")
    for name in ("plain", "secure"):
        print(f"{name:<10}{mbps[name]:>12.0f}{p50[name]:>15.3f}")
    print(
        f"mTLS + signed manifest vs plaintext: throughput {mbps['secure'] / mbps['plain']:.2f}×, "
        f"per-call latency {p50['secure'] / p50['plain']:.2f}×"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
