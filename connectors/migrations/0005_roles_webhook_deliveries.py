from django.db import migrations

from sync.roles import apply_roles


class Migration(migrations.Migration):
    """Roles again, so integration admins may read webhook deliveries. It runs after every app's
    latest roles migration, because applying the roles sets each group's whole permission list."""

    dependencies = [
        ("connectors", "0004_webhook_deliveries"),
        ("sync", "0007_reconciliation_workflow"),
        ("reconciliation", "0003_roles_workflow"),
    ]

    operations = [migrations.RunPython(apply_roles, migrations.RunPython.noop)]
