"""API clients in the admin: integration admins create them, see each new token once, issue and revoke.

A client acts for a person only once that person confirms the link from their own session (the page
`<client>/confirm-person/`, which the client's page links to), or when a superuser or the person
themselves made the link."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from knox.models import AuthToken

from api.models import ApiClient, Scope
from api.services import (
    api_client_configure,
    api_client_create,
    api_client_person_confirm,
    api_client_person_release,
    api_token_issue,
    api_tokens_revoke,
)
from config.history import HistoryAdmin


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Approving overrides also needs a linked person with the approve permission, who has "
        "confirmed the link.",
    )

    class Meta:
        model = ApiClient
        fields = ["name", "scopes", "person", "throttle_rate", "active"]


@admin.register(ApiClient)
class ApiClientAdmin(HistoryAdmin):
    form = ApiClientForm
    change_form_template = "admin/api/apiclient/change_form.html"
    list_display = ["name", "active", "scope_list", "acts_for", "token_count", "last_used_at", "created_at"]
    list_select_related = ["person"]
    list_filter = ["active"]
    search_fields = ["name"]
    readonly_fields = [
        "link",
        "service_user",
        "connection",
        "tokens",
        "last_used_at",
        "created_by",
        "created_at",
        "configured_by",
    ]
    raw_id_fields = ["person"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiClient]:
        return super().get_queryset(request).annotate(_tokens=Count("service_user__auth_token_set"))

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        main = (None, {"fields": ["name", "scopes", "person", "throttle_rate", "active"]})
        if obj is None:
            return [main]
        return [main, ("Identity", {"fields": self.readonly_fields})]

    @admin.display(description="Acts for", ordering="person__username")
    def acts_for(self, obj: ApiClient) -> str:
        if obj.person_id is None:
            return "its service user"
        return str(obj.person) if obj.person_confirmed else f"{obj.person} (waiting for them to confirm)"

    @admin.display(description="Linked person")
    def link(self, obj: ApiClient) -> str:
        if obj.person_id is None:
            return "Nobody: the client acts as its service user."
        if obj.person_confirmed:
            return format_html(
                "Acts for {} (confirmed by {} on {}).",
                obj.person,
                obj.person_confirmed_by or "a user since deleted",
                f"{obj.person_confirmed_at:%Y-%m-%d %H:%M}",
            )
        url = reverse("admin:api_apiclient_confirm_person", args=[obj.pk])
        return format_html(
            'Waiting for {} to confirm, signed in as themselves, at <a href="{}">{}</a>. Until then the '
            "client acts as its service user.",
            obj.person,
            url,
            url,
        )

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiClient) -> str:
        return ", ".join(obj.scopes or []) or "none"

    @admin.display(description="Tokens", ordering="_tokens")
    def token_count(self, obj: ApiClient) -> int:
        return getattr(obj, "_tokens", 0)

    @admin.display(description="Tokens (stored hashed; only their first characters are known)")
    def tokens(self, obj: ApiClient) -> str:
        rows = AuthToken.objects.filter(user=obj.service_user).order_by("created")
        return (
            format_html_join(
                "",
                "<div><code>{}…</code> issued {}</div>",
                ((t.token_key, f"{t.created:%Y-%m-%d %H:%M}") for t in rows),
            )
            or "none"
        )

    def save_model(self, request: HttpRequest, obj: ApiClient, form: forms.ModelForm, change: bool) -> None:
        if change:
            api_client_configure(obj, by=request.user)
            return
        client, token = api_client_create(
            name=obj.name,
            scopes=obj.scopes,
            person=obj.person,
            throttle_rate=obj.throttle_rate,
            active=obj.active,
            by=request.user,
        )
        obj.pk, obj.service_user, obj.connection = client.pk, client.service_user, client.connection
        request._new_api_token = token  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiClient, post_url_continue: Any = None
    ) -> HttpResponse:
        token = getattr(request, "_new_api_token", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        return self._token_page(request, obj, token)

    def _token_page(self, request: HttpRequest, client: ApiClient, token: str) -> HttpResponse:
        # Rendered in the answer itself, never put in a message or the session: it exists only here.
        context = {
            **self.admin_site.each_context(request),
            "client": client,
            "token": token,
            "title": f"Token for {client.name}",
            "opts": self.model._meta,
        }
        response = TemplateResponse(request, "admin/api/apiclient/token.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:pk>/new-token/",
                self.admin_site.admin_view(self.new_token_view),
                name="api_apiclient_new_token",
            ),
            path(
                "<int:pk>/revoke-tokens/",
                self.admin_site.admin_view(self.revoke_view),
                name="api_apiclient_revoke_tokens",
            ),
            path(
                "<int:pk>/confirm-person/",
                self.admin_site.admin_view(self.confirm_person_view),
                name="api_apiclient_confirm_person",
            ),
            path(
                "<int:pk>/release-person/",
                self.admin_site.admin_view(self.release_person_view),
                name="api_apiclient_release_person",
            ),
            *super().get_urls(),
        ]

    def _client_for_change(self, request: HttpRequest, pk: int) -> ApiClient:
        client = get_object_or_404(ApiClient.objects.select_related("service_user"), pk=pk)
        if not self.has_change_permission(request, client):
            raise PermissionDenied
        return client

    def _confirm(self, request: HttpRequest, client: ApiClient, title: str, question: str, label: str) -> Any:
        context = {
            **self.admin_site.each_context(request),
            "client": client,
            "title": title,
            "question": question,
            "confirm_label": label,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/api/apiclient/confirm.html", context)

    def new_token_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        client = self._client_for_change(request, pk)
        if request.method != "POST":
            return self._confirm(
                request,
                client,
                f"Issue a new token for {client.name}?",
                "The tokens it has keep working until you revoke them.",
                "Yes, issue a token",
            )
        return self._token_page(request, client, api_token_issue(client=client, by=request.user))

    def revoke_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        client = self._client_for_change(request, pk)
        if request.method != "POST":
            return self._confirm(
                request,
                client,
                f"Revoke every token of {client.name}?",
                "Calls with them are refused at once. The client stays; issue a new token to "
                "let it in again.",
                "Yes, revoke them",
            )
        revoked = api_tokens_revoke(client=client)
        self.message_user(request, f"Revoked {revoked} token(s) of {client.name}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:api_apiclient_change", args=[client.pk]))

    def _back(self, request: HttpRequest, client: ApiClient) -> HttpResponseRedirect:
        if self.has_view_or_change_permission(request, client):
            return HttpResponseRedirect(reverse("admin:api_apiclient_change", args=[client.pk]))
        return HttpResponseRedirect(reverse("admin:index"))

    def confirm_person_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The linked person (or a superuser) confirms that the client acts for them; nobody else can."""
        client = get_object_or_404(
            ApiClient.objects.select_related("person", "created_by", "configured_by", "service_user"), pk=pk
        )
        if client.person_id is None or not (request.user.pk == client.person_id or request.user.is_superuser):
            raise PermissionDenied
        if request.method == "POST":
            if request.POST.get("decline"):
                api_client_person_release(client, by=request.user)
                self.message_user(request, f"{client.name} no longer acts for you.", messages.SUCCESS)
            elif api_client_person_confirm(client, by=request.user):
                self.message_user(request, f"{client.name} now acts for {client.person}.", messages.SUCCESS)
            return self._back(request, client)
        holders = sorted(
            {str(user) for user in (client.created_by, client.configured_by) if user is not None}
            - {str(client.person)}
        )
        context = {
            **self.admin_site.each_context(request),
            "client": client,
            "holders": holders,
            "confirmed": client.person_confirmed,
            "title": f"Let {client.name} act for {client.person}?",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/api/apiclient/confirm_person.html", context)

    def release_person_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        client = self._client_for_change(request, pk)
        if request.method != "POST":
            return self._confirm(
                request,
                client,
                f"Unlink {client.person} from {client.name}?",
                "The client then acts as its service user, which may not approve or reject overrides.",
                "Yes, unlink",
            )
        api_client_person_release(client, by=request.user)
        self.message_user(request, f"{client.name} acts as its service user now.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:api_apiclient_change", args=[client.pk]))
