"""``jetfleet models ...``: the registry from the command line (every listing has ``--json``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

db_option = click.option(
    "--db", envvar="JETFLEET_DB", default=None, help="Registry database URL (default: SQLite under JETFLEET_HOME)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
data_root_option = click.option(
    "--data-root", type=click.Path(path_type=Path), default=Path("data"), show_default=True, help="Dataset root."
)
dataset_option = click.option(
    "--dataset", default=None, help="Score and calibrate on this dataset (default: the one it was trained on)."
)


def open_registry(db: str | None) -> Any:
    from jetfleet.controller.registry.store import Registry

    return Registry.open(db)


def _console() -> Console:
    return Console(soft_wrap=True)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _done(info: Any, as_json: bool, message: str) -> None:
    """A command's result: the version as JSON for scripts, or one line for people."""
    if as_json:
        _print_json(asdict(info))
    else:
        _console().print(message)


def _log(as_json: bool) -> Any:
    """Progress lines go to stderr when stdout carries JSON."""
    return Console(stderr=True, soft_wrap=True).print if as_json else _console().print


def _fmt(value: float | None, pattern: str, negate: bool = False) -> str:
    if value is None:
        return "-"
    return pattern.format(-value if negate else value)


@click.group("models")
def models() -> None:
    """List, inspect, alias, delete and garbage-collect registered models."""


@models.command("list")
@db_option
@json_option
def list_cmd(db: str | None, as_json: bool) -> None:
    """Every model with its version count, latest version and aliases."""
    rows = open_registry(db).list_models()
    if as_json:
        _print_json([asdict(r) for r in rows])
        return
    table = Table("model", "versions", "latest", "aliases", "description")
    for r in rows:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(r.aliases.items()))
        table.add_row(r.name, str(r.versions), str(r.latest or "-"), aliases, r.description)
    _console().print(table if rows else "the registry is empty: `jetfleet train` registers its result")


@models.command("show")
@click.argument("ref")
@db_option
@json_option
def show_cmd(ref: str, db: str | None, as_json: bool) -> None:
    """One version (NAME, NAME:VERSION or NAME@ALIAS): artifacts, hashes, metrics, lineage."""
    info = open_registry(db).get(ref)
    if as_json:
        _print_json(asdict(info))
        return
    console = _console()
    aliases = f"  aliases: {', '.join(info.aliases)}" if info.aliases else ""
    console.print(
        f"[bold]{info.ref}[/] ({info.architecture}, {info.status}, created {info.created_at:%Y-%m-%d %H:%M}){aliases}"
    )
    console.print(
        f"dataset {info.dataset} (fingerprint {info.dataset_fingerprint[:12] or '-'}), code {info.code_version}"
    )
    table = Table("artifact", "sha256", "size", "accuracy", "Δ vs fp32", "p50 ms", "p99 ms")
    for a in info.artifacts:
        ms = {m.name: m.value for m in info.metrics if m.artifact_kind == a.kind}
        table.add_row(
            a.kind,
            a.sha256[:16] + "…",
            f"{a.size:,}",
            _fmt(ms.get("accuracy"), "{:.2%}"),
            _fmt(ms.get("accuracy_drop"), "{:+.2%}", negate=True),
            _fmt(ms.get("latency_p50_ms"), "{:.3f}"),
            _fmt(ms.get("latency_p99_ms"), "{:.3f}"),
        )
    console.print(table)
    parity = {m.name: m.value for m in info.metrics if m.name.startswith("parity_")}
    if parity:
        console.print(
            f"ONNX vs torch: max abs diff {parity.get('parity_max_abs_diff', float('nan')):.2e}, "
            f"top-1 agreement {parity.get('parity_top1_agreement', float('nan')):.2%}"
        )


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int, required=False)
@click.option("--remove", is_flag=True, help="Delete the alias instead.")
@db_option
@json_option
def alias_cmd(name: str, alias: str, version: int | None, remove: bool, db: str | None, as_json: bool) -> None:
    """Point NAME@ALIAS (e.g. production) at VERSION, or --remove it."""
    from jetfleet.common.errors import JetfleetError

    registry = open_registry(db)
    if remove:
        registry.remove_alias(name, alias)
        if as_json:
            _print_json({"removed": f"{name}@{alias}"})
        else:
            _console().print(f"removed {name}@{alias}")
        return
    if version is None:
        raise JetfleetError("which version? e.g. `jetfleet models alias basic_cnn production 3`")
    info = registry.set_alias(name, alias, version)
    _done(info, as_json, f"{name}@{alias} → {info.ref}")


@models.command("delete")
@click.argument("ref")
@db_option
@json_option
def delete_cmd(ref: str, db: str | None, as_json: bool) -> None:
    """Delete one version; its blobs stay until `jetfleet models gc` (other versions may share them)."""
    info = open_registry(db).delete_version(ref)
    _done(info, as_json, f"deleted {info.ref}; run `jetfleet models gc` to free unreferenced blobs")


@models.command("gc")
@db_option
@json_option
def gc_cmd(db: str | None, as_json: bool) -> None:
    """Remove blobs that no registered artifact references."""
    removed = open_registry(db).gc()
    if as_json:
        _print_json({"removed": removed})
    else:
        _console().print(f"removed {len(removed)} unreferenced blob(s)")


