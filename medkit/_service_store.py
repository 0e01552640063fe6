"""Storage of a site's shared records and model files through SQLAlchemy.

Every upload is one transaction, and records are idempotent on ``record_id``:
storing a record again with the same values changes nothing, and storing it
with other values is a conflict that rolls the whole upload back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from medkit._service_schema import RECORD_FIELDS
from medkit.exceptions import ServiceSettingError

logger = logging.getLogger(__name__)

# Each SQLite connection waits this long for another writer before failing.
_BUSY_TIMEOUT_MS = 30_000
# Record IDs looked up per SELECT ... IN (...), below SQLite's older limit of
# 999 bound parameters.
_IDS_PER_QUERY = 500
# Connections kept open, and opened beyond them when all are in use. Together
# they exceed the 40 worker threads of AnyIO's default limiter, so the event
# loop always finds a connection.
_POOL_SIZE = 8
_POOL_OVERFLOW = 40
# A concurrent upload of the same new record_id fails one transaction on the
# primary key; the loser runs again and then finds the winner's rows.
_INSERT_ATTEMPTS = 3

_metadata = sa.MetaData()

_INTEGER_FIELDS = {"length_of_stay", "systolic_bp", "heart_rate", "readmit_30d"}


def _column_type(name: str) -> sa.types.TypeEngine:
    if name in _INTEGER_FIELDS:
        return sa.Integer()
    # Keys and indexed columns get a length, which MySQL requires for them.
    if name in ("record_id", "patient_pseudonym"):
        return sa.String(65)
    if name in ("department", "icd10"):
        return sa.String(100)
    return sa.Text()


records_table = sa.Table(
    "records",
    _metadata,
    *(
        sa.Column(
            name,
            _column_type(name),
            primary_key=name == "record_id",
            nullable=name in ("sex", "systolic_bp", "heart_rate"),
        )
        for name in RECORD_FIELDS
    ),
    sa.Column("batch_id", sa.String(32), nullable=False),
    sa.Index("ix_records_department", "department"),
    sa.Index("ix_records_icd10", "icd10"),
)

# Statements built once: building a SELECT costs more than running it.
_GET_RECORD = sa.select(*(records_table.c[name] for name in RECORD_FIELDS)).where(
    records_table.c.record_id == sa.bindparam("record_id")
)
_COUNT_RECORDS = sa.select(sa.func.count()).select_from(records_table)

_SQLITE_GET_RECORD = (
    f"SELECT {', '.join(RECORD_FIELDS)} FROM records WHERE record_id = ?"
)
_SQLITE_INSERT = (
    f"INSERT INTO records ({', '.join([*RECORD_FIELDS, 'batch_id'])}) "
    f"VALUES ({', '.join('?' * (len(RECORD_FIELDS) + 1))})"
)

batches_table = sa.Table(
    "batches",
    _metadata,
    sa.Column("batch_id", sa.String(32), primary_key=True),
    sa.Column("received_at", sa.Text(), nullable=False),
    sa.Column("stored", sa.Integer(), nullable=False),
    sa.Column("existing", sa.Integer(), nullable=False),
)

models_table = sa.Table(
    "models",
    _metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("content", sa.LargeBinary(), nullable=False),
    sa.Column("bytes", sa.Integer(), nullable=False),
    sa.Column("sha256", sa.Text(), nullable=False),
    sa.Column("uploaded_at", sa.Text(), nullable=False),
)


class RecordConflict(Exception):
    """Records already stored under the same ``record_id`` with other values."""

    def __init__(self, record_ids: list[str]) -> None:
        super().__init__(", ".join(record_ids))
        self.record_ids = record_ids


@dataclass(frozen=True)
class StoredBatch:
    """The outcome of one upload: new records and records already stored."""

    batch_id: str
    stored: int
    existing: int


class SiteStore:
    """A site's database: shared records, upload batches and model files.

    Parameters
    ----------
    url : str
        A SQLAlchemy database URL. A SQLite file is opened in WAL mode with a
        busy timeout; its folder must exist, and a new file gets mode 0600.
        ``sqlite://`` and ``sqlite:///:memory:`` keep one in-memory database
        for the process.

    NOTE: The tests run on SQLite only. Other databases go through the same
    SQLAlchemy Core statements, but their concurrent uploads are untested.
    """

    def __init__(self, url: str) -> None:
        self.engine = _create_engine(url)
        self.url = self.engine.url.render_as_string(hide_password=True)
        self._sqlite = self.engine.dialect.name == "sqlite"
        # SQLite takes one writer at a time. Queueing writers of this process
        # on a lock is fairer than each polling the database's busy timeout.
        self._write_lock = threading.Lock()
        # One in-memory connection is shared by all threads, so every use of
        # it, reads included, takes this lock.
        self._memory_lock = threading.Lock() if _is_memory(self.engine) else None
        # In a SQLite file in WAL mode, readers do not wait for the writer, and
        # the pool has more connections than AnyIO's 40 worker threads.
        self.reads_never_wait = self._sqlite and self._memory_lock is None
        try:
            with self._begin() as connection:
                _metadata.create_all(connection)
        except sa.exc.DBAPIError as error:
            self.engine.dispose()
            reason = str(error.orig).strip().splitlines()[0] if error.orig else error
            raise ServiceSettingError(
                f"Cannot open the database {self.url}: {reason}. Check that the "
                "database server is running and the URL, user and password are "
                "right.",
                name="db_url",
                value=self.url,
            ) from error

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # Records ------------------------------------------------------------------

    def add_records(self, records: Sequence[Mapping]) -> StoredBatch:
        """Store records in one transaction, skipping those already stored.

        Raises
        ------
        RecordConflict
            If a stored record has the same ``record_id`` and other values;
            nothing is stored then.
        """
        for attempt in range(1, _INSERT_ATTEMPTS + 1):
            try:
                return self._add_records(records)
            except sa.exc.IntegrityError:
                if attempt == _INSERT_ATTEMPTS:
                    raise
                logger.info("Upload raced another on a record_id; attempt %d", attempt)
        raise AssertionError("unreachable")

    def _add_records(self, records: Sequence[Mapping]) -> StoredBatch:
        batch_id = uuid.uuid4().hex
        with self._write() as connection:
            stored = self._stored_rows(connection, [r["record_id"] for r in records])
            new, conflicts = [], []
            for record in records:
                values = tuple(record[name] for name in RECORD_FIELDS)
                previous = stored.get(record["record_id"])
                if previous is None:
                    new.append(values)
                elif previous != values:
                    conflicts.append(record["record_id"])
            if conflicts:
                raise RecordConflict(conflicts)
            if new:
                self._insert_records(connection, new, batch_id)
            existing = len(records) - len(new)
            connection.execute(
                batches_table.insert(),
                {
                    "batch_id": batch_id,
                    "received_at": _now(),
                    "stored": len(new),
                    "existing": existing,
                },
            )
        logger.debug("Batch %s: %d stored, %d existing", batch_id, len(new), existing)
        return StoredBatch(batch_id, len(new), existing)

    def _insert_records(
        self, connection: sa.Connection, rows: list[tuple], batch_id: str
    ) -> None:
        rows = [(*row, batch_id) for row in rows]
        if self._sqlite:
            # SQLAlchemy's insert() builds each row's parameters in Python, which
            # took half the storage time of a batch. The driver takes tuples.
            connection.exec_driver_sql(_SQLITE_INSERT, rows)
            return
        names = [*RECORD_FIELDS, "batch_id"]
        connection.execute(
            records_table.insert(), [dict(zip(names, row, strict=True)) for row in rows]
        )

    def _stored_rows(
        self, connection: sa.Connection, record_ids: list[str]
    ) -> dict[str, tuple]:
        columns = [records_table.c[name] for name in RECORD_FIELDS]
        query = sa.select(*columns).where(
            records_table.c.record_id.in_(sa.bindparam("ids", expanding=True))
        )
        rows = {}
        for start in range(0, len(record_ids), _IDS_PER_QUERY):
            chunk = record_ids[start : start + _IDS_PER_QUERY]
            for row in connection.execute(query, {"ids": chunk}):
                rows[row[0]] = tuple(row)
        return rows

    def count_records(self) -> int:
        with self._read(single_statement=True) as connection:
            return int(connection.execute(_COUNT_RECORDS).scalar_one())

    def get_record(self, record_id: str) -> dict | None:
        if self._sqlite:
            row = self._get_sqlite_row(record_id)
        else:
            with self._read(single_statement=True) as connection:
                row = connection.execute(_GET_RECORD, {"record_id": record_id}).first()
        return None if row is None else dict(zip(RECORD_FIELDS, row, strict=True))

    def _get_sqlite_row(self, record_id: str) -> tuple | None:
        # GET /records/{record_id} is the most frequent request. Its SELECT runs
        # on the driver's connection, because SQLAlchemy's execution layer took
        # more than half of the application's CPU time for the request.
        with self._memory_lock or _NO_LOCK:
            connection = self.engine.raw_connection()
            try:
                cursor = connection.cursor()
                row = cursor.execute(_SQLITE_GET_RECORD, (record_id,)).fetchone()
                cursor.close()
            finally:
                connection.close()
        return row

    def page_records(
        self, filters: Mapping[str, object], page: int, page_size: int
    ) -> tuple[int, list[dict]]:
        """Return the total count of matching records and one page of them.

        Records are ordered by ``record_id``, so pages are stable while no
        records are added.
        """
        conditions = [records_table.c[name] == value for name, value in filters.items()]
        columns = [records_table.c[name] for name in RECORD_FIELDS]
        rows_query = (
            sa.select(*columns)
            .where(*conditions)
            .order_by(records_table.c.record_id)
            .limit(page_size)
            .offset((page - 1) * page_size)
        )
        count_query = (
            sa.select(sa.func.count()).select_from(records_table).where(*conditions)
        )
        with self._read() as connection:
            total = int(connection.execute(count_query).scalar_one())
            rows = connection.execute(rows_query).all()
        return total, [dict(zip(RECORD_FIELDS, row, strict=True)) for row in rows]

    def group_counts(self, group_by: Sequence[str]) -> list[dict]:
        """Return the records, readmission rate and different patients per group."""
        keys = [records_table.c[name] for name in group_by]
        patients = sa.func.count(sa.distinct(records_table.c.patient_pseudonym))
        query = (
            sa.select(
                *keys,
                sa.func.count().label("n"),
                sa.func.avg(records_table.c.readmit_30d).label("readmit_rate"),
                patients.label("patients"),
            )
            .group_by(*keys)
            .order_by(*keys)
        )
        with self._read() as connection:
            rows = connection.execute(query).all()
        names = [*group_by, "n", "readmit_rate", "patients"]
        return [dict(zip(names, row, strict=True)) for row in rows]

    # Models -------------------------------------------------------------------

    def put_model(self, name: str, content: bytes) -> dict:
        """Store a model file under ``name``, replacing one of the same name."""
        info = {
            "name": name,
            "bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "uploaded_at": _now(),
        }
        with self._write() as connection:
            connection.execute(models_table.delete().where(models_table.c.name == name))
            connection.execute(models_table.insert(), {**info, "content": content})
        return info

    def get_model(self, name: str) -> tuple[bytes, str] | None:
        query = sa.select(models_table.c.content, models_table.c.sha256).where(
            models_table.c.name == name
        )
        with self._read() as connection:
            row = connection.execute(query).first()
        return None if row is None else (bytes(row[0]), row[1])

    def list_models(self) -> list[dict]:
        columns = [
            models_table.c[n] for n in ("name", "bytes", "sha256", "uploaded_at")
        ]
        query = sa.select(*columns).order_by(models_table.c.name)
        with self._read() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    # Transactions -------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        # BEGIN IMMEDIATE takes SQLite's write lock at the start, so the check
        # for stored records and the insert see the same data.
        with self._write_lock, self._begin("BEGIN IMMEDIATE") as connection:
            yield connection

    @contextmanager
    def _read(self, single_statement: bool = False) -> Iterator[sa.Connection]:
        # One SELECT needs no BEGIN and COMMIT around it in SQLite, because
        # each statement reads one consistent snapshot.
        begin = None if single_statement else "BEGIN"
        with self._begin(begin) as connection:
            yield connection

    @contextmanager
    def _begin(self, begin: str | None = "BEGIN") -> Iterator[sa.Connection]:
        lock = self._memory_lock or _NO_LOCK
        with lock, self.engine.connect() as connection:
            if self._sqlite:
                connection = connection.execution_options(sqlite_begin=begin)
            with connection.begin():
                yield connection


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_LOCK = _NoLock()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _is_memory(engine: sa.Engine) -> bool:
    database = engine.url.database
    return engine.dialect.name == "sqlite" and database in (None, "", ":memory:")


def _create_engine(url: str) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ServiceSettingError(
            f"Database URL {url!r} is not a SQLAlchemy URL; use one such as "
            "'sqlite:///build/sites/A.db' or "
            "'postgresql+psycopg://user@host/database'.",
            name="db_url",
            value=url,
        ) from None
    if parsed.get_backend_name() != "sqlite":
        return _create_server_engine(parsed)
    database = parsed.database
    if database in (None, "", ":memory:"):
        engine = sa.create_engine(
            parsed,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )
    else:
        if not database.startswith("file:"):
            _create_private_file(Path(database))
        engine = sa.create_engine(
            parsed,
            connect_args={"check_same_thread": False},
            pool_size=_POOL_SIZE,
            max_overflow=_POOL_OVERFLOW,
        )
    sa.event.listen(engine, "connect", _configure_sqlite)
    sa.event.listen(engine, "begin", _begin_sqlite)
    return engine


def _create_server_engine(url: sa.URL) -> sa.Engine:
    shown = url.render_as_string(hide_password=True)
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except ImportError as error:
        raise ServiceSettingError(
            f"Database URL {shown!r} needs the Python driver {error.name!r}, which "
            f"is not installed; install it (pip install {error.name}) or use a "
            "SQLite URL such as 'sqlite:///build/sites/A.db'.",
            name="db_url",
            value=shown,
        ) from None
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as error:
        raise ServiceSettingError(
            f"Database URL {shown!r} cannot be used: {error}. Use a SQLite URL "
            "such as 'sqlite:///build/sites/A.db' or a database that SQLAlchemy "
            "supports.",
            name="db_url",
            value=shown,
        ) from None


def _create_private_file(path: Path) -> None:
    """Create a missing SQLite file readable by its owner only (mode 0600).

    SQLite gives its -wal and -shm files the database file's mode, so they
    are private too. The folder must exist: a mistyped path fails here
    instead of creating folders elsewhere.
    """
    if not path.parent.is_dir():
        raise ServiceSettingError(
            f"The folder {str(path.parent)!r} of the database file does not exist; "
            "create it first or give another path.",
            name="db_url",
            value=str(path),
        )
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as error:
        raise ServiceSettingError(
            f"Cannot create the database file {str(path)!r}: {error.strerror}. "
            "Check the folder's permissions or give another path.",
            name="db_url",
            value=str(path),
        ) from None
    os.close(descriptor)
    logger.info("Created database file %s (mode 0600)", path)


def _configure_sqlite(driver_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event, not the sqlite3 module, start transactions,
    # so that a transaction covers every statement from its first.
    driver_connection.isolation_level = None
    cursor = driver_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    # FULL syncs the write-ahead log at every commit, so an acknowledged upload
    # survives a crash of the machine, not only of the process.
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.close()


def _begin_sqlite(connection: sa.Connection) -> None:
    statement = connection.get_execution_options().get("sqlite_begin", "BEGIN")
    if statement is not None:
        connection.exec_driver_sql(statement)
