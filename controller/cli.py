"""The ``jetfleet`` command: a thin click layer over plain functions.

Each command turns options into a dataclass and calls one function; every
:class:`JetfleetError` becomes a one-line ``error:`` message and exit code 1.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from jetfleet.common.errors import JetfleetError
from jetfleet.common.version import __version__

console = Console(soft_wrap=True)  # log lines stay whole when piped to a file


def _parse_batch_size(_ctx: click.Context, _param: click.Parameter, value: str) -> int | str:
    if value == "auto":
        return value
    try:
        size = int(value)
    except ValueError:
        raise click.BadParameter("must be a positive integer or 'auto'") from None
    if size < 1:
        raise click.BadParameter("must be a positive integer or 'auto'")
    return size


def _parse_model_args(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """``--model-arg depth=32 --model-arg dropout=0.2`` → {"depth": 32, "dropout": 0.2}."""
    import json

    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="jetfleet")
def cli() -> None:
    """jetfleet: train, optimize and run image classifiers on a fleet of Jetson devices."""


@cli.command()
@click.option(
    "--model",
    default="basic_cnn",
    show_default=True,
    help="Architecture (basic_cnn, custom_resnet, resnet18, mobilenet_v3_small; BasicCNN/CustomResNet work too).",
)
@click.option(
    "--model-arg",
    "model_kwargs",
    multiple=True,
    callback=_parse_model_args,
    metavar="KEY=VALUE",
    help="Architecture option, e.g. depth=32 or dropout=0.2 (repeatable).",
)
@click.option(
    "--dataset", default="digits", show_default=True, help="digits (embedded), cifar10, imagenet or folder:PATH."
)
@click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Folder holding cifar-10-batches-py/ or imagenet train/ val/.",
)
@click.option("--download", is_flag=True, help="Download CIFAR-10 into --data-root if missing (never done otherwise).")
@click.option(
    "--image-size",
    type=click.IntRange(min=8),
    default=None,
    help="Resize images to this square size (default: the dataset's own; folders: fitted to the images).",
)
@click.option(
    "--channels",
    type=click.Choice(["1", "3"]),
    default=None,
    help="Image folders: read as grayscale (1) or RGB (3) (default: 1 when every image is grayscale).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--batch-size",
    default="64",
    callback=_parse_batch_size,
    show_default=True,
    help="Images per step, or 'auto' for the largest that fits the device.",
)
@click.option(
    "--accumulate",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Gradient accumulation steps (effective batch = batch size × this).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Processes decoding an image folder (once; later runs reuse the cache).",
)
@click.option("--skip-bad", is_flag=True, help="Train without unreadable images instead of stopping (they are listed).")
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]), default="adam", show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate (peak rate for one-cycle).")
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--momentum", type=float, default=0.9, show_default=True, help="SGD momentum.")
@click.option("--nesterov", is_flag=True, help="SGD with Nesterov momentum.")
@click.option(
    "--scheduler",
    type=click.Choice(["none", "step", "cosine", "plateau", "onecycle"]),
    default="cosine",
    show_default=True,
)
@click.option(
    "--step-size",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Step schedule: epochs between decays.",
)
@click.option("--gamma", type=float, default=0.1, show_default=True, help="Step/plateau schedule: decay factor.")
@click.option(
    "--loss",
    default="cross_entropy",
    show_default=True,
    help="cross_entropy, focal, or your own as package.module:Name.",
)
@click.option("--label-smoothing", type=float, default=0.0, show_default=True)
@click.option("--focal-gamma", type=float, default=2.0, show_default=True)
@click.option(
    "--patience",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Early stopping: epochs without improvement (0 = off).",
)
@click.option("--monitor", type=click.Choice(["val_accuracy", "val_loss"]), default="val_accuracy", show_default=True)
@click.option("--augment/--no-augment", default=True, show_default=True, help="Master switch for augmentation.")
@click.option(
    "--crop-padding",
    type=click.IntRange(min=0),
    default=None,
    help="Random crop after this much padding (0 = off; default per dataset).",
)
@click.option(
    "--resized-crop",
    type=click.FloatRange(min=0, max=1, min_open=False),
    default=None,
    help="Random resized crop keeping at least this share of the area, e.g. 0.35 (0 = off; default per dataset).",
)
@click.option("--hflip/--no-hflip", default=None, help="Random horizontal flips (default per dataset).")
@click.option(
    "--rotation", type=click.FloatRange(min=0), default=None, help="Random rotation up to ± this many degrees."
)
@click.option(
    "--color-jitter",
    type=click.FloatRange(min=0, max=1),
    default=None,
    help="Brightness/contrast/saturation jitter strength.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps.")
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision on CUDA.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Run directory (default runs/MODEL-DATASET-TIME)."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    help="Continue the run in this directory (or from this last.pt).",
)
@click.option(
    "--register/--no-register", default=True, show_default=True, help="Register the result as a model version."
)
@click.option("--register-as", default=None, help="Model name in the registry (default: the architecture).")
@click.option(
    "--db", envvar="JETFLEET_DB", default=None, help="Registry database URL (default: SQLite in JETFLEET_HOME)."
)
@click.option(
    "--optimize/--no-optimize",
    default=True,
    show_default=True,
    help="After registering, export ONNX FP32/FP16/INT8 variants.",
)
@click.option(
    "--nproc-per-node",
    type=click.IntRange(min=1),
    default=None,
    help="Train data-parallel on N processes (torch's elastic launcher): gloo on CPU, NCCL on CUDA.",
)
@click.option("--nnodes", default="1", show_default=True, help="Machines in a distributed run (with --rdzv-endpoint).")
@click.option("--rdzv-endpoint", default=None, help="HOST:PORT where the machines of a multi-node run meet.")
@click.option(
    "--rdzv-timeout", type=click.IntRange(min=1), default=300, show_default=True, help="Seconds to wait for them."
)
@click.option(
    "--max-restarts",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Restart every rank this many times after a failure; a restart resumes from last.pt.",
)
@click.option("--sync-bn/--no-sync-bn", default=True, show_default=True, help="DDP on CUDA: SyncBatchNorm.")
def train(**opts: Any) -> None:
    """Train a model and write checkpoints, curves, metrics and a summary to a run directory."""
    import os

    from jetfleet.controller.training import trainer

    if opts["nproc_per_node"] and "LOCAL_RANK" not in os.environ:
        _launch_distributed(opts)
        return
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    if restarted and opts["out"] is not None and (opts["out"] / "last.pt").is_file() and opts["resume"] is None:
        opts["resume"] = opts["out"]  # the launcher restarted this rank: go on from the last epoch
    if opts["resume"] is not None:
        epochs_given = click.get_current_context().get_parameter_source("epochs") != click.core.ParameterSource.DEFAULT
        result = trainer.resume(opts["resume"], console, epochs=opts["epochs"] if epochs_given else None)
    else:
        config = _train_config(opts)
        out = opts["out"] or Path("runs") / f"{config.model}-{_slug(config.dataset)}-{datetime.now():%Y%m%d-%H%M%S}"
        result = trainer.train(config, out, console, overwrite=opts["overwrite"], download=opts["download"])
    if result is None:  # a DDP rank other than 0: rank 0 reports and registers
        return
    console.print(
        f"test accuracy {result.test_accuracy:.2%}; report written to [bold]{result.out_dir / 'summary.md'}[/]"
    )
    if opts["register"]:
        from jetfleet.controller.registry.cli import open_registry
        from jetfleet.controller.registry.runs import register_run

        registry = open_registry(opts["db"])
        info = register_run(registry, result.out_dir, opts["register_as"])
        console.print(f"registered as [bold]{info.ref}[/]")
        if opts["optimize"]:
            from jetfleet.controller.registry.optimize import optimize_version

            optimize_version(registry, info.ref, Path(info.config.get("data_root", "data")), log=console.print)
        console.print(f"see `jetfleet models show {info.ref}`")


LAUNCHER_OPTIONS = ("--nproc-per-node", "--nnodes", "--rdzv-endpoint", "--rdzv-timeout", "--max-restarts", "--out")


def worker_argv(argv: list[str]) -> list[str]:
    """The ``train`` arguments of ``argv`` without the launcher's own options (and without ``--out``)."""
    args = argv[argv.index("train") + 1 :] if "train" in argv else list(argv)
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCHER_OPTIONS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def _launch_distributed(opts: dict[str, Any]) -> None:
    """Start ``--nproc-per-node`` workers through torch's elastic launcher, in this process."""
    import sys

    from jetfleet.controller.training import distributed

    if opts["resume"] is not None:
        out = Path(opts["resume"])
        out = out.parent if out.suffix == ".pt" else out
    else:
        stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
        out = opts["out"] or Path("runs") / f"{opts['model']}-{_slug(opts['dataset'])}-{stamp}"
    warning = distributed.oversubscription_warning(opts["nproc_per_node"], opts["device"])
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    args = distributed.launcher_args(
        [*worker_argv(sys.argv), "--out", str(out)],
        opts["nproc_per_node"],
        opts["nnodes"],
        opts["rdzv_endpoint"],
        opts["rdzv_timeout"],
        opts["max_restarts"],
    )
    console.print(f"launching {opts['nproc_per_node']} process(es) per node: torchrun {' '.join(args)}")
    distributed.launch(args)
    console.print(f"distributed run finished: [bold]{out}[/]")


