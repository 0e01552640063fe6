"""Storing tables in a database through SQLAlchemy, one transaction per load."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from medkit._codebook import TEXT_DTYPE, Codebook
from medkit._specs import HOSPITAL

logger = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///build/medkit.db"
"""SQLite file ``build/medkit.db``, relative to the working directory."""

# SQLite before 3.32 accepts at most 999 parameters in one statement
# (SQLITE_MAX_VARIABLE_NUMBER).
_SQLITE_MAX_PARAMETERS = 999
_ROWS_PER_BATCH = 100_000


def store(
    tables: Mapping[str, pd.DataFrame],
    url: str | sa.Engine = DEFAULT_URL,
    *,
    keys: Mapping[str, str] | None = None,
) -> list[str]:
    """Write tables to a database in one transaction, replacing tables of the same name.

    Storing the same frames twice gives the same database, because every table
    is dropped and written again. If any step fails, the transaction is rolled
    back and the database keeps its previous tables.

    NOTE: Only databases with transactional DDL, such as SQLite and PostgreSQL,
    can roll back a DROP TABLE. On MySQL a failed load can leave tables dropped.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Table name to frame. The index is not stored. Dates are stored as ISO
        text (``YYYY-MM-DD``), integers as INTEGER, floats as REAL and missing
        values as NULL.
    url : str or sqlalchemy.Engine, default=DEFAULT_URL
        Any SQLAlchemy database URL or engine. The folder of a SQLite file is
        created if needed.
    keys : mapping of str to str, optional
        Table name to its primary key column.

    Returns
    -------
    list of str
        The names of the tables written, in order.

    Examples
    --------
    >>> store({"patients": frame}, "sqlite:///build/course.db")  # doctest: +SKIP
    ['patients']
    """
    keys = keys or {}
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            _begin_sqlite_transaction(connection)
            for name, frame in tables.items():
                _replace_table(connection, name, frame, keys.get(name))
    finally:
        if engine is not url:
            engine.dispose()
    logger.info("Stored %d tables in %s", len(tables), _safe_url(engine))
    return list(tables)


def load_tables(
    url: str | sa.Engine = DEFAULT_URL,
    tables: Sequence[str] = ("patients", "visits", "labs"),
    *,
    decode: bool = True,
) -> dict[str, pd.DataFrame]:
    """Read stored tables back, decoded and typed like the clean frames.

    Parameters
    ----------
    url : str or sqlalchemy.Engine, default=DEFAULT_URL
        The database.
    tables : sequence of str, default=("patients", "visits", "labs")
        Tables to read.
    decode : bool, default=True
        Replace codes by labels with the stored ``codebook`` table.

    Returns
    -------
    dict of str to pandas.DataFrame
        Each table with a fresh index. Columns of the hospital tables get the
        dtypes that :func:`medkit.digitize.clean` gives them.
    """
    engine = _engine(url, create_folder=False)
    try:
        with engine.connect() as connection:
            frames = {name: pd.read_sql_table(name, connection) for name in tables}
            codebook = None
            if decode and sa.inspect(connection).has_table("codebook"):
                codebook = Codebook(pd.read_sql_table("codebook", connection))
    finally:
        if engine is not url:
            engine.dispose()
    for name, frame in frames.items():
        if codebook is not None:
            frame = codebook.decode(frame, table=name)
        frames[name] = _typed(frame, name, decoded=codebook is not None)
    return frames


def _engine(url: str | sa.Engine, create_folder: bool = True) -> sa.Engine:
    if isinstance(url, sa.Engine):
        return url
    parsed = sa.make_url(url)
    database = parsed.database
    if create_folder and parsed.get_backend_name() == "sqlite" and database:
        if database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(parsed)


def _begin_sqlite_transaction(connection: sa.Connection) -> None:
    # Python's sqlite3, in its default mode, opens a transaction only before
    # INSERT, UPDATE or DELETE, so DROP and CREATE would commit on their own.
    # An explicit BEGIN puts them in the same transaction as the inserts.
    if connection.dialect.name != "sqlite":
        return
    driver = connection.connection.driver_connection
    if not getattr(driver, "in_transaction", True):
        connection.exec_driver_sql("BEGIN")


def _sql_type(series: pd.Series) -> sa.types.TypeEngine:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        return sa.Integer()
    if pd.api.types.is_float_dtype(series):
        return sa.Float()
    return sa.Text()


def _replace_table(
    connection: sa.Connection, name: str, frame: pd.DataFrame, key: str | None
) -> None:
    metadata = sa.MetaData()
    table = sa.Table(
        name,
        metadata,
        *(
            sa.Column(str(column), _sql_type(frame[column]), primary_key=column == key)
            for column in frame.columns
        ),
    )
    table.drop(connection, checkfirst=True)
    table.create(connection)

    # Rows are converted to Python values one batch at a time, which bounds the
    # memory used.
    # NOTE: Inserting the 1,021,468 visits of bench/digitize.py takes SQLite 3.40
    # about 0.9 s of CPU time, as long as pandas.read_csv takes to read them. With
    # reading and cleaning, that pipeline measures about four times read_csv.
    batches = range(0, len(frame), _ROWS_PER_BATCH)
    if connection.dialect.name == "sqlite":
        quoted = connection.dialect.identifier_preparer.quote(name)
        for start in batches:
            for statement, parameters in _sqlite_statements(frame, quoted, start):
                connection.exec_driver_sql(statement, parameters)
    else:
        for start in batches:
            connection.execute(table.insert(), _row_dicts(frame, start))
    logger.debug("Wrote table %s: %d rows", name, len(frame))


def _batch_columns(frame: pd.DataFrame, start: int) -> list[list]:
    batch = frame.iloc[start : start + _ROWS_PER_BATCH]
    return [_python_values(batch[column]) for column in batch.columns]


def _row_dicts(frame: pd.DataFrame, start: int) -> list[dict]:
    names = [str(column) for column in frame.columns]
    columns = _batch_columns(frame, start)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _sqlite_statements(
    frame: pd.DataFrame, quoted: str, start: int
) -> list[tuple[str, list[tuple]]]:
    """Return INSERT statements and their parameters for one batch of rows.

    One INSERT with many VALUES tuples binds faster than one INSERT per row.
    """
    columns = _batch_columns(frame, start)
    width = len(columns)
    rows = len(columns[0]) if columns else 0
    per_statement = max(1, min(100, _SQLITE_MAX_PARAMETERS // max(width, 1)))
    placeholders = "(" + ", ".join("?" * width) + ")"
    statements = []

    whole = rows - rows % per_statement
    if whole:
        flat: list = [None] * (whole * width)
        for position, values in enumerate(columns):
            flat[position::width] = values[:whole]
        size = per_statement * width
        parameters = [tuple(flat[i : i + size]) for i in range(0, len(flat), size)]
        many = ", ".join([placeholders] * per_statement)
        statements.append((f"INSERT INTO {quoted} VALUES {many}", parameters))
    if rows > whole:
        tail = list(zip(*(values[whole:] for values in columns), strict=True))
        statements.append((f"INSERT INTO {quoted} VALUES {placeholders}", tail))
    return statements


def _python_values(series: pd.Series) -> list:
    """Return the values as Python objects that every DB-API driver binds."""
    if pd.api.types.is_datetime64_any_dtype(series):
        codes, days = pd.factorize(series)
        iso = np.append(np.asarray(days.strftime("%Y-%m-%d"), dtype=object), None)
        if (days != days.normalize()).any():
            iso[:-1] = days.strftime("%Y-%m-%dT%H:%M:%S")
        return iso[codes].tolist()
    if series.hasnans:
        return series.to_numpy(dtype=object, na_value=None).tolist()
    if pd.api.types.is_integer_dtype(series):
        return series.to_numpy(dtype=np.int64).tolist()
    return series.to_numpy().tolist()


def _typed(frame: pd.DataFrame, name: str, decoded: bool) -> pd.DataFrame:
    spec = HOSPITAL.get(name)
    if spec is None:
        return frame
    for column, kind in spec.kinds.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        if kind == "date":
            dates = pd.to_datetime(values, format="%Y-%m-%d")
            frame[column] = dates.astype("datetime64[ns]")
        elif kind == "integer" or (column in spec.categorical and not decoded):
            frame[column] = values.astype("Int64")
        elif kind == "number":
            frame[column] = values.astype("float64")
        else:
            text = values.to_numpy(dtype=object)
            text[values.isna().to_numpy()] = np.nan
            frame[column] = pd.array(text, dtype=TEXT_DTYPE)
    return frame


def _safe_url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
