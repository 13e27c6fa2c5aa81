"""Where the registry lives and how we connect to it.

``JETFLEET_HOME`` (default: the user's data directory, e.g.
``~/.local/share/jetfleet``) holds the embedded SQLite database
``registry.db`` and the blob store ``blobs/``. ``--db`` / ``JETFLEET_DB``
selects another database by SQLAlchemy URL, e.g.
``postgresql+psycopg://user:pass@host/jetfleet`` for production.

SQLite is tuned for a registry that a daemon and CLI processes share: WAL
(readers never block the writer), foreign keys enforced, a busy timeout
instead of instant "database is locked", and ``BEGIN IMMEDIATE`` so two
writers queue instead of deadlocking on a lock upgrade. Commits are
``synchronous=FULL``: what the controller acknowledged survives a power loss.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.home import jetfleet_home

SQLITE_BUSY_TIMEOUT_MS = 30_000  # writers queue this long before "database is locked"
MIGRATIONS = Path(__file__).with_name("migrations")


def default_db_url(home: Path | None = None) -> str:
    return os.environ.get("JETFLEET_DB") or f"sqlite:///{(home or jetfleet_home()) / 'registry.db'}"


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # FULL, not NORMAL: an acknowledged report (a deployment or job result an agent may now delete from its
        # outbox) must survive a power loss, and NORMAL in WAL mode can lose the last transactions (it skips the
        # WAL fsync at commit). FULL costs one fsync per commit, which the registry's write rate can afford.
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; unreachable or malformed URLs become one clear error."""
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            _tune_sqlite(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True, connect_args=_connect_args(url))
        with engine.connect():
            pass
    except (OperationalError, SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        raise JetfleetError(f"cannot open registry database {_redact(url)}: {_first_line(exc)}") from exc
    return engine


def _connect_args(url: str) -> dict[str, Any]:
    return {"connect_timeout": 5} if url.startswith("postgresql") else {}


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def _alembic_config(connection: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic owns the schema from the first table)."""
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head