def _slug(dataset: str) -> str:
    return Path(dataset.removeprefix("folder:")).name or "folder"


def _train_config(o: dict[str, Any]) -> Any:
    from jetfleet.controller.models import resolve_model_name
    from jetfleet.controller.training.config import AugmentOptions, LossConfig, OptimConfig, ScheduleConfig, TrainConfig

    return TrainConfig(
        model=resolve_model_name(o["model"]),
        model_kwargs=o["model_kwargs"],
        dataset=o["dataset"],
        data_root=str(o["data_root"]),
        image_size=o["image_size"],
        channels=int(o["channels"]) if o["channels"] else None,
        epochs=o["epochs"],
        batch_size=o["batch_size"],
        accumulate=o["accumulate"],
        workers=o["workers"],
        skip_bad=o["skip_bad"],
        device=o["device"],
        amp=o["amp"],
        seed=o["seed"],
        optim=OptimConfig(o["optimizer"], o["lr"], o["weight_decay"], o["momentum"], o["nesterov"]),
        schedule=ScheduleConfig(o["scheduler"], o["step_size"], o["gamma"]),
        loss=LossConfig(o["loss"], o["label_smoothing"], o["focal_gamma"]),
        augment=AugmentOptions(
            o["augment"], o["crop_padding"], o["resized_crop"], o["hflip"], o["rotation"], o["color_jitter"]
        ),
        early_stopping_patience=o["patience"],
        monitor=o["monitor"],
        sync_bn=o["sync_bn"],
    )


