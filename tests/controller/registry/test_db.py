from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.registry.db import current_revision, downgrade, head_revision, make_engine, migrate

TABLES = {"models", "model_versions", "artifacts", "metrics", "aliases"}


def test_upgrade_from_empty_and_round_trip(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    migrate(engine)
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES
    downgrade(engine, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def test_sqlite_pragmas(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://nobody:secret@127.0.0.1:1/nothing", "nosuchdb://x", "sqlite:////proc/forbidden/r.db"],
)
def test_unreachable_database_is_one_clear_error(url: str) -> None:
    with pytest.raises(JetfleetError, match="cannot open registry database") as info:
        make_engine(url)
    assert "secret" not in str(info.value)
