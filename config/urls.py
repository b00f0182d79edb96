from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config.views import healthz
from connectors.inbound import webhook_receive

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("connectors/", include("connectors.urls")),
    path("webhooks/<int:connection_id>/", webhook_receive, name="webhook_receive"),
    path("sandbox/", include("sandbox.urls")),
    path("api/v1/", include("api.urls")),
]
