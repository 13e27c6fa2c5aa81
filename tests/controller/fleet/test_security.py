"""The controller's PKI folder and the enrollment table: `jetfleet certs init`, tokens, revocation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from conftest import run_cli
from cryptography import x509

from jetfleet.common import pki
from jetfleet.common.errors import JetfleetError
from jetfleet.controller.fleet.security import FILES, Enrollments, FleetPKI
from jetfleet.controller.registry.db import make_engine, migrate


def test_certs_init_writes_an_owner_only_pki_and_refuses_to_replace_it(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    out = run_cli("certs", "init", "--dir", folder, "--host", "10.0.0.5", "--host", "ws.lab")
    assert out.returncode == 0, out.stderr
    assert "CA sha256" in out.stdout and "ws.lab" in out.stdout
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in FILES.values():
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    fleet = FleetPKI(folder)
    controller = fleet.controller_credentials().cert_pem
    pki.verify_issued_by(controller, fleet.ca_pem)
    assert pki.identity_of(controller) == pki.Identity("controller", "controller")
    assert pki.identity_of(fleet.admin_credentials().cert_pem).role == "admin"
    san = pki.load_certificate(controller).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "jetfleet-controller" in str(san.value) and "ws.lab" in str(san.value) and "10.0.0.5" in str(san.value)

    again = run_cli("certs", "init", "--dir", folder)
    assert again.returncode == 1 and "already exists" in again.stderr and "--force" in again.stderr
    assert FleetPKI(folder).ca_pem == fleet.ca_pem  # untouched
    assert run_cli("certs", "init", "--dir", folder, "--force").returncode == 0
    assert FleetPKI(folder).ca_pem != fleet.ca_pem


def test_a_controller_without_a_pki_says_how_to_make_one(tmp_path: Path) -> None:
    out = run_cli("controller", "serve", "--listen", "127.0.0.1:0", "--pki", tmp_path / "none")
    assert out.returncode == 1 and "certs init" in out.stderr and "--insecure" in out.stderr


def test_tokens_are_single_use_named_and_expiring(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    migrate(engine)
    enrollments = Enrollments(engine)
    token = enrollments.create("jetson-01", ttl_s=60, now=1000.0)
    with pytest.raises(JetfleetError, match="refused"):
        enrollments.consume("jetson-02", token.token, now=1001.0)
    with pytest.raises(JetfleetError, match="refused"):
        enrollments.consume("jetson-01", token.token + "x", now=1001.0)
    with pytest.raises(JetfleetError, match="refused"):
        enrollments.consume("jetson-01", token.token, now=1061.0)
    enrollments.consume("jetson-01", token.token, now=1059.0)
    with pytest.raises(JetfleetError, match="refused"):
        enrollments.consume("jetson-01", token.token, now=1059.5)
    with pytest.raises(JetfleetError, match="reserved"):
        enrollments.create("jetfleet-controller")
    with pytest.raises(JetfleetError):
        enrollments.create("bad name!")
    with engine.connect() as conn:  # only the secret's hash is stored
        stored = conn.exec_driver_sql("SELECT secret_sha256 FROM enrollment_tokens").scalar_one()
    assert token.token.split(".")[1] not in stored and len(stored) == 64
