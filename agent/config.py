"""The agent's settings: one frozen dataclass, read from TOML and the command line.

Precedence is defaults < TOML file < command-line options. Every value is
validated when an :class:`AgentConfig` is built (also when code builds one
directly), and a bad value raises :class:`JetfleetError` naming where it came
from (file and key, or option), the value and what was expected. Unknown keys
in the file are errors, never ignored: a misspelt ``max_store_byte`` must not
silently leave the store unbounded.

TOML layout (``/etc/jetfleet/agent.toml`` when installed as a service; every
key is optional)::

    name = "jetson-01"                  # DNS label; default: the hostname
    listen = "0.0.0.0:50051"            # host:port, or "[::]:50051"
    advertise = "jetson-01.lab:50051"   # absent = hostname + listen port
    controller = "workstation:50050"    # absent = standalone, no registration
    data_dir = "/var/lib/jetfleet-agent"
    backends = ["tensorrt", "onnxruntime"]
    heartbeat_interval_s = 10.0
    max_backoff_s = 60.0
    smoke_margin = 1.0
    log_level = "info"

    [limits]                            # resources the agent may use
    max_store_bytes = "8GiB"            # sizes: bytes, or "512MiB", "1.5GB", ...
    min_free_bytes = "512MiB"
    max_message_bytes = "8MiB"
    job_threads = 0
    workspace_fraction = 0.5

    [tags]                              # free-form labels for device selection
    site = "lab"
    board = "orin"

Command-line overrides use the flat field names (``max_store_bytes``, not
``limits.max_store_bytes``); ``tags`` from the command line (``--tag k=v``,
repeated) are merged over the file's tags rather than replacing them, so one
device can add a label without restating the rest.

TOML has no null, so :func:`to_toml` writes an unset ``advertise`` or
``controller`` as a commented-out example line, and it always writes
``data_dir`` and ``name`` explicitly: their defaults depend on who runs the
agent and where, and an installed service must not change its store when its
user or hostname does.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from jetfleet.common.errors import JetfleetError

if sys.version_info >= (3, 11):
    import tomllib
else:  # JetPack 5 and 6 (Python 3.8, 3.10): the same parser, published as tomli
    import tomli as tomllib

DEFAULT_CONFIG_PATH = Path("/etc/jetfleet/agent.toml")
SYSTEM_DATA_DIR = Path("/var/lib/jetfleet-agent")
BACKENDS = ("tensorrt", "onnxruntime")
LOG_LEVELS = ("debug", "info", "warning", "error")
# Keys that live in the file's [limits] table; everywhere else they are plain field names.
LIMIT_KEYS = ("max_store_bytes", "min_free_bytes", "max_message_bytes", "job_threads", "workspace_fraction")

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": KiB,
    "mib": MiB,
    "gib": GiB,
    "tib": TiB,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
# RFC 1123 label: what a hostname part, a Kubernetes name and a DNS record all accept.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Tag keys and values may also hold '.' and '_' ("jp6.0", "orin_nx"), still lowercase so selectors match exactly.
_TAG = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# gRPC cannot carry messages of 2 GiB or more; transfer chunks are up to 1 MiB plus framing.
_MIN_MESSAGE_BYTES, _MAX_MESSAGE_BYTES = 2 * MiB, 2 * GiB - 1


class _Invalid(ValueError):
    """A value failed validation; the text says what was expected. Callers add where it came from."""


# ---------------------------------------------------------------------------- defaults


def default_name() -> str:
    """This machine's hostname as a DNS label, so a fresh device needs no configuration to be told apart.

    Only the first part of a dotted hostname is kept, lowercased, with anything
    else turned into '-', because hostnames in the wild (``Jetson_Orin.local``)
    are looser than the label we promise the controller.
    """
    first = socket.gethostname().split(".")[0].lower()
    slug = re.sub(r"[^a-z0-9-]+", "-", first).strip("-")[:63].strip("-")
    return slug or "jetfleet-agent"


def default_data_dir() -> Path:
    """Where the agent keeps artifacts and engines when ``data_dir`` is not set.

    A system service (root, or systemd's ``StateDirectory=``) uses
    /var/lib/jetfleet-agent; a user running the agent by hand gets the XDG data
    directory, computed here rather than with platformdirs to keep the agent's
    dependencies to what a Jetson image has.
    """
    if os.geteuid() == 0:
        return SYSTEM_DATA_DIR
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says to ignore a relative XDG_DATA_HOME.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "jetfleet-agent"


# ---------------------------------------------------------------------------- sizes


def parse_size(value: int | str) -> int:
    """Bytes from an integer or a string such as ``"8GiB"``, ``"512MiB"``, ``"1.5GB"`` or ``"4096"``.

    KB/MB/GB/TB are powers of 1000 and KiB/MiB/GiB/TiB powers of 1024 (units
    are case-insensitive); a fractional result is rounded down, because a limit
    off by part of a byte does not matter. Raises ``ValueError`` with the
    accepted forms.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _Invalid(f"a size: a whole number of bytes or a string like '8GiB'; got a {type(value).__name__}")
    if isinstance(value, int):
        if value < 0:
            raise _Invalid("a size of at least 0 bytes")
        return value
    match = _SIZE.fullmatch(value)
    unit = match.group(2).lower() if match else ""
    if not match or (unit and unit not in _UNITS):
        units = ", ".join(u for u in ("B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"))
        raise _Invalid(f"a size like '8GiB', '512MiB', '1.5GB' or '4096' (units: {units})")
    from decimal import Decimal, InvalidOperation  # here: ~0.4 MiB an agent whose config has no sizes never pays

    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise _Invalid("a size like '8GiB'") from exc
    return int(number * _UNITS[unit or "b"])


def format_size(num_bytes: int) -> str:
    """The shortest exact spelling of a size (``8GiB``, ``1000000``) that :func:`parse_size` reads back."""
    for name, factor in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if num_bytes and num_bytes % factor == 0:
            return f"{num_bytes // factor}{name}"
    return str(num_bytes)


# ---------------------------------------------------------------------------- field validators


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"a string, not a {type(value).__name__}")
    return value


