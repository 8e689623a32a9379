from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0007_patientdue"),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="notification_phones_removed",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
