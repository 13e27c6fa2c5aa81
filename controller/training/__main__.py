"""``python -m jetfleet.controller.training ARGS``: ``jetfleet train ARGS``, the entry torchrun starts per rank.

``torchrun --nproc-per-node 2 -m jetfleet.controller.training --dataset digits``
and ``jetfleet train --dataset digits --nproc-per-node 2`` run the same
workers. A worker restarted by the launcher (``--max-restarts``) resumes from
the run's ``last.pt`` instead of starting over.
"""

from __future__ import annotations

import sys


def main() -> None:
    import os

    from jetfleet.controller.cli import main as cli_main

    if os.environ.get("TORCHELASTIC_RUN_ID"):
        from jetfleet.controller.training.distributed import die_with_launcher

        die_with_launcher()

    cli_main(["train", *sys.argv[1:]])


if __name__ == "__main__":
    main()