@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--dataset", default="digits", show_default=True, help="digits, cifar10, imagenet or folder:PATH.")
@click.option("--data-root", type=click.Path(path_type=Path), default=Path("data"), show_default=True)
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--model", default=None, help="Fail unless the checkpoint holds this architecture.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Output folder (default: beside the checkpoint)."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing evaluation in --out.")
def evaluate(
    checkpoint: Path,
    dataset: str,
    data_root: Path,
    split: str,
    model: str | None,
    batch_size: int,
    device: str,
    out: Path | None,
    overwrite: bool,
) -> None:
    """Score a checkpoint on a dataset: top-1/top-5, per-class metrics, confusion matrix."""
    from jetfleet.controller.training.evaluation import EvalRequest, default_eval_dir, evaluate_checkpoint

    req = EvalRequest(checkpoint, dataset, data_root, split, batch_size, device, expected_model=model)
    out_dir = out or default_eval_dir(checkpoint, dataset, split)
    if (out_dir / "evaluation.json").exists() and not overwrite:
        raise JetfleetError(f"{out_dir} already holds an evaluation", hint="pass --overwrite or another --out")
    evaluate_checkpoint(req, out_dir, console)


def _attach_subcommands() -> None:
    from jetfleet.controller.data.cli import data
    from jetfleet.controller.fleet.cli import attach
    from jetfleet.controller.registry.cli import models
    from jetfleet.controller.viz.cli import viz

    cli.add_command(data)
    cli.add_command(viz)
    cli.add_command(models)
    attach(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line and a non-zero exit."""
    from jetfleet.common.cli import run

    _attach_subcommands()
    run(cli, "jetfleet", argv, interrupted="interrupted; a training run can continue with --resume RUN_DIR")
