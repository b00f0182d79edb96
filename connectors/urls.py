from django.urls import path

from connectors import views

app_name = "connectors"
urlpatterns = [
    path("<int:pk>/connect/", views.oauth_start, name="oauth_start"),
    path("oauth/callback/", views.oauth_callback, name="oauth_callback"),
]
