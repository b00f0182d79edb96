"""The admin site, whose index is the finance dashboard."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse


class LedgerlinkAdminSite(admin.AdminSite):
    site_header = "Ledgerlink"
    site_title = "Ledgerlink"
    index_title = "Back office"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        extra_context = extra_context or {}
        if request.user.has_perm("reconciliation.view_reconciliationexception"):
            from reconciliation.selectors import dashboard_summary

            extra_context["dashboard"] = dashboard_summary(user=request.user)
        return super().index(request, extra_context)
