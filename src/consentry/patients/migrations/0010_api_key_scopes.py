from django.db import migrations, models

EVERY_SCOPE = ["read", "send", "manage"]


def keys_keep_what_they_could_do(apps, schema_editor):
    """Keys made before scopes could do everything: they keep every scope."""
    apps.get_model("patients", "ApiKey").objects.update(scopes=EVERY_SCOPE)


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0009_ehr_owned_preferences_tags_last_visit"),
    ]

    operations = [
        migrations.AddField(model_name="apikey", name="scopes", field=models.JSONField(default=list)),
        migrations.RunPython(keys_keep_what_they_could_do, migrations.RunPython.noop),
    ]
