"""``jetfleet data``: look at a dataset before training on it."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from jetfleet.controller.data.datasets import DataOptions
from jetfleet.controller.data.inspect import MAX_EXAMPLES, InspectReport, inspect_dataset


@click.group()
def data() -> None:
    """Inspect datasets: classes, sizes, duplicates, unreadable files, the defaults train would choose."""


@data.command()
@click.argument("dataset")
@click.option("--data-root", type=click.Path(path_type=Path), default=Path("data"), show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Processes reading files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
def inspect(dataset: str, data_root: Path, workers: int, as_json: bool) -> None:
    """Report on DATASET (digits, cifar10, imagenet or folder:PATH) without training."""
    console = Console(soft_wrap=True, stderr=as_json)  # with --json, progress goes to stderr
    opts = DataOptions(root=data_root, workers=workers, skip_bad=True, log=lambda line: console.print(line))
    report = inspect_dataset(dataset, opts)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    render(Console(soft_wrap=True), report)


def _classes_table(report: InspectReport) -> Table:
    table = Table(title=f"{report.dataset}: images per class")
    table.add_column("class")
    for split in report.splits:
        table.add_column(split.name, justify="right")
    for label in report.labels:
        table.add_row(label, *(f"{s.classes.get(label, 0):,}" for s in report.splits))
    table.add_row("[bold]total[/]", *(f"[bold]{s.images:,}[/]" for s in report.splits), end_section=True)
    table.add_row("imbalance (max/min)", *(f"{s.imbalance:.2f}×" for s in report.splits))
    return table


def _sizes_lines(report: InspectReport) -> list[str]:
    sizes = report.sizes
    common = ", ".join(f"{s['width']}×{s['height']} ({s['count']:,})" for s in sizes["common_sizes"])
    side = sizes["shorter_side"] or {}
    modes = ", ".join(f"{m} ({n:,})" for m, n in sizes["modes"].items())
    return [
        f"sizes: {sizes['distinct_sizes']:,} distinct; most common {common}",
        f"shorter side: min {side.get('min')}, median {side.get('median')}, max {side.get('max')}",
        f"modes: {modes}",
    ]


def _problem_lines(report: InspectReport) -> list[str]:
    dup = report.duplicates
    lines = [
        f"duplicates across splits: {dup['across_splits']:,} image(s) in more than one split"
        + (" [yellow](test accuracy would be inflated)[/]" if dup["across_splits"] else "")
        + f"; within a split: {dup['within_splits']:,}"
    ]
    lines += ["  " + " = ".join(f"{s}:{name}" for s, name in ex.items()) for ex in dup["examples"]]
    lines.append(f"unreadable or truncated: {len(report.unreadable):,}")
    lines += [f"  {u['path']}: {u['error']}" for u in report.unreadable[:MAX_EXAMPLES]]
    if len(report.unreadable) > MAX_EXAMPLES:
        lines.append(f"  … and {len(report.unreadable) - MAX_EXAMPLES} more (--json lists all)")
    return lines


def render(console: Console, report: InspectReport) -> None:
    console.print(_classes_table(report))
    for line in _sizes_lines(report) + _problem_lines(report):
        console.print(line, highlight=False)
    d = report.defaults
    console.print(
        f"train would use: input {d['image_size']}×{d['image_size']}×{d['channels']} "
        f"({d['size_reason']}; {d['channels_reason']}), augment {d['augment']} ({d['augment_reason']})",
        highlight=False,
    )
    console.print(f"one line: {report.summary}", highlight=False)
