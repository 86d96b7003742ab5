"""Opening the DuckDB file and bringing its schema up to date with numbered migrations."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import TypeVar

import duckdb

from onepane.errors import StoreError

_T = TypeVar("_T")
DEFAULT_DB_PATH = Path(".onepane") / "onepane.duckdb"
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """Every migration shipped with Onepane as (number, name, sql), in order."""
    found = []
    for entry in resources.files("store.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


# Measured with bench/ingest.py: one DuckDB thread roughly halves the writer's CPU per
# span; group commits are small queries, where DuckDB's task scheduling costs more than a
# second thread gains. Checkpoints run in the background (store/checkpointer.py) every
# 64 MB of WAL; DuckDB's own automatic checkpoint, which stalls the commit that triggers
# it, is only a safety net should background checkpoints keep failing.
INGEST_THREADS = 1
# DuckDB keeps table blocks cached up to this limit; 256 MB held a 10M-span ingest near
# 750 MiB of server RSS where 512 MB reached 1.1 GiB, at the same ingest rate.
MEMORY_LIMIT = "256MB"
CHECKPOINT_WAL_BYTES = 64 * 1024 * 1024
SAFETY_CHECKPOINT_THRESHOLD = "1GB"


def connect(
    path: Path | str, memory_limit: str = MEMORY_LIMIT, threads: int = INGEST_THREADS
) -> duckdb.DuckDBPyConnection:
    """Open the store read-write and apply pending migrations.

    Only one process may hold the file: DuckDB allows one writer process or many readers.
    """
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "memory_limit": memory_limit,
        "threads": threads,
        "checkpoint_threshold": SAFETY_CHECKPOINT_THRESHOLD,
    }
    try:
        conn = duckdb.connect(str(path), config=config)
    except duckdb.IOException as exc:
        raise StoreError(
            f"cannot open {path}: {exc}. Is another `onepane serve` using it? "
            "Stop it, or give this one its own --db PATH."
        ) from exc
    migrate(conn)
    return conn


def migrate(conn: duckdb.DuckDBPyConnection) -> int:
    """Apply the migrations not yet applied; returns the schema version now in place."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    version = max(applied, default=0)
    for number, name, sql in migrations():
        if number in applied:
            continue
        conn.execute("BEGIN")
        try:
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name]
            )
            conn.execute("COMMIT")
        except duckdb.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"migration {name} failed: {exc}") from exc
        version = number
    return version


class ReadCursors:
    """Hands each reader its own DuckDB cursor on the shared database."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._root = conn.cursor()
        self._lock = threading.Lock()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._root.cursor()

    def warm_up(self) -> None:
        """Bind one query parameter: the first binding in a process imports DuckDB's
        Python type conversions (about a second), which should not land on a user."""
        with suppress(duckdb.Error):  # the server may be stopping already
            cursor = self.cursor()
            try:
                cursor.execute("SELECT $warm", {"warm": 1}).fetchall()
            finally:
                cursor.close()

    def close(self) -> None:
        self._root.close()


def read_with(
    open_cursor: Callable[[], duckdb.DuckDBPyConnection],
    query: Callable[[duckdb.DuckDBPyConnection], _T],
) -> _T:
    """``query`` run on a cursor of its own, closed after."""
    cursor = open_cursor()
    try:
        return query(cursor)
    finally:
        cursor.close()


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, rolled back on any error without hiding that error."""
    conn.execute("BEGIN")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):  # DuckDB may have aborted the transaction already
            conn.execute("ROLLBACK")
        raise
