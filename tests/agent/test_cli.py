from __future__ import annotations

from importlib.metadata import version


def test_agent_entry_point_prints_its_version(cli) -> None:
    result = cli(entry="jetfleet-agent")
    assert result.returncode == 0 and result.stdout.strip() == f"jetfleet-agent {version('jetfleet')}"
    assert cli("--version", entry="jetfleet-agent").returncode == 0


def test_agent_does_not_pull_in_torch() -> None:
    import subprocess
    import sys

    code = "import sys, jetfleet.agent.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _agent_exe() -> str:
    import sys
    from pathlib import Path

    return str(Path(sys.executable).parent / "jetfleet-agent")


def test_serve_refuses_to_start_unenrolled_without_insecure(tmp_path) -> None:
    import subprocess

    out = subprocess.run(
        [_agent_exe(), "serve", "--name", "jetson-08", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "jetson-08 is not enrolled" in out.stderr and "jetfleet-agent enroll" in out.stderr


def test_serve_answers_health_checks_and_stops_cleanly_on_sigterm(tmp_path, fleet_pki) -> None:
    import re
    import signal
    import subprocess
    import time

    from agents import provision

    from jetfleet.proto.rpc import check_health, make_channel

    provision(tmp_path / "data", "jetson-07", fleet_pki)
    creds = fleet_pki.controller_credentials()
    config = tmp_path / "agent.toml"
    config.write_text(f'name = "jetson-07"\nlisten = "127.0.0.1:0"\ndata_dir = "{tmp_path / "data"}"\n')
    proc = subprocess.Popen(
        [_agent_exe(), "serve", "--config", str(config), "--backend", "onnxruntime", "--tag", "site=lab"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 60
        while "listening on port" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, line
            line = proc.stderr.readline()
        port = int(re.search(r"port (\d+)", line).group(1))
        assert not check_health(make_channel(f"127.0.0.1:{port}"), timeout=2)  # plaintext gets nowhere
        channel = make_channel(f"127.0.0.1:{port}", credentials=creds, server_name="jetson-07")
        assert check_health(channel) and check_health(channel, "jetfleet.v1.AgentService")
        from jetfleet.controller.fleet.agent_client import AgentClient

        with AgentClient(f"127.0.0.1:{port}", "jetson-07", credentials=creds) as client:
            status = client.status()
        assert status.name == "jetson-07" and list(status.tags) == ["site=lab"]
        assert list(status.backends) == ["onnxruntime"] and status.device.device_class
        channel.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "data" / "state.json").exists()


def test_two_agents_cannot_share_a_data_folder(tmp_path) -> None:
    from jetfleet.agent.config import AgentConfig
    from jetfleet.agent.daemon import Agent
    from jetfleet.common.errors import JetfleetError

    config = AgentConfig(name="a", listen="127.0.0.1:0", data_dir=tmp_path, backends=("onnxruntime",), insecure=True)
    first = Agent(config)
    try:
        import pytest

        with pytest.raises(JetfleetError, match="another agent is using"):
            Agent(config)
    finally:
        first.stop()


def test_info_prints_the_device_and_backends(cli) -> None:
    import json

    import onnxruntime

    result = cli("info", "--json", entry="jetfleet-agent")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["device"]["device_class"] and data["device"]["cpu_count"] >= 1
    assert data["backends"]["onnxruntime"][0] is True and data["backends"]["tensorrt"][0] is False
    assert data["onnxruntime"]["providers"] == onnxruntime.get_available_providers()
    assert data["onnxruntime"]["version"] == onnxruntime.__version__ and data["onnxruntime"]["error"] is None
    assert set(data["tensorrt"]) == {"name", "version", "path", "error", "system_bindings"}
    assert (data["tensorrt"]["error"] is None) == (data["tensorrt"]["version"] is not None)
    text = cli("info", entry="jetfleet-agent")
    assert text.returncode == 0 and "onnxruntime" in text.stdout
    assert "ONNX Runtime providers: " + ", ".join(onnxruntime.get_available_providers()) in text.stdout
    assert "TensorRT: " in text.stdout


def test_install_service_writes_a_unit_and_config(cli, tmp_path) -> None:
    unit_dir, config = tmp_path / "units", tmp_path / "etc" / "agent.toml"
    result = cli(
        "install-service", "--unit-dir", unit_dir, "--config-out", config, "--controller", "ws:50050",
        "--name", "jetson-09", "--data-dir", tmp_path / "state", entry="jetfleet-agent",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    unit = (unit_dir / "jetfleet-agent.service").read_text()
    assert "serve --config" in unit and "Restart=on-failure" in unit
    assert 'controller = "ws:50050"' in config.read_text()
    again = cli(
        "install-service", "--unit-dir", unit_dir, "--config-out", config, "--name", "other", entry="jetfleet-agent"
    )
    assert again.returncode == 1 and "error:" in again.stderr and "--force" in again.stderr


def _expired_copy(cert_pem: bytes, ca_key_pem: bytes) -> bytes:
    """The same device certificate, re-signed by the fleet CA with a validity that ended yesterday."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from jetfleet.common import pki

    cert = x509.load_pem_x509_certificate(cert_pem)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now - dt.timedelta(days=1))
    )
    for ext in cert.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    signed = builder.sign(pki.load_private_key(ca_key_pem), hashes.SHA256())
    return signed.public_bytes(serialization.Encoding.PEM)


def _serve(*args: str) -> object:
    import subprocess

    return subprocess.run(
        [_agent_exe(), "serve", "--listen", "127.0.0.1:0", *args], capture_output=True, text=True, timeout=60
    )


def test_serve_refuses_an_expired_certificate_in_one_line(tmp_path, fleet_pki) -> None:
    from agents import provision

    from jetfleet.common import pki

    provision(tmp_path, "jetson-41", fleet_pki)
    cert = tmp_path / "identity" / "agent.pem"
    pki.write_secret(cert, _expired_copy(cert.read_bytes(), (fleet_pki.folder / "ca.key").read_bytes()))
    out = _serve("--name", "jetson-41", "--data-dir", str(tmp_path), "--backend", "onnxruntime")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: the device certificate expired at") and "jetfleet devices enroll" in line


def test_serve_refuses_a_tensorrt_only_backend_that_cannot_work_here(tmp_path) -> None:
    import pytest

    from jetfleet.agent.engines.tensorrt import tensorrt_available

    if tensorrt_available()[0]:
        pytest.skip("TensorRT works on this machine: nothing to refuse")
    out = _serve("--name", "jetson-42", "--data-dir", str(tmp_path), "--backend", "tensorrt", "--insecure")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert (
        line.startswith("error: backend tensorrt (the only one configured) is unusable:")
        and line.split("unusable:", 1)[1].strip()
    )


def test_install_service_runs_the_venv_it_is_given(cli, tmp_path) -> None:
    venv = tmp_path / "opt" / "jetfleet"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "jetfleet-agent").write_text("#!/bin/sh\n")
    (venv / "bin" / "jetfleet-agent").chmod(0o755)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")  # no JetPack here
    unit_dir, config = tmp_path / "units", tmp_path / "etc" / "agent.toml"
    result = cli(
        "install-service", "--venv", venv, "--unit-dir", unit_dir, "--config-out", config,
        "--name", "jetson-43", "--data-dir", tmp_path / "state", entry="jetfleet-agent",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"venv {venv}: already set up" in result.stdout
    assert (
        f"ExecStart={venv}/bin/jetfleet-agent serve --config {config}"
        in (unit_dir / "jetfleet-agent.service").read_text()
    )
    assert f"sudo -u jetfleet {venv}/bin/jetfleet-agent enroll" in result.stdout
    refused = cli("install-service", "--venv", "/home/someone/venv", "--unit-dir", unit_dir, entry="jetfleet-agent")
    assert refused.returncode == 1 and "ProtectHome" in refused.stderr and "Traceback" not in refused.stderr
