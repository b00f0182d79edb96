from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save, pre_save

        from connectors.models import Connection
        from reconciliation import alerts, checks, reminders
        from sync import jobs
        from sync.models import SyncJob

        jobs.handler_register(SyncJob.Kind.REMIND, reminders.reminders_job)
        jobs.handler_register(SyncJob.Kind.RECONCILE, checks.reconcile_job)
        jobs.job_failed.connect(alerts.on_job_failed, dispatch_uid="reconciliation-alert-job-failed")
        pre_save.connect(alerts.on_connection_pre_save, sender=Connection, dispatch_uid="alert-health-pre")
        post_save.connect(alerts.on_connection_post_save, sender=Connection, dispatch_uid="alert-health")
