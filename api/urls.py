"""/api/v1/: one view per operation; the schema at schema/, Swagger UI at docs/, Redoc at redoc/."""

from __future__ import annotations

from django.urls import path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from api.views import reconciliation as rec
from api.views import sync
from api.views.documents import document_views
from api.views.meta import MeApi, NotFoundApi

app_name = "api"


class IdConverter:
    """A database id: at most 18 digits, so a longer number is a 404, never an overflow in the database."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")


def _documents(object_type: str, prefix: str) -> list:
    views = document_views(object_type)
    return [
        path(f"{prefix}/", views["list"].as_view(), name=f"{object_type}-list"),
        path(f"{prefix}/bulk/", views["bulk"].as_view(), name=f"{object_type}-bulk"),
        path(f"{prefix}/<id:pk>/", views["detail"].as_view(), name=f"{object_type}-detail"),
        path(f"{prefix}/<id:pk>/void/", views["void"].as_view(), name=f"{object_type}-void"),
    ]


urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    path("me/", MeApi.as_view(), name="me"),
    *_documents("invoice", "invoices"),
    *_documents("payment", "payments"),
    *_documents("credit_note", "credit-notes"),
    path("sync-profiles/", sync.SyncProfileListApi.as_view(), name="profile-list"),
    path("sync-profiles/<id:pk>/", sync.SyncProfileDetailApi.as_view(), name="profile-detail"),
    path("sync-profiles/<id:pk>/run/", sync.SyncProfileRunApi.as_view(), name="profile-run"),
    path("sync-profiles/<id:pk>/dry-run/", sync.SyncProfileDryRunApi.as_view(), name="profile-dry-run"),
    path("jobs/", sync.SyncJobListApi.as_view(), name="job-list"),
    path("jobs/<id:pk>/", sync.SyncJobDetailApi.as_view(), name="job-detail"),
    path("bindings/lookup/", sync.BindingLookupApi.as_view(), name="binding-lookup"),
    path("lineage/", sync.LineageApi.as_view(), name="lineage"),
    path("connections/", sync.ConnectionListApi.as_view(), name="connection-list"),
    path("connections/<id:pk>/", sync.ConnectionDetailApi.as_view(), name="connection-detail"),
    path("connections/<id:pk>/test/", sync.ConnectionTestApi.as_view(), name="connection-test"),
    path("exceptions/", rec.ExceptionListApi.as_view(), name="exception-list"),
    path("exceptions/<id:pk>/", rec.ExceptionDetailApi.as_view(), name="exception-detail"),
    path("exceptions/<id:pk>/assign/", rec.ExceptionAssignApi.as_view(), name="exception-assign"),
    path("exceptions/<id:pk>/move/", rec.ExceptionMoveApi.as_view(), name="exception-move"),
    path("exceptions/<id:pk>/resolve/", rec.ExceptionResolveApi.as_view(), name="exception-resolve"),
    path("exceptions/<id:pk>/ignore/", rec.ExceptionIgnoreApi.as_view(), name="exception-ignore"),
    path("exceptions/<id:pk>/tag/", rec.ExceptionTagApi.as_view(), name="exception-tag"),
    path("exceptions/<id:pk>/notes/", rec.ExceptionNoteApi.as_view(), name="exception-note"),
    path("overrides/", rec.OverrideListApi.as_view(), name="override-list"),
    path("overrides/<id:pk>/", rec.OverrideDetailApi.as_view(), name="override-detail"),
    path("overrides/<id:pk>/approve/", rec.OverrideApproveApi.as_view(), name="override-approve"),
    path("overrides/<id:pk>/reject/", rec.OverrideRejectApi.as_view(), name="override-reject"),
    path("overrides/<id:pk>/revert/", rec.OverrideRevertApi.as_view(), name="override-revert"),
    re_path(r"^.*$", NotFoundApi.as_view(), name="not-found"),
]
