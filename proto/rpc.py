"""gRPC settings both sides share: message limits, keepalive, health, deadlines.

Message limits are explicit on every server and channel (gRPC's implicit
4 MiB receive limit would otherwise surface as a confusing RESOURCE_EXHAUSTED
mid-upload). Keepalive pings let an agent notice a dead controller connection
in seconds rather than at the next TCP timeout.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent import futures
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


def make_channel(address: str, max_bytes: int = MAX_MESSAGE_BYTES) -> grpc.Channel:
    return grpc.insecure_channel(address, options=_options(max_bytes))


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
