"""No two live sessions of a coach overlap, enforced by the database.

PostgreSQL: a GiST exclusion constraint over (coach, half-open time range), so back-to-back
sessions are allowed and concurrent inserts cannot both win.
SQLite: triggers that abort an insert or update creating an overlap. SQLite runs one write
transaction at a time (coachgate opens them IMMEDIATE), so the trigger's check and the write
cannot interleave with another writer.

Both raise an IntegrityError naming ``scheduling_session_no_overlap``; the booking service
turns it into 409 slot_taken. Cancelled sessions free their time.
"""

from typing import Any

from django.db import migrations

NAME = "scheduling_session_no_overlap"

PG_UP = f"""
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE scheduling_session ADD CONSTRAINT {NAME}
  EXCLUDE USING gist (coach_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&)
  WHERE (status <> 'cancelled');
"""
PG_DOWN = f"ALTER TABLE scheduling_session DROP CONSTRAINT IF EXISTS {NAME};"

_SQLITE_CHECK = f"""
  SELECT RAISE(ABORT, '{NAME}')
  WHERE EXISTS (
    SELECT 1 FROM scheduling_session s
    WHERE s.coach_id = NEW.coach_id AND s.id IS NOT NEW.id AND s.status <> 'cancelled'
      AND s.starts_at < NEW.ends_at AND s.ends_at > NEW.starts_at
  );
"""
SQLITE_UP = [
    f"""CREATE TRIGGER {NAME}_insert BEFORE INSERT ON scheduling_session
    WHEN NEW.status <> 'cancelled' BEGIN {_SQLITE_CHECK} END;""",
    f"""CREATE TRIGGER {NAME}_update
    BEFORE UPDATE OF coach_id, starts_at, ends_at, status ON scheduling_session
    WHEN NEW.status <> 'cancelled' BEGIN {_SQLITE_CHECK} END;""",
]
SQLITE_DOWN = [f"DROP TRIGGER IF EXISTS {NAME}_insert;", f"DROP TRIGGER IF EXISTS {NAME}_update;"]


def _run(statements_by_vendor: dict[str, str | list[str]]) -> Any:
    def apply(apps: Any, schema_editor: Any) -> None:
        vendor = schema_editor.connection.vendor
        if vendor not in statements_by_vendor:
            raise RuntimeError(f"coachgate supports SQLite and PostgreSQL, not {vendor}")
        statements = statements_by_vendor[vendor]
        for sql in [statements] if isinstance(statements, str) else statements:
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [("scheduling", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": PG_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": PG_DOWN, "sqlite": SQLITE_DOWN}),
        )
    ]
