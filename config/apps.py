from django.contrib.admin.apps import AdminConfig


class LedgerlinkAdminConfig(AdminConfig):
    default_site = "config.admin.LedgerlinkAdminSite"
