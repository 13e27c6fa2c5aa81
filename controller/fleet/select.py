"""Device selectors as operators type them: ``all``, ``name1,name2``, ``tag=key=value``."""

from __future__ import annotations

from collections.abc import Sequence

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.fleet.store import DeviceRecord


def select_devices(selector: str, devices: Sequence[DeviceRecord]) -> list[DeviceRecord]:
    """The devices ``selector`` names; an unknown name or a selector matching nothing is an error."""
    selector = selector.strip()
    if selector in ("", "all"):
        chosen = list(devices)
    elif selector.startswith("tag="):
        key, sep, value = selector[4:].partition("=")
        if not key or not sep:
            raise JetfleetError(f"bad selector {selector!r}: expected tag=key=value, e.g. tag=board=orin")
        chosen = [d for d in devices if d.tags.get(key) == value]
    else:
        names = [n.strip() for n in selector.split(",") if n.strip()]
        known = {d.name: d for d in devices}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise JetfleetError(f"no device named {', '.join(unknown)}", "list them with `jetfleet devices list`")
        chosen = [known[n] for n in dict.fromkeys(names)]
    if not chosen:
        raise JetfleetError(
            f"selector {selector or 'all'!r} matches no device", "list them with `jetfleet devices list`"
        )
    return chosen
