from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from jetfleet.agent import config as config_mod
from jetfleet.agent.config import (
    AgentConfig,
    default_data_dir,
    default_name,
    format_size,
    load_config,
    parse_size,
    to_toml,
)
from jetfleet.common.errors import JetfleetError

if sys.version_info >= (3, 11):
    import tomllib
else:  # these tests also run on JetPack 5's Python 3.8 (scripts/test-old-python.sh)
    import tomli as tomllib


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- defaults


def test_every_default_has_a_reason_comment() -> None:
    source = Path(config_mod.__file__).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(source) if line.startswith("class AgentConfig"))
    for f in dataclasses.fields(AgentConfig):
        line_no = next(i for i in range(start, len(source)) if source[i].strip().startswith(f"{f.name}:"))
        assert source[line_no - 1].strip().startswith("#"), f"{f.name} has no comment"


def test_defaults_are_valid_and_documented_values() -> None:
    config = AgentConfig()
    assert config.listen == "0.0.0.0:50051" and config.listen_port == 50051
    assert config.advertise is None and config.controller is None
    assert config.backends == ("tensorrt", "onnxruntime")
    assert config.max_store_bytes == 8 * 1024**3 and config.min_free_bytes == 512 * 1024**2
    assert config.max_message_bytes == 8 * 1024**2 and config.job_threads == 0
    assert config.workspace_fraction == 0.5 and config.smoke_margin == 1.0 and config.log_level == "info"
    assert config.tags == {}


def test_default_name_is_a_dns_label_from_the_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_mod.socket, "gethostname", lambda: "Jetson_Orin-01.lab.local")
    assert default_name() == "jetson-orin-01"
    monkeypatch.setattr(config_mod.socket, "gethostname", lambda: "___")
    assert default_name() == "jetfleet-agent"


def test_default_data_dir_root_vs_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(config_mod.os, "geteuid", lambda: 0)
    assert default_data_dir() == Path("/var/lib/jetfleet-agent")
    monkeypatch.setattr(config_mod.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "jetfleet-agent"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".local" / "share" / "jetfleet-agent"


def test_advertise_address_derived_from_hostname_and_listen_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_mod.socket, "gethostname", lambda: "orin7")
    assert AgentConfig(name="x", listen="[::]:6000").advertise_address == "orin7:6000"
    assert AgentConfig(name="x", advertise="10.0.0.7:7000").advertise_address == "10.0.0.7:7000"


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        AgentConfig().name = "other"  # type: ignore[misc]


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (4096, 4096),
        ("4096", 4096),
        ("8GiB", 8 * 1024**3),
        ("512MiB", 512 * 1024**2),
        ("1.5GB", 1_500_000_000),
        ("10 kb", 10_000),
        ("1.1MiB", int(1.1 * 1024**2)),
        ("0", 0),
    ],
)
def test_parse_size(text: int | str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["8 GX", "GiB", "-1", "1e9", "", True, 1.5, -3])
def test_parse_size_rejects_with_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, 1, 1000, 1024, 8 * 1024**3, 3 * 1024**4, 1_500_000_000])
def test_format_size_round_trips(n: int) -> None:
    assert parse_size(format_size(n)) == n


# ---------------------------------------------------------------- loading


def test_load_file_with_every_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name = "jetson-01"
listen = "[::]:50051"
advertise = "jetson-01.lab:50051"
controller = "ws.lab:50050"
data_dir = "/srv/jetfleet"
backends = ["onnxruntime"]
heartbeat_interval_s = 5
max_backoff_s = 30.5
smoke_margin = 2
log_level = "DEBUG"

[limits]
max_store_bytes = "2GiB"
min_free_bytes = 1048576
max_message_bytes = "16MiB"
job_threads = 4
workspace_fraction = 0.25

