"""One registry fixture per database: the same contract tests run on SQLite and on PostgreSQL.

PostgreSQL comes from ``JETFLEET_TEST_PG_URL`` (``scripts/test-postgres.sh``
starts a local server and prints it; ``make test`` and CI do that). Without
it the PostgreSQL cases skip and say why, unless ``JETFLEET_REQUIRE_PG=1``
(set in CI), where a missing server is a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import pg_url_or_skip

from jetfleet.controller.registry.blobs import BlobStore
from jetfleet.controller.registry.db import make_engine, migrate
from jetfleet.controller.registry.store import Registry


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL with an empty schema (no tables, no alembic revision)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return pg_url_or_skip()


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Registry:
    engine = make_engine(db_url)
    migrate(engine)
    reg = Registry(engine, BlobStore(tmp_path / "blobs"))
    yield reg
    engine.dispose()
