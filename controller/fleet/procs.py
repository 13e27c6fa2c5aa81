"""Start and stop jetfleet daemons as separate processes (the demo, benchmarks, tests).

A daemon prints "... listening on port N" on stderr when it is ready; we read
that line, then hand stderr to a log file so a chatty daemon can never block
on a full pipe.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from jetfleet.common.errors import JetfleetError

READY = re.compile(r"listening on port (\d+)")


def executable(name: str) -> str:
    """The entry point installed beside this interpreter (the same virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise JetfleetError(f"cannot find the {name} command", "is jetfleet installed in this environment?")
    return found


class Daemon:
    """One daemon process; ``port`` is what it bound."""

    def __init__(
        self, args: list[str], log_file: Path, env: dict[str, str] | None = None, timeout: float = 60.0
    ) -> None:
        self.args = args
        self.log_file = log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self.port = self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            seen.append(line)
            if match := READY.search(line):
                threading.Thread(target=self._copy_log, args=(seen,), daemon=True).start()
                return int(match.group(1))
        self.stop()
        tail = "".join(seen[-10:]).strip()
        raise JetfleetError(f"{Path(self.args[0]).name} did not start: {tail or 'no output'}")

    def _copy_log(self, head: list[str]) -> None:
        with open(self.log_file, "a") as fh:
            fh.writelines(head)
            for line in self.proc.stderr:  # type: ignore[union-attr]
                fh.write(line)
                fh.flush()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in ``timeout`` seconds; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
