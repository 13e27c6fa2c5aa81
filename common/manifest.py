"""Signed deployment manifests: what an agent checks before it installs anything.

Mutual TLS proves who is connected; it does not prove that the fleet's
operator approved *this* model for *this* device. A stolen controller TLS
key, a compromised proxy or a replayed old request could otherwise push any
ONNX file. So every deployment carries a small manifest signed with the
controller's Ed25519 manifest key (see :mod:`jetfleet.common.pki`), in the
spirit of TUF:

- **what**: the model spec (name, version, precision, sha256 of the ONNX
  file and test set); an artifact is installed only if the manifest covers
  its hash (:meth:`Manifest.covers`);
- **where**: the one device it is for, and its class (an Orin engine is
  not a Nano's); a manifest captured on one device is refused by every other;
- **when**: issued/expiry times, so a captured manifest cannot be replayed
  forever (freeze attack), with some clock skew allowed for Jetsons without
  an RTC battery;
- **no rollback attack**: a version below the one the device already
  accepted is refused unless the manifest is an explicit, signed rollback.

The signature covers the exact payload bytes (canonical JSON), and the agent
parses those bytes only after the signature verified: unsigned bytes are
never interpreted. Every refusal is a :class:`ManifestError` whose
``reason`` is a stable token (for metrics and the wire) and whose message is
a one-liner an operator can act on.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass, fields
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import ModelSpec
from jetfleet.common.pki import key_id

FORMAT = "jetfleet.manifest/1"
REASONS = (
    "unsigned",
    "malformed",
    "unknown-key",
    "bad-signature",
    "expired",
    "not-yet-valid",
    "wrong-device-class",
    "wrong-device",
    "downgrade",
    "mismatch",
)
_FIELDS = (
    "format",
    "deployment_id",
    "model",
    "device_class",
    "issued_at",
    "expires_at",
    "spec",
    "rollback",
    "device",
    "purpose",
)
PURPOSES = ("deploy", "upload")  # an "upload" manifest lets bytes in (a job's test set) but never deploys
_SPEC_FIELDS = frozenset(f.name for f in fields(ModelSpec))


class ManifestError(JetfleetError):
    """A deployment manifest was refused; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str, hint: str | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown manifest error reason {reason!r}")
        super().__init__(message, hint)
        self.reason = reason


