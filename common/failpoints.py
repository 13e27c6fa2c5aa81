"""Named failpoints: places where the fault suite can stall or kill a real process.

Like etcd's gofail and TiKV's fail-rs: production code calls
``failpoint("agent.swap")`` at the moments that matter for crash safety
(mid-build, right before and after the commit rename, mid-upload; on the
controller between upload and deploy, and after a deploy before it is
recorded), and the call does nothing unless the process was started with

    JETFLEET_FAILPOINTS="agent.swap=sleep(5);agent.build=kill"

Actions: ``sleep(seconds)`` stalls there (a test then kills the process
from outside with a real signal), ``kill`` sends SIGKILL to the process
itself at exactly that point, ``once-kill`` does so only while the marker file
``$JETFLEET_FAILPOINTS_DIR/<name>.fired`` does not exist yet (so the restarted
process runs through). The variable is read once; an unset variable costs one
dictionary lookup per call.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from functools import lru_cache
from pathlib import Path

ENV_VAR = "JETFLEET_FAILPOINTS"
DIR_VAR = "JETFLEET_FAILPOINTS_DIR"  # where once-kill leaves its marker (default: the working directory)
_ACTION = re.compile(r"^(sleep\((?P<seconds>[0-9.]+)\)|kill|once-kill)$")

log = logging.getLogger(__name__)


@lru_cache(maxsize=None)
def _table() -> dict[str, str]:
    """name -> action, parsed from the environment; a malformed entry is an error at first use."""
    table: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in os.environ.get(ENV_VAR, "").split(";"))):
        name, sep, action = item.partition("=")
        if not sep or not _ACTION.match(action.strip()):
            raise ValueError(f"{ENV_VAR}: {item!r} is not name=sleep(seconds)|kill|once-kill")
        table[name.strip()] = action.strip()
    return table


def failpoint(name: str) -> None:
    """Stall or die here if the environment asks for it; otherwise return at once."""
    action = _table().get(name)
    if action is None:
        return
    log.warning("failpoint %s: %s", name, action)
    if action == "once-kill":
        marker = Path(os.environ.get(DIR_VAR, ".")) / f"{name}.fired"
        if marker.exists():
            return
        marker.write_text(str(os.getpid()))
        action = "kill"
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # SIGKILL is delivered asynchronously; never run past the failpoint
    match = _ACTION.match(action)
    if match and match["seconds"]:
        time.sleep(float(match["seconds"]))
