"""Errors the agent returns to its callers, with the gRPC status they map to.

Plain functions raise :class:`AgentError` with a status *name*; only the
servicer imports grpc and turns the name into a ``grpc.StatusCode``. That
keeps the store, the activation and the job runner testable without a server.
"""

from __future__ import annotations

from jetfleet.common.errors import JetfleetError

# The gRPC status names we use, and when (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
INVALID_ARGUMENT = "INVALID_ARGUMENT"  # the request itself is wrong (bad spec, model mismatch)
FAILED_PRECONDITION = "FAILED_PRECONDITION"  # valid, but the agent is not in a state to do it
NOT_FOUND = "NOT_FOUND"  # no such model / artifact
RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"  # disk or store quota
DATA_LOSS = "DATA_LOSS"  # bytes arrived corrupted (size or hash mismatch)
ABORTED = "ABORTED"  # a concurrent operation on the same thing; retry later
PERMISSION_DENIED = "PERMISSION_DENIED"  # not signed by the pinned key, or for another device: never retried
INTERNAL = "INTERNAL"  # a bug or an unexpected backend failure


class AgentError(JetfleetError):
    """A failure the caller can act on; ``code`` is a gRPC status name."""

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.code = code
