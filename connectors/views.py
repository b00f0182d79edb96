"""The OAuth authorization-code flow, started from a connection's admin page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse

from connectors import oauth
from connectors.base import ConnectorError
from connectors.models import Connection

SESSION_KEY = "ledgerlink_oauth"


def _callback_uri(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("connectors:oauth_callback"))


def _change_page(connection_id: int) -> str:
    return reverse("admin:connectors_connection_change", args=[connection_id])


@staff_member_required
def oauth_start(request: HttpRequest, pk: int) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseBadRequest("use the Connect button")
    if not request.user.has_perm("connectors.change_connection"):
        raise PermissionDenied
    connection = get_object_or_404(Connection, pk=pk)
    try:
        url, state = oauth.authorization_url(connection, redirect_uri=_callback_uri(request))
    except ConnectorError as exc:
        messages.error(request, str(exc))
        return redirect(_change_page(connection.pk))
    request.session[SESSION_KEY] = {"state": state, "connection": connection.pk}
    return redirect(url)


@staff_member_required
def oauth_callback(request: HttpRequest) -> HttpResponse:
    pending = request.session.pop(SESSION_KEY, None)
    if not pending or request.GET.get("state") != pending["state"]:
        return HttpResponseBadRequest("unknown or expired authorisation attempt: start again with Connect")
    if not request.user.has_perm("connectors.change_connection"):
        raise PermissionDenied
    connection = get_object_or_404(Connection, pk=pending["connection"])
    if request.GET.get("error"):
        messages.error(request, f"{connection.platform_label} refused access: {request.GET['error']}")
        return redirect(_change_page(connection.pk))
    try:
        oauth.authorization_complete(
            connection,
            redirect_uri=_callback_uri(request),
            params=request.GET.dict(),
        )
    except ConnectorError as exc:
        messages.error(request, f"Could not connect {connection.name}: {exc}")
    else:
        messages.success(request, f"{connection.name} is connected to {connection.platform_label}.")
    return redirect(_change_page(connection.pk))
