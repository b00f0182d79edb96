from django.apps import AppConfig


class SyncConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "sync"
    verbose_name = "Sync"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from sync.models import SyncProfile
        from sync.schedules import profile_saved

        post_save.connect(profile_saved, sender=SyncProfile, dispatch_uid="sync-profile-schedule")
        post_delete.connect(profile_saved, sender=SyncProfile, dispatch_uid="sync-profile-schedule-delete")
