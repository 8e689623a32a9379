"""`consentry encryption rotate`: re-encrypt every stored secret with the newest key.

Rotation: put a new key first in CONSENTRY_ENCRYPTION_KEYS (old keys after it,
so everything stays readable), run this, then drop the old keys.
"""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from consentry.crypto import EncryptedTextField, fernet

BATCH = 500


def encrypted_columns():
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                yield model, field


def rotate() -> dict[str, int]:
    """Re-encrypt every encrypted column with the first key; returns rows rewritten per column."""
    keys = fernet()
    done: dict[str, int] = {}
    for model, field in encrypted_columns():
        table, column, pk = model._meta.db_table, field.column, model._meta.pk.column
        count, last = 0, None
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                where = f"WHERE {pk} > %s" if last is not None else ""
                cursor.execute(
                    f"SELECT {pk}, {column} FROM {table} {where} ORDER BY {pk} LIMIT {BATCH}",
                    [last] if last is not None else [],
                )
                rows = cursor.fetchall()
                if not rows:
                    break
                # MultiFernet.rotate decrypts with whichever key fits and
                # encrypts with the first, keeping the original timestamp.
                updates = [(keys.rotate(value.encode()).decode(), key) for key, value in rows if value]
                cursor.executemany(f"UPDATE {table} SET {column} = %s WHERE {pk} = %s", updates)
                count += len(updates)
                last = rows[-1][0]
        done[f"{model._meta.label}.{field.name}"] = count
    return done


class Command(BaseCommand):
    help = "Manage encryption at rest."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("rotate", help="Re-encrypt every stored secret with the first key of CONSENTRY_ENCRYPTION_KEYS.")

    def handle(self, *args, action, **options):
        for column, count in rotate().items():
            self.stdout.write(f"{column}: {count} re-encrypted")