def _malformed(message: str) -> ManifestError:
    return ManifestError("malformed", f"malformed manifest: {message}")


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@dataclass(frozen=True)
class Manifest:
    """What the controller's key approved: one model spec (or a rollback) for one device class, for a while."""

    deployment_id: str
    model: str
    device_class: str
    issued_at: float
    expires_at: float
    spec: ModelSpec | None = None  # None only for a rollback to the device's own previous version
    rollback: bool = False  # an explicit, signed rollback: may go below the version already accepted
    device: str = ""  # the one device it is for: a manifest captured from one device is useless on another
    purpose: str = "deploy"  # see PURPOSES

    def __post_init__(self) -> None:
        if not isinstance(self.device, str):
            raise _malformed(f"device must be a string, got {self.device!r}")
        if self.purpose not in PURPOSES:
            raise _malformed(f"purpose must be one of {list(PURPOSES)}, got {self.purpose!r}")
        for name in ("deployment_id", "model", "device_class"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise _malformed(f"{name} must be a non-empty string, got {value!r}")
        for name in ("issued_at", "expires_at"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise _malformed(f"{name} must be a finite number of unix seconds, got {value!r}")
        if self.expires_at <= self.issued_at:
            raise _malformed(
                f"deployment {self.deployment_id} expires ({self.expires_at}) before it is issued ({self.issued_at})"
            )
        if not isinstance(self.rollback, bool):
            raise _malformed(f"rollback must be true or false, got {self.rollback!r}")
        if self.spec is None and not self.rollback:
            raise _malformed(f"deployment {self.deployment_id} of {self.model} has no model spec and is not a rollback")
        if self.spec is not None and not isinstance(self.spec, ModelSpec):
            raise _malformed(f"spec must be a model spec, got {type(self.spec).__name__}")
        if self.spec is not None and self.spec.model != self.model:
            raise _malformed(
                f"deployment {self.deployment_id} is for model {self.model} but its spec is {self.spec.ref}"
            )

    @property
    def version(self) -> int | None:
        return self.spec.version if self.spec else None

    @property
    def description(self) -> str:
        """``basic_cnn v3 (fp16)`` or ``rollback of basic_cnn``, for messages."""
        if self.spec is None:
            return f"rollback of {self.model}"
        kind = "rollback to " if self.rollback else ""
        return f"{kind}{self.model} v{self.spec.version} ({self.spec.precision})"

    def covers(self, sha256: str, size: int | None = None) -> bool:
        """Whether ``sha256`` (of ``size`` bytes, when given) is an artifact this manifest approved (the ONNX file
        or the test set): an uploader must not claim another size than the signed one (it reserves disk by it)."""
        if self.spec is None:
            return False
        approved = [r for r in (self.spec.onnx, self.spec.test_set) if r is not None]
        return any(r.sha256 == sha256 and (size is None or r.size == size) for r in approved)

    def to_payload(self) -> bytes:
        """Canonical JSON bytes: the same manifest always gives the same bytes (and signature input)."""
        body = {
            "format": FORMAT,
            "deployment_id": self.deployment_id,
            "model": self.model,
            "device_class": self.device_class,
            "issued_at": float(self.issued_at),
            "expires_at": float(self.expires_at),
            "spec": self.spec.to_dict() if self.spec else None,
            "rollback": self.rollback,
            "device": self.device,
            "purpose": self.purpose,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode(
            "ascii"
        )

    @classmethod
    def from_payload(cls, data: bytes) -> Manifest:
        """Parse payload bytes; anything off raises ``ManifestError("malformed", ...)``."""
        body = _parse_json(data)
        if body.get("format") != FORMAT:
            raise _malformed(f"format is {body.get('format')!r}, this agent reads {FORMAT!r}")
        missing, extra = set(_FIELDS) - body.keys(), body.keys() - set(_FIELDS)
        if missing or extra:
            raise _malformed(_field_problem("manifest", missing, extra))
        for name in ("issued_at", "expires_at"):
            if isinstance(body[name], bool) or not isinstance(body[name], (int, float)):
                raise _malformed(f"{name} must be a number, got {body[name]!r}")
        return cls(
            deployment_id=body["deployment_id"],
            model=body["model"],
            device_class=body["device_class"],
            issued_at=float(body["issued_at"]),
            expires_at=float(body["expires_at"]),
            spec=_parse_spec(body["spec"]),
            rollback=body["rollback"],
            device=body["device"],
            purpose=body["purpose"],
        )


def _parse_json(data: bytes) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}")
        return dict(pairs)

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number")

    if not isinstance(data, (bytes, bytearray)):
        raise _malformed(f"payload must be bytes, got {type(data).__name__}")
    try:
        body = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _malformed(f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _malformed(f"expected a JSON object, got {type(body).__name__}")
    return body


def _field_problem(what: str, missing: set[str], extra: set[str]) -> str:
    parts = []
    if missing:
        parts.append(f"missing {', '.join(sorted(missing))}")
    if extra:
        parts.append(f"unexpected {', '.join(sorted(extra))}")
    return f"{what} fields: {'; '.join(parts)}"


def _parse_spec(data: object) -> ModelSpec | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise _malformed(f"spec must be an object or null, got {type(data).__name__}")
    # Unknown fields are refused rather than dropped: signed content we would ignore is a trap.
    missing, extra = {"model", "version", "precision", "onnx", "preprocess"} - data.keys(), data.keys() - _SPEC_FIELDS
    if missing or extra:
        raise _malformed(_field_problem("spec", missing, extra))
    if isinstance(data["version"], bool) or not isinstance(data["version"], int):
        raise _malformed(f"spec version must be an integer, got {data['version']!r}")
    try:
        return ModelSpec.from_dict(data)
    except (JetfleetError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _malformed(f"bad spec: {exc}") from exc


@dataclass(frozen=True)
class SignedManifest:
    """Payload bytes as signed, the Ed25519 signature over them, and the signing key's id."""

    payload: bytes
    signature: bytes
    key_id: str


def sign(manifest: Manifest, key: ed25519.Ed25519PrivateKey) -> SignedManifest:
    payload = manifest.to_payload()
    return SignedManifest(payload=payload, signature=key.sign(payload), key_id=key_id(key.public_key()))


def issue(
    key: ed25519.Ed25519PrivateKey,
    deployment_id: str,
    spec: ModelSpec | None,
    model: str,
    device_class: str,
    *,
    ttl_s: float = 3600.0,
    rollback: bool = False,
    now: float | None = None,
    device: str = "",
    purpose: str = "deploy",
) -> SignedManifest:
    """Build and sign a manifest for ``device`` valid from ``now`` for ``ttl_s`` seconds."""
    issued_at = time.time() if now is None else now
    manifest = Manifest(
        deployment_id=deployment_id,
        model=model,
        device_class=device_class,
        issued_at=issued_at,
        expires_at=issued_at + ttl_s,
        spec=spec,
        rollback=rollback,
        device=device,
        purpose=purpose,
    )
    return sign(manifest, key)


def verify(
    signed: SignedManifest | None,
    public_key: ed25519.Ed25519PublicKey,
    *,
    device_class: str,
    accepted_version: int | None,
    now: float | None = None,
    skew_s: float = 300.0,
    device: str | None = None,
) -> Manifest:
    """The manifest, if ``public_key`` signed it and it applies to this device now; else :class:`ManifestError`.

    Checks, in order: signed at all, by the trusted key id, signature valid
    over the exact payload bytes, payload well-formed, inside its validity
    window, for this device (``device``, when given) and its class, and not a downgrade below
    ``accepted_version`` (the highest version this device accepted) unless
    it is a signed rollback.
    """
    manifest = Manifest.from_payload(_verified_payload(signed, public_key))  # parse only signed bytes
    _check_time(manifest, time.time() if now is None else now, skew_s)
    if device is not None and manifest.device != device:
        raise ManifestError(
            "wrong-device",
            f"manifest for {manifest.description} was signed for device {manifest.device or '(none)'}, "
            f"this is {device}",
        )
    _check_target(manifest, device_class, accepted_version)
    return manifest


def _verified_payload(signed: SignedManifest | None, public_key: ed25519.Ed25519PublicKey) -> bytes:
    """The payload bytes, once they are known to be signed by ``public_key``."""
    if signed is None or not signed.signature:
        raise ManifestError(
            "unsigned",
            "the deployment carries no signed manifest",
            hint="deploy through a controller configured with a manifest signing key",
        )
    trusted = key_id(public_key)
    if signed.key_id != trusted:
        raise ManifestError(
            "unknown-key",
            f"manifest signed by key {signed.key_id or '(none)'}, this device trusts {trusted}",
            hint="install the controller's manifest public key on the device, or sign with the trusted key",
        )
    payload = bytes(signed.payload)
    try:
        public_key.verify(bytes(signed.signature), payload)
    except InvalidSignature:
        raise ManifestError(
            "bad-signature",
            f"manifest signature does not verify with trusted key {trusted}: "
            "the payload was changed after signing, or another key signed it",
        ) from None
    return payload


def _check_time(manifest: Manifest, now: float, skew_s: float) -> None:
    what = f"manifest for {manifest.description} (deployment {manifest.deployment_id})"
    if now > manifest.expires_at:
        raise ManifestError(
            "expired",
            f"{what} expired at {_when(manifest.expires_at)}, {_duration(now - manifest.expires_at)} ago",
            hint="redeploy to get a fresh manifest, or check the device clock",
        )
    if manifest.issued_at > now + skew_s:
        raise ManifestError(
            "not-yet-valid",
            f"{what} is issued at {_when(manifest.issued_at)}, {_duration(manifest.issued_at - now)} ahead of "
            f"this device's clock (allowed skew {skew_s:.0f} s)",
            hint="check the device clock (NTP)",
        )


def _check_target(manifest: Manifest, device_class: str, accepted_version: int | None) -> None:
    if manifest.device_class != device_class:
        raise ManifestError(
            "wrong-device-class",
            f"manifest for {manifest.description} targets device class {manifest.device_class}, "
            f"this device is {device_class}",
        )
    version = manifest.version
    if not manifest.rollback and version is not None and accepted_version is not None and version < accepted_version:
        raise ManifestError(
            "downgrade",
            f"{manifest.model} v{version} is older than v{accepted_version} already accepted on this device; "
            "a downgrade needs a signed rollback",
        )
