"""Database triggers that refuse UPDATE and DELETE on the consent ledger.

The model already refuses them; the triggers hold for raw SQL and any other
client of the database too.
"""

from django.db import migrations

TABLE = "consent_consentevent"

SQLITE_UP = [
    f"""CREATE TRIGGER consent_event_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'consent ledger is append-only'); END;""",
    f"""CREATE TRIGGER consent_event_no_delete BEFORE DELETE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'consent ledger is append-only'); END;""",
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS consent_event_no_update;", "DROP TRIGGER IF EXISTS consent_event_no_delete;"]

POSTGRES_UP = [
    """CREATE OR REPLACE FUNCTION consent_ledger_append_only() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'consent ledger is append-only'; END; $$ LANGUAGE plpgsql;""",
    f"""CREATE TRIGGER consent_event_no_update BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION consent_ledger_append_only();""",
    f"""CREATE TRIGGER consent_event_no_truncate BEFORE TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger_append_only();""",
]
POSTGRES_DOWN = [
    f"DROP TRIGGER IF EXISTS consent_event_no_update ON {TABLE};",
    f"DROP TRIGGER IF EXISTS consent_event_no_truncate ON {TABLE};",
    "DROP FUNCTION IF EXISTS consent_ledger_append_only();",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_UP, "postgresql": POSTGRES_UP}),
            _run({"sqlite": SQLITE_DOWN, "postgresql": POSTGRES_DOWN}),
        )
    ]