[tags]
site = "lab"
board = "orin"
"jp6.0" = "yes"
""",
    )
    config = load_config(path, {})
    assert config == AgentConfig(
        name="jetson-01",
        listen="[::]:50051",
        advertise="jetson-01.lab:50051",
        controller="ws.lab:50050",
        data_dir=Path("/srv/jetfleet"),
        tags={"site": "lab", "board": "orin", "jp6.0": "yes"},
        backends=("onnxruntime",),
        heartbeat_interval_s=5.0,
        max_backoff_s=30.5,
        max_store_bytes=2 * 1024**3,
        min_free_bytes=1024**2,
        max_message_bytes=16 * 1024**2,
        job_threads=4,
        workspace_fraction=0.25,
        smoke_margin=2.0,
        log_level="debug",
    )
    assert isinstance(config.heartbeat_interval_s, float) and isinstance(config.data_dir, Path)


def test_no_file_gives_defaults() -> None:
    assert load_config(None, {}) == AgentConfig()


def test_overrides_win_none_means_not_given_and_tags_merge(tmp_path: Path) -> None:
    path = write(tmp_path, 'listen = "0.0.0.0:6000"\nlog_level = "warning"\n[tags]\nsite = "lab"\nboard = "nano"\n')
    config = load_config(
        path,
        {"listen": None, "log_level": "error", "tags": ("board=orin", "row=3"), "backends": (), "controller": None},
    )
    assert config.listen == "0.0.0.0:6000"  # None: not given on the command line
    assert config.log_level == "error"
    assert config.tags == {"site": "lab", "board": "orin", "row": "3"}
    assert config.backends == ("tensorrt", "onnxruntime")  # an unused repeated option arrives as ()


def test_override_values_as_command_line_text() -> None:
    config = load_config(
        None,
        {"max_store_bytes": "1.5GB", "heartbeat_interval_s": "2.5", "job_threads": "2", "backends": "onnxruntime"},
    )
    assert config.max_store_bytes == 1_500_000_000 and config.heartbeat_interval_s == 2.5
    assert config.job_threads == 2 and config.backends == ("onnxruntime",)


def test_bad_override_names_the_option() -> None:
    with pytest.raises(JetfleetError, match=r"command line \(--listen\): listen = 'nohost' .*host:port"):
        load_config(None, {"listen": "nohost"})
    with pytest.raises(JetfleetError, match=r"--tag.*key=value"):
        load_config(None, {"tags": ["site"]})


def test_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown override 'lisen'"):
        load_config(None, {"lisen": "x"})


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(JetfleetError, match=f"{missing} does not exist"):
        load_config(missing, {})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name = \n")
    with pytest.raises(JetfleetError, match=f"{path} is not valid TOML"):
        load_config(path, {})


def test_unknown_key_is_named_with_the_valid_keys(tmp_path: Path) -> None:
    path = write(tmp_path, 'nmae = "x"\n')
    with pytest.raises(JetfleetError) as excinfo:
        load_config(path, {})
    message = str(excinfo.value)
    assert str(path) in message and "'nmae'" in message
    assert "name, listen, advertise, controller" in message and "[limits]" in message and "[tags]" in message


def test_unknown_key_in_limits_lists_the_limit_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nmax_store_byte = 1\n")
    with pytest.raises(JetfleetError, match=r"unknown key 'max_store_byte' in \[limits\].*max_store_bytes"):
        load_config(path, {})


def test_limit_key_at_top_level_says_where_it_belongs(tmp_path: Path) -> None:
    path = write(tmp_path, 'max_store_bytes = "1GiB"\n')
    with pytest.raises(JetfleetError, match=r"belongs in the \[limits\] table"):
        load_config(path, {})


def test_unknown_table_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "[limit]\njob_threads = 1\n")
    with pytest.raises(JetfleetError, match="unknown key 'limit'"):
        load_config(path, {})


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ('name = "Jetson 01"', r"name = 'Jetson 01' is invalid: expected 1-63 lowercase"),
        ('name = "-x"', "DNS label"),
        (f'name = "{"a" * 64}"', "1-63"),
        ("name = 3", "a string"),
        ('listen = "0.0.0.0:70000"', "port between 0 and 65535, not 70000"),
        ('controller = "ws:0"', "port between 1 and 65535, not 0"),
        ('listen = "0.0.0.0:65536"', "port between 0 and 65535"),
        ('listen = ":50051"', "host:port"),
        ('listen = "::1:50051"', "host:port"),
        ('listen = "[nothex]:50051"', "IPv6 address"),
        ('controller = "ws_lab!:1"', "hostname or IPv4"),
        ('data_dir = "relative/dir"', "absolute path"),
        ('backends = ["tensorrt", "openvino"]', "'openvino' is not one"),
        ('backends = ["tensorrt", "tensorrt"]', "at most once"),
        ("backends = []", "at least one backend"),
        ("heartbeat_interval_s = 0", r"in \(0, 3600\]"),
        ("heartbeat_interval_s = nan", "finite"),
        ("max_backoff_s = true", "a number"),
        ('max_backoff_s = "soon"', "a number"),
        ("smoke_margin = -1", r"in \[0, 100\]"),
        ('log_level = "verbose"', "one of"),
        ("[limits]\nmax_store_bytes = 0", "at least 1"),
        ('[limits]\nmax_store_bytes = "8 GX"', r"\[limits\] max_store_bytes = '8 GX' is invalid: expected a size"),
        ('[limits]\nmax_message_bytes = "1MiB"', "at least 2MiB"),
        ('[limits]\nmax_message_bytes = "2GiB"', "at most"),
        ("[limits]\njob_threads = -1", "between 0"),
        ("[limits]\njob_threads = 1.5", "whole number"),
        ("[limits]\nworkspace_fraction = 0", r"\(0, 1\]"),
        ("[limits]\nworkspace_fraction = 1.5", r"\(0, 1\]"),
        ('[tags]\nsite = "Lab"', r"\[tags\] site = 'Lab' is invalid: expected tag value 'Lab'"),
        ('[tags]\n"Site" = "lab"', "tag key 'Site'"),
        ("[tags]\nsite = 1", "tag value 1"),
        ('tags = "site=lab"', "tags must be a table"),
        ("limits = 3", "limits must be a table"),
    ],
)
def test_invalid_values_name_file_key_value_and_expectation(tmp_path: Path, toml: str, fragment: str) -> None:
    path = write(tmp_path, toml + "\n")
    with pytest.raises(JetfleetError, match=fragment) as excinfo:
        load_config(path, {})
    assert str(excinfo.value).startswith(str(path))


def test_direct_construction_validates_too() -> None:
    with pytest.raises(JetfleetError, match="AgentConfig: workspace_fraction = 2"):
        AgentConfig(workspace_fraction=2)
    config = AgentConfig(backends=["onnxruntime"], data_dir="/srv/x")  # type: ignore[arg-type]
    assert config.backends == ("onnxruntime",) and config.data_dir == Path("/srv/x")


def test_ipv6_and_names_accepted() -> None:
    for address in ("[::]:50051", "[fe80::1]:1", "127.0.0.1:65535", "jetson-01.lab.example:443", "localhost:1"):
        assert AgentConfig(listen=address).listen == address


# ---------------------------------------------------------------- writing


def test_round_trip_of_defaults(tmp_path: Path) -> None:
    config = AgentConfig()
    assert load_config(write(tmp_path, to_toml(config)), {}) == config


def test_round_trip_of_everything_set(tmp_path: Path) -> None:
    config = AgentConfig(
        name="orin-7",
        listen="[::]:6000",
        advertise="10.1.2.3:6000",
        controller="ws.lab:50050",
        data_dir=Path('/srv/jet fleet/"quoted"\\dir'),
        tags={"site": "lab", "jp6.0": "r36.3", "board_rev": "b-01"},
        backends=("onnxruntime", "tensorrt"),
        heartbeat_interval_s=0.1 + 0.2,  # not exactly representable in decimal: repr must round-trip
        max_backoff_s=1e-05,
        max_store_bytes=1_500_000_001,
        min_free_bytes=0,
        max_message_bytes=3 * 1024**2,
        job_threads=3,
        workspace_fraction=1.0,
        smoke_margin=0.0,
        log_level="debug",
    )
    text = to_toml(config)
    assert load_config(write(tmp_path, text), {}) == config
    document = tomllib.loads(text)
    assert set(document) >= {"limits", "tags"} and document["limits"]["max_message_bytes"] == "3MiB"


def test_toml_is_commented_and_unset_optionals_are_commented_out() -> None:
    text = to_toml(AgentConfig())
    assert "# advertise = " in text and "# controller = " in text
    assert "advertise" not in tomllib.loads(text) and "controller" not in tomllib.loads(text)
    for key in ("name", "listen", "data_dir", "backends", "log_level", "max_store_bytes", "job_threads"):
        line_index = next(i for i, line in enumerate(text.splitlines()) if line.startswith(f"{key} ="))
        assert text.splitlines()[line_index - 1].startswith("# "), key
