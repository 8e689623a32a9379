"""Notification settings patients already had become ledger events, so the ledger implies them.

This runs the ledger's own code (``record_notification_baselines``), not the historical models: the
events must be hashed and chained exactly as every other event. On a new database it does nothing.
"""

from django.db import migrations


def baseline(apps, schema_editor):
    from consentry.consent.ledger import record_notification_baselines

    record_notification_baselines(actor="upgrade to ledger-recorded notification settings")


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0006_notification_settings_subject"),
        ("patients", "0008_patient_notification_phones_removed"),
    ]

    operations = [migrations.RunPython(baseline, migrations.RunPython.noop)]
