#!/usr/bin/env python3
"""The toolkit's original command line, kept working on top of jetfleet.

    python jetson_cnn_toolkit.py --mode train --model BasicCNN --dataset cifar10 --epochs 20
    python jetson_cnn_toolkit.py --mode evaluate --checkpoint runs/x/best.pt --dataset cifar10
    python jetson_cnn_toolkit.py --mode visualize --model BasicCNN [--checkpoint C --image I]

Every mode forwards to the same code as ``jetfleet train|evaluate|viz``;
options this script does not know are passed through unchanged, so any
``jetfleet train`` option works here too.
"""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Jetson CNN toolkit (now part of jetfleet)")
    p.add_argument("--mode", choices=["train", "evaluate", "visualize"], default="train")
    p.add_argument("--model", default="BasicCNN")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--checkpoint", help="checkpoint for evaluate / visualize")
    p.add_argument("--image", help="image for feature maps (visualize)")
    p.add_argument("--output", "--out", dest="out", help="output folder")
    return p


def _forward(args: argparse.Namespace, rest: list[str]) -> list[list[str]]:
    """The jetfleet command lines that implement one toolkit invocation."""
    out = ["--out", args.out] if args.out else []
    if args.mode == "train":
        return [["train", "--model", args.model, "--dataset", args.dataset, *out, *rest]]
    if args.mode == "evaluate":
        if not args.checkpoint:
            raise SystemExit("error: --mode evaluate needs --checkpoint")
        return [["evaluate", args.checkpoint, "--dataset", args.dataset, *out, *rest]]
    commands = [["viz", "conv-demo", *out], ["viz", "activations", *out], ["viz", "architecture", args.model, *out]]
    if args.checkpoint and args.image:
        commands.append(["viz", "feature-maps", args.checkpoint, "--image", args.image, *out])
    return commands


def main(argv: list[str] | None = None) -> None:
    args, rest = _parser().parse_known_args(argv)
    from jetfleet.controller.cli import main as jetfleet_main

    for command in _forward(args, rest):
        try:
            jetfleet_main(command)
        except SystemExit as exc:
            if exc.code:
                raise


if __name__ == "__main__":
    main(sys.argv[1:])
