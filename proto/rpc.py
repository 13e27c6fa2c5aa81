"""gRPC settings both sides share: message limits, keepalive, health, deadlines.

Message limits are explicit on every server and channel (gRPC's implicit
4 MiB receive limit would otherwise surface as a confusing RESOURCE_EXHAUSTED
mid-upload). Keepalive pings let an agent notice a dead controller connection
in seconds rather than at the next TCP timeout.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # a 4 MiB chunk plus headroom, or a batch of inline job images
DEFAULT_CHUNK = 256 * 1024  # upload chunk: fastest and leanest in benchmarks/transfer.py (2-core loopback)

# Deadlines (seconds) callers use unless they know better.
QUICK_S = 10.0  # status, offsets, registration, heartbeats
UPLOAD_S = 600.0  # per upload call; a resumable upload retries from its offset anyway
DEPLOY_S = 1800.0  # a TensorRT build of a large model on a Nano takes minutes
JOB_S = 3600.0


def _options(max_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", max_bytes),
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def make_server(max_bytes: int = MAX_MESSAGE_BYTES, workers: int = 16) -> grpc.Server:
    """A thread-pool server: streaming handlers (uploads, deploys, jobs) each hold a worker."""
    options = [*_options(max_bytes), ("grpc.http2.min_ping_interval_without_data_ms", 5_000)]
    return grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)


CONTROLLER_TLS_NAME = "jetfleet-controller"  # the DNS name every controller certificate carries


@dataclass(frozen=True)
class Credentials:
    """One side's mutual-TLS material: the fleet CA, its own certificate and key (PEM bytes).

    Both servers require a client certificate signed by the CA; both clients
    check the server's certificate against the CA and a fixed name (the
    controller's, or the device's own name), so an address or DNS record is
    never what is trusted.
    """

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server(self, require_client_cert: bool = True) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)], root_certificates=self.ca_pem, require_client_auth=require_client_cert
        )

    def channel(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca_pem, self.key_pem, self.cert_pem)


def bind(server: grpc.Server, address: str, credentials: Credentials | None, require_client_cert: bool = True) -> int:
    """Listen on ``address`` with mutual TLS, or in plaintext when ``credentials`` is None; the bound port."""
    if credentials is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, credentials.server(require_client_cert))


def make_channel(
    address: str,
    max_bytes: int = MAX_MESSAGE_BYTES,
    credentials: Credentials | None = None,
    server_name: str | None = None,
    ca_only: bytes | None = None,
) -> grpc.Channel:
    """A channel to ``address``: plaintext, mutual TLS (``credentials``), or server-only TLS (``ca_only``).

    ``server_name`` is the name the server's certificate must carry (TLS only).
    """
    options = _options(max_bytes)
    if credentials is None and ca_only is None:
        return grpc.insecure_channel(address, options=options)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    creds = credentials.channel() if credentials is not None else grpc.ssl_channel_credentials(ca_only)
    return grpc.secure_channel(address, creds, options=options)


def peer_certificate(context: grpc.ServicerContext) -> bytes | None:
    """The PEM certificate the caller authenticated with (mutual TLS), or None (plaintext, or none sent)."""
    pem = context.auth_context().get("x509_pem_cert")
    return pem[0] if pem else None


def add_health(server: grpc.Server, services: Iterable[str]) -> health.HealthServicer:
    """The standard grpc.health.v1 service, SERVING for ``services`` and for "" (the whole server)."""
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ("", *services):
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return servicer


def check_health(channel: grpc.Channel, service: str = "", timeout: float = QUICK_S) -> bool:
    """True when the server at ``channel`` reports SERVING for ``service``."""
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.RpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def status_code(name: str) -> grpc.StatusCode:
    """``grpc.StatusCode`` from its name ("NOT_FOUND"); unknown names are INTERNAL."""
    return getattr(grpc.StatusCode, name, grpc.StatusCode.INTERNAL)
