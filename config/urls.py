from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from config.views import healthz

admin.site.site_header = "Ledgerlink"
admin.site.site_title = "Ledgerlink"
admin.site.index_title = "Back office"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
