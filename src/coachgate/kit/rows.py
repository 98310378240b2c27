"""INSERTs for the hot path, with their SQL built once per model.

The ORM compiles an INSERT on every ``save()`` or ``bulk_create()``: for the small rows a
booking writes (its session, booking and audit event, its access row, charge, payment,
gate, confirmations and task rows) that compilation was most of a booking's CPU
(bench/bench_booking_race.py; the profile is in docs/benchmarks.md). ``insert`` builds the
statement once per (model, database vendor, row count) and fills it the way the ORM does:
each field's ``pre_save`` (``auto_now``, defaults already set on the instance) and
``get_db_prep_save``. It sends no model signals, so use it only for models nobody listens
to (a test checks that the ones used here have no receivers).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models import Field, Model
from django.db.models.fields import AutoFieldMixin

# Field classes whose database value is the Python value itself when it already has the
# field's type (int, str, bool): get_db_prep_save only checks and converts, and for these it
# was a third of insert()'s CPU. Exact classes only: a subclass may prepare differently.
_PLAIN: dict[type[Field[Any, Any]], type] = {
    models.IntegerField: int, models.BigIntegerField: int, models.SmallIntegerField: int,
    models.PositiveIntegerField: int, models.PositiveSmallIntegerField: int,
    models.PositiveBigIntegerField: int, models.BigAutoField: int, models.AutoField: int,
    models.CharField: str, models.TextField: str, models.BooleanField: bool,
}


def _plain_type(field: Field[Any, Any]) -> type | None:
    """The Python type whose values this field stores as they are, if any (a foreign key
    stores its target's)."""
    if isinstance(field, models.ForeignKey):
        return _plain_type(field.target_field)
    return _PLAIN.get(type(field))


@cache
def _statement(model: type[Model], vendor: str, count: int, skip_conflicts: bool
               ) -> tuple[str, tuple[tuple[Field[Any, Any], type | None], ...], bool]:
    """The statement (only quoted table and column names from the model's own metadata are
    put into it; every value is a parameter), its fields, whether the database makes the
    key."""
    meta = model._meta
    auto_pk = isinstance(meta.pk, AutoFieldMixin)
    fields = tuple(f for f in meta.concrete_fields if not (f.primary_key and auto_pk))
    qn = connections[DEFAULT_DB_ALIAS].ops.quote_name
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    columns = ", ".join(qn(f.column) for f in fields)
    sql = f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES {', '.join([one] * count)}"  # noqa: S608
    if skip_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if auto_pk and meta.pk is not None:
        sql += f" RETURNING {qn(meta.pk.column)}"
    return sql, tuple((f, _plain_type(f)) for f in fields), auto_pk


def insert(*objs: Model, skip_conflicts: bool = False) -> bool:
    """INSERT these new instances of one model in one statement, in the current
    transaction; auto primary keys are set on them as ``save()`` would. Returns True.

    ``skip_conflicts``: rows that clash with a unique constraint are left out (ON CONFLICT
    DO NOTHING, where ``bulk_create(ignore_conflicts=True)`` sets no keys); returns False if
    any was, and then sets no keys (which rows went in is the caller's to read)."""
    if not objs:
        return True
    model = type(objs[0])
    if any(type(o) is not model for o in objs):
        raise TypeError("insert() takes instances of one model")
    # The connection itself, not django.db.connection: every attribute read through that
    # proxy is a thread-local lookup, and preparing values reads it per field.
    connection = connections[DEFAULT_DB_ALIAS]
    sql, fields, auto_pk = _statement(model, connection.vendor, len(objs), skip_conflicts)
    params: list[Any] = []
    for obj in objs:
        for f, plain in fields:
            value = f.pre_save(obj, True)
            # bool is an int too: only the exact type passes as it is. (None is not plain
            # for every field: a JSONField stores it as JSON null.)
            if plain is not None and (value is None or type(value) is plain):
                params.append(value)
            else:
                params.append(f.get_db_prep_save(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        keys = cursor.fetchall() if auto_pk else []
        if skip_conflicts and (len(keys) if auto_pk else cursor.rowcount) < len(objs):
            return False
    for i, obj in enumerate(objs):
        if auto_pk:
            obj.pk = keys[i][0]
        obj._state.adding = False
        obj._state.db = connection.alias
    return True


ALL = ("*",)  # every concrete field of the part's model


@cache
def _select(parts: tuple[tuple[type[Model], tuple[str, ...]], ...], join_on: tuple[str, ...],
            where: str, vendor: str) -> tuple[str, tuple[tuple[Field[Any, Any], ...], ...]]:
    qn = connections[DEFAULT_DB_ALIAS].ops.quote_name
    # In the model's field order, as Model.from_db wants the values.
    fields = tuple(tuple(f for f in model._meta.concrete_fields
                         if names == ALL or f.name in names or f.attname in names)
                   for model, names in parts)
    columns = ", ".join(f"t{i}.{qn(f.column)}" for i, fs in enumerate(fields) for f in fs)
    first = parts[0][0]._meta
    sql = f"SELECT {columns} FROM {qn(first.db_table)} t0"  # noqa: S608
    for i, ((model, _), fk) in enumerate(zip(parts[1:], join_on, strict=True), start=1):
        target = model._meta
        pk_column = target.pk.column if target.pk is not None else "id"
        link = next(f for f in first.concrete_fields if f.name == fk)
        sql += f" JOIN {qn(target.db_table)} t{i} ON t{i}.{qn(pk_column)} = t0.{qn(link.column)}"
    key = next(f.column for f in first.concrete_fields
               if f.name == where or (f.primary_key and where == "pk"))
    return sql + f" WHERE t0.{qn(key)} = %s", fields


def get_by_pk(pk: Any, *parts: tuple[type[Model], tuple[str, ...]],
              join_on: tuple[str, ...] = ()) -> list[Model] | None:
    """The row of ``parts[0]``'s model with this key and, joined through its foreign keys
    ``join_on`` (one per further part), the rows it points to: one instance per part with
    only the named fields loaded (the rest deferred; ``ALL`` for every field), each value
    converted as the ORM's reads do; name the primary key among the fields. None if there
    is no such row. A read compiled once: the ORM's compilation of a small
    ``select_related(...).only(...)`` was most of its cost."""
    return get_unique("pk", pk, *parts, join_on=join_on)


def get_unique(field: str, value: Any, *parts: tuple[type[Model], tuple[str, ...]],
               join_on: tuple[str, ...] = ()) -> list[Model] | None:
    """``get_by_pk`` by another unique field of ``parts[0]``'s model."""
    connection = connections[DEFAULT_DB_ALIAS]  # see insert()
    key = (tuple(parts), tuple(join_on), field)
    # Per connection (each thread has its own): the converters are the connection's bound
    # methods, and finding them per field per read was a third of a token read's CPU.
    readers = connection.__dict__.setdefault("_kit_rows_readers", {})
    reader = readers.get(key)
    if reader is None:
        reader = readers[key] = _reader(connection, parts, join_on, field)
    sql, shapes = reader
    with connection.cursor() as cursor:
        cursor.execute(sql, [value])
        row = cursor.fetchone()
    if row is None:
        return None
    out: list[Model] = []
    at = 0
    for model, attnames, converting in shapes:
        values = list(row[at:at + len(attnames)])
        for i, col, converters in converting:
            value = values[i]
            for convert in converters:
                value = convert(value, col, connection)
            values[i] = value
        at += len(attnames)
        out.append(model.from_db(connection.alias, attnames, values))
    return out


_Shape = tuple[type[Model], list[str], list[tuple[int, Any, tuple[Any, ...]]]]


def _reader(connection: Any, parts: tuple[tuple[type[Model], tuple[str, ...]], ...],
            join_on: tuple[str, ...], field: str) -> tuple[str, list[_Shape]]:
    """get_unique's statement and, per part, its model, the loaded attribute names and the
    fields (by position) whose values the ORM's reads convert, with their converters."""
    sql, fields = _select(tuple(parts), tuple(join_on), field, connection.vendor)
    shapes: list[_Shape] = []
    for (model, _), fs in zip(parts, fields, strict=True):
        converting = []
        for i, f in enumerate(fs):
            col = f.get_col(model._meta.db_table)
            converters = (*connection.ops.get_db_converters(col),
                          *col.get_db_converters(connection))
            if converters:
                converting.append((i, col, converters))
        shapes.append((model, [f.attname for f in fs], converting))
    return sql, shapes
