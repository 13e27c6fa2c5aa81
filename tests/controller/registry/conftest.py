"""One registry fixture per database: the same contract tests run on SQLite and on PostgreSQL.

PostgreSQL comes from ``JETFLEET_TEST_PG_URL`` (``scripts/test-postgres.sh``
starts a local server and prints it; ``make test`` and CI do that). Without
it the PostgreSQL cases skip and say why, unless ``JETFLEET_REQUIRE_PG=1``
(set in CI), where a missing server is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jetfleet.controller.registry.blobs import BlobStore
from jetfleet.controller.registry.db import downgrade, make_engine, migrate
from jetfleet.controller.registry.store import Registry


def pg_url() -> str | None:
    url = os.environ.get("JETFLEET_TEST_PG_URL")
    if not url:
        if os.environ.get("JETFLEET_REQUIRE_PG") == "1":
            pytest.fail("JETFLEET_REQUIRE_PG=1 but JETFLEET_TEST_PG_URL is not set")
        pytest.skip("PostgreSQL not configured: run scripts/test-postgres.sh and set JETFLEET_TEST_PG_URL")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL with an empty schema (no tables, no alembic revision)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url = pg_url()
    assert url is not None
    engine = make_engine(url)
    migrate(engine)  # make sure downgrade has something to drop, whatever the last test left
    downgrade(engine, "base")
    engine.dispose()
    return url


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Registry:
    engine = make_engine(db_url)
    migrate(engine)
    reg = Registry(engine, BlobStore(tmp_path / "blobs"))
    yield reg
    engine.dispose()
