from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConsoleConfig(AppConfig):
    """The operations console: the admin site's overview, charts and cross-app pages."""

    name = "console"
    # This module also holds the admin's config (imported as a module, not a name, so that
    # Django finds one default config here).
    default = True
    default_auto_field = "django.db.models.BigAutoField"


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """Django's admin with the console as its site: every app's ``admin.site.register`` lands
    on it, and no app below needs to know the console exists."""

    default = False
    default_site = "console.sites.ConsoleSite"