def _check_name(value: object) -> str:
    name = _string(value)
    if not _LABEL.fullmatch(name):
        raise _Invalid("1-63 lowercase letters, digits and '-', not starting or ending with '-' (a DNS label)")
    return name


def split_address(address: str, allow_any_port: bool = False) -> tuple[str, int]:
    """``(host, port)`` from ``host:port`` or ``[ipv6]:port``; raises ``ValueError`` saying what was expected."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", address)
    if not match:
        raise _Invalid("host:port, e.g. '0.0.0.0:50051', 'jetson-01.lab:50051' or '[::]:50051'")
    host, port_text = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    port = int(port_text)
    if not (0 if allow_any_port else 1) <= port <= 65535:
        raise _Invalid(f"a port between {0 if allow_any_port else 1} and 65535, not {port}")
    if match.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise _Invalid(f"an IPv6 address inside [...], not {host!r}") from exc
    elif not _HOSTNAME.fullmatch(host):
        raise _Invalid(f"a hostname or IPv4 address before ':', not {host!r}")
    return host, port


def _check_address(value: object) -> str:
    address = _string(value).strip()
    split_address(address)
    return address


def _check_listen(value: object) -> str:
    """Like any address, but port 0 is allowed: "any free port" (the agent logs and reports the one it got)."""
    address = _string(value).strip()
    split_address(address, allow_any_port=True)
    return address


def _check_optional_address(value: object) -> str | None:
    return None if value is None else _check_address(value)


def _check_data_dir(value: object) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise _Invalid(f"a path, not a {type(value).__name__}")
    path = Path(value).expanduser()
    # The service runs with cwd=/, so a relative path would mean something else there than here.
    if not path.is_absolute():
        raise _Invalid("an absolute path (or one starting with '~')")
    return path


def parse_tags(items: Iterable[str]) -> dict[str, str]:
    """``{"site": "lab"}`` from ``["site=lab"]``: the repeated ``--tag key=value`` option."""
    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise _Invalid(f"tags as key=value, not {item!r}")
        tags[key.strip()] = value.strip()
    return tags


def _check_tag(key: object, value: object) -> None:
    """Tag keys and values are slugs, so ``--devices site=lab`` matches exactly what the device declared."""
    for what, text in (("key", key), ("value", value)):
        if not isinstance(text, str) or not _TAG.fullmatch(text):
            raise _Invalid(
                f"tag {what} {text!r} to be 1-63 lowercase letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit"
            )


def _check_tags(value: object) -> dict[str, str]:
    if isinstance(value, str) or not isinstance(value, (Mapping, Iterable)):
        raise _Invalid("a table of tags (in TOML) or key=value items (on the command line)")
    tags = dict(value) if isinstance(value, Mapping) else parse_tags(value)
    for key, tag in tags.items():
        _check_tag(key, tag)
    return tags


def _check_backends(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise _Invalid(f"a list of backend names from {list(BACKENDS)}")
    backends = tuple(value)
    if not backends:
        raise _Invalid(f"at least one backend from {list(BACKENDS)}")
    for name in backends:
        if name not in BACKENDS:
            raise _Invalid(f"backend names from {list(BACKENDS)}; {name!r} is not one")
    if len(set(backends)) != len(backends):
        raise _Invalid("each backend at most once (the list is a preference order)")
    return backends


def _number(value: object, kind: type[int] | type[float]) -> int | float:
    """An int or float from a number or a numeric string (command-line options may arrive as text)."""
    if isinstance(value, bool):
        raise _Invalid(f"a number, not {value}")
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except ValueError as exc:
            raise _Invalid(f"a {'whole ' if kind is int else ''}number") from exc
    if kind is int and not isinstance(value, int):
        raise _Invalid("a whole number")
    if not isinstance(value, (int, float)):
        raise _Invalid(f"a number, not a {type(value).__name__}")
    if not math.isfinite(value):
        raise _Invalid("a finite number")
    return kind(value)


def _float_check(low: float, high: float, *, low_open: bool) -> Callable[[object], float]:
    """A validator for floats in ``(low, high]`` (``low_open``) or ``[low, high]``."""

    def check(value: object) -> float:
        number = float(_number(value, float))
        too_low = number <= low if low_open else number < low
        if too_low or number > high:
            bracket = "(" if low_open else "["
            raise _Invalid(f"a number in {bracket}{low:g}, {high:g}]")
        return number

    return check


def _size_check(minimum: int, maximum: int | None = None) -> Callable[[object], int]:
    def check(value: object) -> int:
        size = parse_size(value)  # type: ignore[arg-type]  # it rejects other types itself
        if size < minimum or (maximum is not None and size > maximum):
            upper = f" and at most {format_size(maximum)}" if maximum is not None else ""
            raise _Invalid(f"a size of at least {format_size(minimum)}{upper}")
        return size

    return check


def _check_job_threads(value: object) -> int:
    threads = int(_number(value, int))
    if not 0 <= threads <= 1024:
        raise _Invalid("a thread count between 0 (the backend decides) and 1024")
    return threads


def _check_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def _check_log_level(value: object) -> str:
    level = _string(value).strip().lower()
    if level not in LOG_LEVELS:
        raise _Invalid(f"one of {list(LOG_LEVELS)}")
    return level


# One validator per field: it accepts what the file or the command line gives and returns the field's type.
_VALIDATORS: dict[str, Callable[[object], object]] = {
    "name": _check_name,
    "listen": _check_listen,
    "advertise": _check_optional_address,
    "controller": _check_optional_address,
    "data_dir": _check_data_dir,
    "tags": _check_tags,
    "backends": _check_backends,
    "heartbeat_interval_s": _float_check(0.0, 3600.0, low_open=True),
    "max_backoff_s": _float_check(0.0, 86400.0, low_open=True),
    "max_store_bytes": _size_check(1),
    "min_free_bytes": _size_check(0),
    "max_message_bytes": _size_check(_MIN_MESSAGE_BYTES, _MAX_MESSAGE_BYTES),
    "job_threads": _check_job_threads,
    "workspace_fraction": _float_check(0.0, 1.0, low_open=True),
    "smoke_margin": _float_check(0.0, 100.0, low_open=False),
    "log_level": _check_log_level,
    "insecure": _check_bool,
}


def _validate(key: str, value: object, where: str, table: str | None = None) -> object:
    """Run ``key``'s validator; turn its complaint into an error naming ``where``, the key and the value."""
    try:
        return _VALIDATORS[key](value)
    except _Invalid as exc:
        shown = str(value) if isinstance(value, os.PathLike) else repr(value)
        label = f"[{table}] {key}" if table else key
        raise JetfleetError(f"{where}: {label} = {shown} is invalid: expected {exc}") from None


