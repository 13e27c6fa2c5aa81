"""Fixtures of the fault suite (tests/faults): an invariant recorder per test.

``digits_model`` and ``start_agent`` (in-process agents) come from
``tests/conftest.py`` like everywhere else; agent processes from
``faults/procs_agent.py``; the rest of the machinery lives in ``faults/harness.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults.harness import Invariants

_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture
def invariants(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Invariants]:
    """The test's :class:`Invariants`; its timeline is written to ``fault-timeline.jsonl`` in ``tmp_path``.

    A test that states invariants (``expect``) and passes without calling
    ``check()`` is an error: ``expect`` alone fails nothing, so those
    invariants would never have been judged.
    """
    inv = Invariants()
    yield inv
    inv.dump(tmp_path / "fault-timeline.jsonl")
    if inv.results and not request.node.stash.get(_CALL_FAILED, True):
        assert inv.checked, "the test stated invariants but never called invariants.check()"
