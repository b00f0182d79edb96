from django.urls import path

from sandbox.views import sandbox_view

urlpatterns = [
    path("<str:platform>/<path:path>", sandbox_view, name="sandbox"),
]
