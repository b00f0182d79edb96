"""The three roles, as Django groups, and the permissions each needs. Applied by a migration."""

from __future__ import annotations

from typing import Any

INTEGRATION_ADMINS = "Integration admins"
FINANCE_STAFF = "Finance staff"
ACCOUNTANTS = "Accountants"

_DOCUMENTS = [
    "sync.customer",
    "sync.invoice",
    "sync.invoiceline",
    "sync.payment",
    "sync.paymentallocation",
    "sync.creditnote",
    "sync.creditnoteline",
    "sync.creditallocation",
]
_JOBS_READ = [
    "sync.view_syncjob",
    "sync.view_syncattempt",
    "sync.view_binding",
    "sync.view_pushoperation",
    "sync.view_synccursor",
    "sync.view_referencedata",
    "connectors.view_httpexchange",
]

_FINANCE = [
    *[f"{model.replace('.', '.view_')}" for model in _DOCUMENTS],
    *[f"{model.replace('.', '.change_')}" for model in _DOCUMENTS],
    *_JOBS_READ,
    "connectors.view_connection",
    "sync.view_syncprofile",
    "sync.view_mappingset",
    "sync.view_mappingrow",
    "reconciliation.view_reconciliationexception",
    "reconciliation.change_reconciliationexception",
    "reconciliation.view_tag",
    "reconciliation.add_tag",
    "reconciliation.view_override",
    "reconciliation.add_override",  # propose
    "reconciliation.view_exceptionnote",
    "reconciliation.add_exceptionnote",
    "reconciliation.view_reminderpolicy",
    "reconciliation.view_reminder",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    INTEGRATION_ADMINS: [
        *[f"connectors.{action}_connection" for action in ("add", "change", "delete", "view")],
        "connectors.view_webhookdelivery",
        *[f"api.{action}_apiclient" for action in ("add", "change", "delete", "view")],
        *[
            f"sync.{action}_{model}"
            for model in ("syncprofile", "mappingset", "mappingrow")
            for action in ("add", "change", "delete", "view")
        ],
        *_JOBS_READ,
        "sync.change_syncjob",  # run now, cancel, retry
        *[f"{model.replace('.', '.view_')}" for model in _DOCUMENTS],
        "reconciliation.view_reconciliationexception",
        *[f"reconciliation.{action}_reminderpolicy" for action in ("add", "change", "delete", "view")],
        "reconciliation.view_reminder",
        "reconciliation.view_alert",
    ],
    FINANCE_STAFF: _FINANCE,
    ACCOUNTANTS: [*_FINANCE, "reconciliation.approve_override"],
}


def apply_roles(apps: Any, schema_editor: Any = None) -> None:
    """Create the groups and set exactly the permissions listed above (idempotent)."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None

    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for group_name, codes in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=group_name)
        wanted = []
        for code in codes:
            app_label, codename = code.split(".")
            try:
                apps.get_model(app_label, codename.split("_", 1)[1])
            except LookupError:
                continue  # an early migration: the model comes later, and applies the roles again
            wanted.append(permission_model.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)
