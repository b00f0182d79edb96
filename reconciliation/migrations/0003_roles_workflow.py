from django.db import migrations

from sync.roles import apply_roles


class Migration(migrations.Migration):
    """Roles again, for notes on exceptions, reminder policies, reminders and alerts."""

    dependencies = [
        ("reconciliation", "0002_reconciliation_workflow"),
        ("sync", "0007_reconciliation_workflow"),
    ]

    operations = [migrations.RunPython(apply_roles, migrations.RunPython.noop)]