# ---------------------------------------------------------------------------- the settings


@dataclass(frozen=True)
class AgentConfig:
    """Everything one agent process needs to know, validated and normalized on construction."""

    # The hostname, because a device should be identifiable without any configuration.
    name: str = field(default_factory=default_name)
    # All interfaces on gRPC's customary port: the controller dials in from another machine.
    listen: str = "0.0.0.0:50051"
    # None: hostname + listen port, right unless NAT or a proxy sits between controller and device.
    advertise: str | None = None
    # None: standalone (no registration), so an agent can be tried without a controller.
    controller: str | None = None
    # /var/lib/jetfleet-agent for the service, the XDG data dir for a user; see default_data_dir.
    data_dir: Path = field(default_factory=default_data_dir)
    # No labels: tags are the operator's vocabulary, we cannot guess it.
    tags: dict[str, str] = field(default_factory=dict)
    # TensorRT first because it is fastest on a Jetson; ONNX Runtime runs wherever TensorRT is absent.
    backends: tuple[str, ...] = BACKENDS
    # 10 s: the controller notices a dead device within ~3 beats without flooding it from thousands.
    heartbeat_interval_s: float = 10.0
    # 60 s: a restarted controller is found again within a minute, yet a fleet does not hammer it.
    max_backoff_s: float = 60.0
    # 8 GiB: room for a few models and their engines on a 32-64 GB eMMC/NVMe without filling it.
    max_store_bytes: int = 8 * GiB
    # 512 MiB: logs, journald and the OS must keep working after we accept an upload.
    min_free_bytes: int = 512 * MiB
    # 8 MiB: fits 1 MiB transfer chunks and job batches with margin, bounds memory per request.
    max_message_bytes: int = 8 * MiB
    # 0: the backend picks (ONNX Runtime uses the cores; TensorRT runs on the GPU anyway).
    job_threads: int = 0
    # Half of memory: Jetson shares RAM between CPU and GPU, the OS and the old engine need the rest.
    workspace_fraction: float = 0.5
    # 1 point: TensorRT FP16/INT8 may lose a little accuracy; more than that means a broken build.
    smoke_margin: float = 1.0
    # info: what an operator reads in journalctl; debug is for chasing a problem.
    log_level: str = "info"
    # False: mutual TLS and signed manifests; plaintext only when someone asks for it (local development).
    insecure: bool = False

    def __post_init__(self) -> None:
        """Validate every field (so no invalid config exists) and normalize types (list → tuple, str → Path)."""
        for f in fields(self):
            object.__setattr__(self, f.name, _validate(f.name, getattr(self, f.name), "AgentConfig"))

    @property
    def listen_port(self) -> int:
        """The port the gRPC server binds."""
        return split_address(self.listen)[1]

    @property
    def advertise_address(self) -> str:
        """The address the controller should dial: ``advertise``, or this host's name with the listen port."""
        return self.advertise or f"{socket.gethostname()}:{self.listen_port}"


