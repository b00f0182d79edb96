from django import forms
from django.contrib import admin

from sandbox import webhooks
from sandbox.models import SandboxFault, SandboxHit, SandboxRecord, SandboxWebhook, SandboxWebhookDelivery


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


class SandboxWebhookForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")

    class Meta:
        model = SandboxWebhook
        fields = ["platform", "account", "url", "events", "payload_format", "secret", "description"]
        widgets = {"platform": forms.Select(choices=[(p, p) for p in sorted(webhooks.PLATFORMS)])}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["secret"].required = False
        self.fields["secret"].help_text = "Empty: the sandbox makes one, as the platform would."

    def clean(self):
        data = super().clean()
        try:
            webhooks.subscription_check(
                platform=data.get("platform") or "",
                url=data.get("url") or "",
                events=data.get("events") or [],
                payload_format=data.get("payload_format") or "",
            )
        except webhooks.WebhookSubscriptionError as exc:
            name = exc.field.split("[")[0]
            self.add_error(name if name in self.fields else None, str(exc))
        return data


@admin.register(SandboxWebhook)
class SandboxWebhookAdmin(admin.ModelAdmin):
    """Webhook subscriptions of the sandbox accounts (a Xero one is checked with "intent to receive")."""

    form = SandboxWebhookForm
    list_display = ["public_id", "platform", "account", "url", "status", "confirmed_at", "created_at"]
    list_filter = ["platform", "status"]
    search_fields = ["public_id", "account", "url"]
    readonly_fields = ["public_id", "status", "status_reason", "confirmed_at", "sequence", "created_at"]
    actions = ["send_intent"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            if obj.platform == "xero" and "url" in form.changed_data:
                webhooks.intent_request(obj)
            return
        hook = webhooks.webhook_subscribe(
            platform=obj.platform,
            account=obj.account,
            url=obj.url,
            events=obj.events or [],
            payload_format=obj.payload_format,
            secret=obj.secret,
            description=obj.description,
        )
        obj.pk, obj.public_id, obj.secret, obj.status = hook.pk, hook.public_id, hook.secret, hook.status

    @admin.action(description="Send intent to receive (Xero)")
    def send_intent(self, request, queryset):
        sent = 0
        for hook in queryset.filter(platform="xero"):
            webhooks.intent_request(hook)
            sent += 1
        self.message_user(request, f"Intent to receive sent to {sent} Xero subscription(s).")


@admin.register(SandboxWebhookDelivery)
class SandboxWebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["pk", "webhook", "kind", "state", "attempts", "last_status", "next_attempt_at"]
    list_filter = ["state", "kind", "webhook__platform"]
    list_select_related = ["webhook"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
