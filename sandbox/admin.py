from django.contrib import admin

from sandbox.models import SandboxFault, SandboxHit, SandboxRecord


@admin.register(SandboxFault)
class SandboxFaultAdmin(admin.ModelAdmin):
    list_display = ["platform", "kind", "method", "path_pattern", "delay_ms", "probability", "remaining"]
    list_filter = ["platform", "kind"]


@admin.register(SandboxRecord)
class SandboxRecordAdmin(admin.ModelAdmin):
    list_display = ["platform", "account", "kind", "record_id", "version", "deleted", "updated_at"]
    list_filter = ["platform", "kind", "deleted"]
    search_fields = ["record_id", "account"]
    readonly_fields = ["platform", "account", "kind", "record_id", "version", "created_at", "updated_at"]


@admin.register(SandboxHit)
class SandboxHitAdmin(admin.ModelAdmin):
    list_display = ["platform", "account", "method", "path", "status", "at"]
    list_filter = ["platform", "status"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