FIELD_NAMES = tuple(f.name for f in fields(AgentConfig))
_TOP_LEVEL_KEYS = tuple(name for name in FIELD_NAMES if name not in LIMIT_KEYS and name != "tags")


# ---------------------------------------------------------------------------- loading


def load_config(path: Path | None = None, overrides: Mapping[str, object] | None = None) -> AgentConfig:
    """The agent's settings: defaults, then the TOML file at ``path`` (if given), then ``overrides``.

    ``overrides`` maps field names to command-line values; ``None`` (and an
    empty ``tags``/``backends`` sequence, what click gives for a repeated
    option that was not used) means "not given". A file given explicitly
    must exist.
    """
    values: dict[str, object] = _read_file(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        if key not in FIELD_NAMES:
            raise ValueError(f"unknown override {key!r}; valid: {', '.join(FIELD_NAMES)}")
        if value is None or (key in ("tags", "backends") and not isinstance(value, str) and not value):
            continue
        option = "--tag" if key == "tags" else f"--{key.replace('_', '-')}"
        checked = _validate(key, value, f"command line ({option})")
        values[key] = {**values.get("tags", {}), **checked} if key == "tags" else checked  # type: ignore[dict-item]
    return AgentConfig(**values)  # type: ignore[arg-type]


def _read_file(path: Path) -> dict[str, object]:
    """Validated field values from a TOML file, every error naming the file and the key."""
    document = _parse_toml(path)
    values: dict[str, object] = {}
    for key, value in document.items():
        if key == "limits":
            values.update(_read_limits(path, value))
        elif key == "tags":
            values["tags"] = _read_tags(path, value)
        elif key in _TOP_LEVEL_KEYS:
            values[key] = _validate(key, value, str(path))
        else:
            raise _unknown_key(path, key)
    return values


def _parse_toml(path: Path) -> dict[str, object]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise JetfleetError(f"config file {path} does not exist", hint="check the --config path") from None
    except tomllib.TOMLDecodeError as exc:
        raise JetfleetError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise JetfleetError(f"cannot read config file {path}: {exc.strerror or exc}") from None


def _unknown_key(path: Path, key: str, table: str | None = None) -> JetfleetError:
    """The error for a key we do not know, listing the valid ones (a typo must not pass silently)."""
    if table == "limits":
        valid = ", ".join(LIMIT_KEYS)
        return JetfleetError(f"{path}: unknown key {key!r} in [limits]; valid keys there: {valid}")
    if key in LIMIT_KEYS:
        return JetfleetError(f"{path}: key {key!r} belongs in the [limits] table", hint="move it under [limits]")
    valid = ", ".join(_TOP_LEVEL_KEYS)
    return JetfleetError(
        f"{path}: unknown key {key!r}; valid top-level keys: {valid}; tables: [limits] ({', '.join(LIMIT_KEYS)}), [tags]"
    )


def _read_limits(path: Path, table: object) -> dict[str, object]:
    if not isinstance(table, dict):
        raise JetfleetError(f"{path}: limits must be a table ([limits]), not {table!r}")
    values: dict[str, object] = {}
    for key, value in table.items():
        if key not in LIMIT_KEYS:
            raise _unknown_key(path, key, table="limits")
        values[key] = _validate(key, value, str(path), table="limits")
    return values


def _read_tags(path: Path, table: object) -> dict[str, str]:
    if not isinstance(table, dict):
        raise JetfleetError(f'{path}: tags must be a table ([tags] with key = "value" lines), not {table!r}')
    for key, value in table.items():
        try:
            _check_tag(key, value)
        except _Invalid as exc:
            raise JetfleetError(f"{path}: [tags] {key} = {value!r} is invalid: expected {exc}") from None
    return dict(table)


# ---------------------------------------------------------------------------- writing


_COMMENTS = {
    "name": "This device's name in the fleet: lowercase letters, digits and '-' (default: the hostname).",
    "listen": "Where the gRPC server listens: host:port, '[::]:port' for IPv6.",
    "advertise": "The address the controller dials (default: this hostname and the listen port).",
    "controller": "The controller to register with, host:port; leave unset to run standalone.",
    "data_dir": "Artifacts, engines and state live here.",
    "backends": f"Engine backends in order of preference; choose from {list(BACKENDS)}.",
    "heartbeat_interval_s": "Seconds between heartbeats to the controller.",
    "max_backoff_s": "Longest wait, in seconds, between retries when the controller is unreachable.",
    "smoke_margin": "Percentage points the smoke-test accuracy may fall below the registry's figure.",
    "log_level": f"One of {list(LOG_LEVELS)}.",
    "insecure": "Plaintext gRPC and unsigned manifests, for local development only (default: mutual TLS).",
    "max_store_bytes": "Cap on the artifact store plus the engine cache (bytes, or '8GiB', '1.5GB', ...).",
    "min_free_bytes": "Free disk space that must remain after accepting an upload.",
    "max_message_bytes": "Largest gRPC message the agent accepts.",
    "job_threads": "Threads per job; 0 lets the backend decide.",
    "workspace_fraction": "Fraction of device memory TensorRT may use as builder workspace (0 < x <= 1).",
}


def to_toml(config: AgentConfig) -> str:
    """A commented TOML file that :func:`load_config` reads back to a config equal to ``config``."""
    lines = [
        "# jetfleet-agent configuration. Every key is optional; command-line options override it.",
        "# Sizes are bytes or strings such as '8GiB', '512MiB', '1.5GB'.",
        "",
    ]
    for key in _TOP_LEVEL_KEYS:
        lines += [f"# {_COMMENTS[key]}", _toml_line(key, getattr(config, key)), ""]
    lines += ["[limits]", ""]
    for key in LIMIT_KEYS:
        lines += [f"# {_COMMENTS[key]}", _toml_line(key, getattr(config, key)), ""]
    lines += ["# Labels the controller selects devices by (--devices site=lab).", "[tags]"]
    lines += [f"{_toml_key(key)} = {_toml_string(value)}" for key, value in sorted(config.tags.items())]
    return "\n".join(lines) + "\n"


def _toml_line(key: str, value: object) -> str:
    """``key = value``; an unset optional value becomes a commented-out example, since TOML has no null."""
    if value is None:
        example = {"advertise": "jetson-01.lab:50051", "controller": "controller.lab:50050"}[key]
        return f"# {key} = {_toml_string(example)}"
    if key in ("max_store_bytes", "min_free_bytes", "max_message_bytes"):
        return f"{key} = {_toml_string(format_size(value))}"  # type: ignore[arg-type]
    return f"{key} = {_toml_value(value)}"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # repr is exact for floats and valid TOML ("10.0", "1e-05")
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return _toml_string(str(value))


def _toml_string(text: str) -> str:
    """A TOML basic string; control characters escaped as TOML requires."""
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    """A bare key where TOML allows one; quoted otherwise (a '.' would make it a dotted key)."""
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)
