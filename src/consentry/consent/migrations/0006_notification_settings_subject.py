from django.db import migrations, models


class Migration(migrations.Migration):
    """A patient's notification settings become a ledger subject (no schema change: the choices only)."""

    dependencies = [
        ("consent", "0005_consent_note"),
    ]

    operations = [
        migrations.AlterField(
            model_name="consentevent",
            name="subject",
            field=models.CharField(
                choices=[
                    ("sms", "Sms"),
                    ("email", "Email"),
                    ("block", "Block"),
                    ("marketing", "Marketing"),
                    ("do_not_contact", "Do Not Contact"),
                    ("notifications", "Notifications"),
                ],
                max_length=16,
            ),
        ),
    ]