@models.command("tag")
@click.argument("ref")
@click.argument("tags", nargs=-1, metavar="KEY=VALUE...")
@click.option("--status", default=None, help="Set the version's status, e.g. ready, archived, deprecated.")
@db_option
@json_option
def tag_cmd(ref: str, tags: tuple[str, ...], status: str | None, db: str | None, as_json: bool) -> None:
    """Add or change tags (KEY=VALUE; KEY= removes) and optionally the status of a version."""
    from jetfleet.common.errors import JetfleetError

    updates: dict[str, str | None] = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise JetfleetError(f"tags are KEY=VALUE, got {item!r}")
        updates[key] = value or None
    info = open_registry(db).update_version(ref, updates, status)
    _done(info, as_json, f"{info.ref}: status {info.status}, tags {info.tags}")


@models.command("export")
@click.argument("ref")
@data_root_option
@dataset_option
@click.option("--fp32-only", is_flag=True, help="Skip the FP16 and INT8 variants.")
@db_option
@json_option
def export_cmd(ref: str, data_root: Path, dataset: str | None, fp32_only: bool, db: str | None, as_json: bool) -> None:
    """Export REF's checkpoint to ONNX, then derive FP16 and INT8-QDQ variants (accuracy and latency measured)."""
    from jetfleet.controller.registry.optimize import export_version, optimize_version

    run = export_version if fp32_only else optimize_version
    info = run(open_registry(db), ref, data_root, dataset, log=_log(as_json))
    _done(info, as_json, f"{info.ref}: {', '.join(a.kind for a in info.artifacts)}")


@models.command("quantize")
@click.argument("ref")
@click.option("--precision", type=click.Choice(["fp16", "int8", "all"]), default="all", show_default=True)
@data_root_option
@dataset_option
@db_option
@json_option
def quantize_cmd(ref: str, precision: str, data_root: Path, dataset: str | None, db: str | None, as_json: bool) -> None:
    """FP16 / INT8-QDQ variants of REF's ONNX FP32 artifact (works for imported models with --dataset)."""
    from jetfleet.controller.registry.optimize import PRECISIONS, quantize_version

    precisions = PRECISIONS if precision == "all" else (precision,)
    info = quantize_version(open_registry(db), ref, precisions, data_root, dataset, log=_log(as_json))
    _done(info, as_json, f"{info.ref}: {', '.join(a.kind for a in info.artifacts)}")


def _floats(text: str, what: str) -> tuple[float, ...]:
    from jetfleet.common.errors import JetfleetError

    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise JetfleetError(f"--{what} must be comma-separated numbers, got {text!r}") from None


@models.command("import")
@click.argument("onnx_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name in the registry.")
@click.option("--input-size", type=click.IntRange(min=1), required=True, help="Square input size in pixels.")
@click.option("--channels", type=click.Choice(["1", "3"]), default="3", show_default=True)
@click.option("--mean", default="0.485,0.456,0.406", show_default=True, help="Per-channel mean of [0,1] pixels.")
@click.option("--std", default="0.229,0.224,0.225", show_default=True, help="Per-channel std of [0,1] pixels.")
@click.option("--labels", default=None, help="Comma-separated class names, in output order.")
@click.option(
    "--labels-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="One class name per line."
)
@click.option("--description", default="", help="Free text shown in `models list`.")
@db_option
@json_option
def import_cmd(onnx_file: Path, name: str, input_size: int, channels: str, mean: str, std: str, labels: str | None,
               labels_file: Path | None, description: str, db: str | None, as_json: bool) -> None:  # fmt: skip
    """Register an ONNX classifier trained elsewhere, with the preprocessing it expects."""
    from jetfleet.common.preprocess import PreprocessSpec
    from jetfleet.controller.registry.importing import import_onnx

    names: tuple[str, ...] = ()
    if labels_file is not None:
        names = tuple(ln.strip() for ln in labels_file.read_text(encoding="utf-8").splitlines() if ln.strip())
    elif labels:
        names = tuple(v.strip() for v in labels.split(","))
    ch = int(channels)
    mean_v, std_v = _floats(mean, "mean"), _floats(std, "std")
    if ch == 1 and len(mean_v) == 3 and mean == "0.485,0.456,0.406":
        mean_v, std_v = (0.5,), (0.5,)  # the RGB defaults make no sense for grayscale
    spec = PreprocessSpec((input_size, input_size), ch, mean_v, std_v, names)
    info = import_onnx(open_registry(db), onnx_file, name, spec, description)
    _done(info, as_json, f"imported {onnx_file} as {info.ref}")


@models.command("register")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=None, help="Model name (default: the architecture).")
@db_option
@json_option
def register_cmd(run_dir: Path, name: str | None, db: str | None, as_json: bool) -> None:
    """Register a finished run directory (what `jetfleet train` does unless --no-register)."""
    from jetfleet.controller.registry.runs import register_run

    info = register_run(open_registry(db), run_dir, name)
    _done(info, as_json, f"registered {info.ref}")
