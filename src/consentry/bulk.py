"""Many new rows of one table in one statement: what ``bulk_create`` does, for tens of thousands of rows.

``bulk_create`` builds a model instance and a compiled placeholder for every value; for an import
of 100,000 patients that is most of the time (``bench/import.py``). ``insert_rows`` prepares each
value with its own field (``get_db_prep_save``, so every backend gets what it expects) and hands
the rows to the driver's ``executemany``. No signals, no ``save()``, no ids returned: callers read
back what they need.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import Field, Model


def insert_rows(model: type[Model], rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows of ``model``: each a dict of field attributes (``practice_id``, not ``practice``),
    the same keys in every row. Fields not given take their defaults, prepared once (``auto_now``
    and ``auto_now_add`` fields: now); an auto-increment primary key is the database's."""
    if not rows:
        return
    keys, now = set(rows[0]), datetime.now(UTC)
    given, constant = [], []
    for f in model._meta.concrete_fields:
        if f.attname in keys:
            given.append(f)
        elif not f.primary_key:
            default = now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default()
            constant.append((f, f.get_db_prep_save(default, connection)))
    quote = connection.ops.quote_name
    columns = [f.column for f in given] + [f.column for f, _ in constant]
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    tail = tuple(value for _, value in constant)
    preps = [_prepare(f) for f in given]
    params = [tuple(prep(row[f.attname]) for f, prep in zip(given, preps, strict=True)) + tail for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _prepare(f: Field) -> Callable[[Any], Any]:
    """``f``'s preparation of a value for the database, remembered by value: most columns repeat a few
    values (a practice's id, a line type, a state), and preparing one costs microseconds."""
    known: dict[tuple[type, Any], Any] = {}

    def prep(value: Any) -> Any:
        try:
            key = (type(value), value)
            return known[key]
        except KeyError:
            known[key] = prepared = f.get_db_prep_save(value, connection)
            return prepared
        except TypeError:  # not hashable (a JSON value): prepared each time
            return f.get_db_prep_save(value, connection)

    return prep


# Django's SQLite cursor turns every "%s" of a statement into "?" at each call (a regular expression over the
# whole statement); the statements run most often are turned once here, by their text.
_FORMAT = re.compile(r"(?<!%)%s")
_QMARK: dict[str, str] = {}


def execute(cursor: Any, sql: str, params: Sequence[Any]) -> None:
    """Run one statement on a Django cursor; on SQLite straight through the driver, unless statements are
    being logged (DEBUG, tests counting queries) or wrapped (``execute_wrapper``): those go through Django.
    Errors are Django's either way (``IntegrityError`` for a unique row again)."""
    db = cursor.db
    if db.vendor != "sqlite" or db.queries_logged or db.execute_wrappers:
        cursor.execute(sql, params)
        return
    if (qmark := _QMARK.get(sql)) is None:
        if len(_QMARK) >= 64:
            _QMARK.clear()
        qmark = _QMARK[sql] = _FORMAT.sub("?", sql).replace("%%", "%")
    db.validate_no_broken_transaction()
    with db.wrap_database_errors:
        sqlite3.Cursor.execute(cursor.cursor, qmark, params)
