"""Model references as users type them: ``basic_cnn`` (latest), ``basic_cnn:3``, ``basic_cnn@production``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from jetfleet.common.errors import JetfleetError

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
_REF = re.compile(rf"(?P<name>{_NAME})(?::(?P<version>\d+)|@(?P<alias>{_NAME}))?")
NAME_RE = re.compile(_NAME)


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        match = _REF.fullmatch(text.strip())
        if not match:
            raise JetfleetError(
                f"bad model reference {text!r}", hint="use NAME, NAME:VERSION or NAME@ALIAS, e.g. basic_cnn:3"
            )
        version = match["version"]
        return cls(match["name"], int(version) if version else None, match["alias"])

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def check_name(kind: str, value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise JetfleetError(f"bad {kind} name {value!r}: letters, digits, '_', '.', '-' (max 128)")
    return value
