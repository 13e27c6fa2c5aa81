"""A real controller process and real agent processes on loopback: deploy, an offline device, convergence."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agents import DigitsModel

BIN = Path(sys.executable).parent


class Proc:
    """A jetfleet daemon in its own process, stopped with SIGTERM (SIGKILL if it hangs)."""

    def __init__(self, args: list[str], ready: str) -> None:
        self.p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        deadline, line = time.monotonic() + 60, ""
        while ready not in line:
            assert time.monotonic() < deadline and self.p.poll() is None, f"{args[0]} did not start: {line}"
            line = self.p.stderr.readline()  # type: ignore[union-attr]
        self.port = int(re.search(r"port (\d+)", line).group(1))  # type: ignore[union-attr]
        self.p.stderr.close()  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def _until(cond: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def fleet(digits_model: DigitsModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(digits_model.root / "registry.db", home / "registry.db")
    shutil.copytree(digits_model.root / "blobs", home / "blobs")
    monkeypatch.setenv("JETFLEET_HOME", str(home))  # the controller opens the registry there, and the PKI
    init = subprocess.run([str(BIN / "jetfleet"), "certs", "init"], capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    controller = Proc(
        [str(BIN / "jetfleet"), "controller", "serve", "--listen", "127.0.0.1:0", "--offline-after", "3",
         "--heartbeat-interval", "0.3", "--enroll-listen", "127.0.0.1:0"],
        "listening on port",
    )  # fmt: skip
    procs: dict[str, Proc] = {}

    def enroll(name: str) -> None:
        """As an operator would: a token from `devices enroll`, then `jetfleet-agent enroll` on the device."""
        if (tmp_path / name / "identity" / "enrolled.json").exists():
            return
        out = cli("devices", "enroll", "--name", name, "--json")
        assert out.returncode == 0, out.stderr
        token = json.loads(out.stdout)
        done = subprocess.run(
            [str(BIN / "jetfleet-agent"), "enroll", "--name", name, "--data-dir", str(tmp_path / name),
             "--enroll-address", token["enroll_address"], "--token", token["token"],
             "--ca", str(home / "pki" / "ca.pem"), "--ca-sha256", token["ca_sha256"]],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def start_agent(name: str, *extra: str) -> Proc:
        enroll(name)
        procs[name] = Proc(
            [str(BIN / "jetfleet-agent"), "serve", "--name", name, "--listen", "127.0.0.1:0",
             "--controller", f"127.0.0.1:{controller.port}", "--data-dir", str(tmp_path / name),
             "--backend", "onnxruntime", "--job-threads", "1", "--tag", f"n={name[-1]}", *extra],
            "listening on port",
        )  # fmt: skip
        return procs[name]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "jetfleet"), *args, "--controller", f"127.0.0.1:{controller.port}"],
            capture_output=True,
            text=True,
            timeout=300,
        )

    yield {"cli": cli, "start_agent": start_agent, "procs": procs, "controller": controller}
    for p in procs.values():
        p.stop()
    controller.stop()


def _devices(cli: Callable[..., subprocess.CompletedProcess[str]]) -> dict[str, dict]:
    out = cli("devices", "list", "--json")
    assert out.returncode == 0, out.stderr
    return {d["name"]: d for d in json.loads(out.stdout)}


def _serving(device: dict) -> list[str]:
    return [f"{s['spec']['model']}:{s['spec']['precision']}" for s in device.get("active", [])]


@pytest.mark.slow
def test_deploy_to_all_then_an_offline_device_converges_by_itself(fleet: dict, digits_model: DigitsModel) -> None:
    cli = fleet["cli"]
    for name in ("jetson-01", "jetson-02"):
        fleet["start_agent"](name)
    _until(lambda: {d["liveness"] for d in _devices(cli).values()} == {"online"} and len(_devices(cli)) == 2)

    first = cli("deploy", "--model", "basic_cnn", "--devices", "all", "--precision", "int8", "--json")
    assert first.returncode == 0, first.stderr
    assert {k: v["phase"] for k, v in json.loads(first.stdout).items()} == {
        "jetson-01": "active",
        "jetson-02": "active",
    }
    assert all(_serving(d) == ["basic_cnn:int8"] for d in _devices(cli).values())

    fleet["procs"]["jetson-02"].stop()
    _until(lambda: _devices(cli)["jetson-02"]["liveness"] == "offline", what="jetson-02 offline")
    second = cli("deploy", "--model", "basic_cnn", "--devices", "all", "--precision", "fp32", "--json")
    assert second.returncode == 0, second.stderr
    outcome = json.loads(second.stdout)
    assert outcome["jetson-01"]["phase"] == "active"
    assert outcome["jetson-02"]["phase"] == "offline" and "converge" in outcome["jetson-02"]["message"]

    fleet["start_agent"]("jetson-02")  # no new command: the reconcile loop brings it to fp32
    _until(lambda: _serving(_devices(cli)["jetson-02"]) == ["basic_cnn:fp32"], what="jetson-02 converging")
    status = json.loads(cli("status", "--json").stdout)
    assert {d["decision"] for d in status["desired"]} == {"converged"}
    assert {r["agent"] for r in status["recent"] if r["state"] == "DEPLOYMENT_STATE_ACTIVE"} == {
        "jetson-01",
        "jetson-02",
    }


@pytest.mark.slow
def test_bad_fleet_requests_are_clear(fleet: dict) -> None:
    cli = fleet["cli"]
    fleet["start_agent"]("jetson-01")
    _until(lambda: "jetson-01" in _devices(cli))
    unknown = cli("deploy", "--model", "resnet999", "--devices", "all")
    assert unknown.returncode == 1 and "resnet999" in unknown.stderr
    nobody = cli("deploy", "--model", "basic_cnn", "--devices", "tag=n=7")
    assert nobody.returncode == 1 and "matches no device" in nobody.stderr
    ghost = cli("deploy", "--model", "basic_cnn", "--devices", "jetson-01,jetson-99")
    assert ghost.returncode == 1 and "jetson-99" in ghost.stderr
    tagged = cli("devices", "tag", "jetson-01", "site=lab")
    assert tagged.returncode == 0 and "site=lab" in tagged.stdout
    assert _devices(cli)["jetson-01"]["tags"] == {"n": "1", "site": "lab"}
    down = subprocess.run(
        [str(BIN / "jetfleet"), "devices", "list", "--controller", "127.0.0.1:1"], capture_output=True, text=True
    )
    assert down.returncode == 1 and "jetfleet controller serve" in down.stderr


@pytest.mark.slow
def test_canary_gate_failure_halts_and_rolls_back(fleet: dict) -> None:
    cli = fleet["cli"]
    names = ("jetson-01", "jetson-02", "jetson-03")
    for name in names:
        fleet["start_agent"](name)
    _until(lambda: len(_devices(cli)) == 3 and {d["liveness"] for d in _devices(cli).values()} == {"online"})
    assert cli("deploy", "--model", "basic_cnn", "--precision", "int8").returncode == 0

    plan = cli("deploy", "--model", "basic_cnn", "--precision", "fp32", "--canary", "1", "--wave-size", "1", "--plan")
    assert plan.returncode == 0, plan.stderr
    assert "canary 1/3: jetson-01" in plan.stdout and "wave 3/3: jetson-03" in plan.stdout
    assert plan.stdout.count("must build the engine") == 3
    assert all(_serving(d) == ["basic_cnn:int8"] for d in _devices(cli).values())  # --plan changed nothing

    # An impossible accuracy gate: the canary deploys, fails the gate, and goes back to int8.
    halted = cli("deploy", "--model", "basic_cnn", "--precision", "fp32", "--canary", "1", "--min-accuracy", "0.9999")
    assert halted.returncode == 1, halted.stdout + halted.stderr
    assert "smoke-test accuracy" in halted.stdout and "halted" in halted.stdout
    time.sleep(1.5)  # reconciliation must not undo the rollback
    assert {n: _serving(d) for n, d in _devices(cli).items()} == {n: ["basic_cnn:int8"] for n in names}

    passed = cli("deploy", "--model", "basic_cnn", "--precision", "fp32", "--canary", "1", "--wave-size", "2",
                 "--min-accuracy", "0.9", "--max-p99-ms", "1000", "--json")  # fmt: skip
    assert passed.returncode == 0, passed.stderr
    assert {v["phase"] for v in json.loads(passed.stdout).values()} == {"active"}
    assert all(_serving(d) == ["basic_cnn:fp32"] for d in _devices(cli).values())


@pytest.mark.slow
def test_bench_writes_a_report_with_a_row_for_every_device(fleet: dict, tmp_path: Path) -> None:
    import csv

    cli = fleet["cli"]
    for name in ("jetson-01", "jetson-02"):
        fleet["start_agent"](name)
    _until(lambda: len(_devices(cli)) == 2)
    out = tmp_path / "report"
    bench = cli("bench", "--model", "basic_cnn", "--batch-sizes", "1,8", "--precisions", "int8", "--report", str(out))
    assert bench.returncode == 0, bench.stdout + bench.stderr
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert sorted((r["device"], r["batch_size"]) for r in rows) == [
        ("jetson-01", "1"), ("jetson-01", "8"), ("jetson-02", "1"), ("jetson-02", "8"),
    ]  # fmt: skip
    html = (out / "report.html").read_text()
    assert "jetson-01" in html and "jetson-02" in html and "p99" in html
    assert (out / "report.md").exists() and json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_the_demo_runs_the_whole_fleet_and_leaves_a_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "demo"
    proc = subprocess.run(
        [str(BIN / "jetfleet"), "demo", "--out", str(out), "--epochs", "6"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "demo finished" in proc.stdout and "gate: passed" in proc.stdout
    html = (out / "report" / "report.html").read_text()
    for name in ("jetson-nano-01", "jetson-xavier-02", "jetson-orin-03"):
        assert html.count(name) >= 6  # one summary row per precision and batch size, at least
    assert "p99" in html and "Top-1" in html
    # Everything was shut down: no daemon outlives the demo.
    ps = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True)
    assert ps.stdout.strip() == ""


@pytest.mark.slow
def test_an_agent_that_rejects_the_artifact_fails_alone(fleet: dict, tmp_path: Path) -> None:
    cli = fleet["cli"]
    tiny = tmp_path / "tiny.toml"
    tiny.write_text('[limits]\nmax_store_bytes = "4KiB"\n')  # no model fits: every upload is refused
    fleet["start_agent"]("jetson-01")
    fleet["start_agent"]("jetson-02", "--config", str(tiny))
    _until(lambda: len(_devices(cli)) == 2)
    out = cli("deploy", "--model", "basic_cnn", "--precision", "int8", "--json")
    assert out.returncode == 1
    outcome = json.loads(out.stdout)
    assert outcome["jetson-01"]["phase"] == "active"
    assert outcome["jetson-02"]["phase"] == "failed" and "quota exceeded" in outcome["jetson-02"]["message"]
    assert _serving(_devices(cli)["jetson-02"]) == []  # nothing recorded as active that is not
    status = json.loads(cli("status", "--json").stdout)
    states = {(r["agent"], r["state"]) for r in status.get("recent", [])}
    assert ("jetson-02", "DEPLOYMENT_STATE_ACTIVE") not in states
    decision = {d["device"]: d["decision"] for d in status["desired"]}
    assert decision["jetson-01"] == "converged" and decision["jetson-02"] in ("backoff", "deploy", "in-flight")
