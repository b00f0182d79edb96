from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config.views import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("connectors/", include("connectors.urls")),
    path("sandbox/", include("sandbox.urls")),
]
