from django.db import migrations

from sync.roles import apply_roles


class Migration(migrations.Migration):
    """Roles again, now that the HTTP log exists: everyone who reads jobs may read their exchanges."""

    dependencies = [
        ("connectors", "0002_ratelimitstate_httpexchange"),
        ("sync", "0003_document_history_without_payload"),
    ]

    operations = [migrations.RunPython(apply_roles, migrations.RunPython.noop)]
