from django.db import migrations

from sync.roles import apply_roles


class Migration(migrations.Migration):
    """Roles again, for the outbox, cursors and reference data: everyone who reads jobs may read them."""

    dependencies = [("sync", "0005_engine")]

    operations = [migrations.RunPython(apply_roles, migrations.RunPython.noop)]
