from django.db import migrations

from sync.roles import apply_roles


class Migration(migrations.Migration):
    """Roles again: integration admins manage API clients."""

    dependencies = [
        ("api", "0001_initial"),
        ("reconciliation", "0003_roles_workflow"),
        ("sync", "0007_reconciliation_workflow"),
    ]

    operations = [migrations.RunPython(apply_roles, migrations.RunPython.noop)]
