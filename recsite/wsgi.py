"""WSGI entry point for gunicorn: ``gunicorn recsite.wsgi``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")

application = get_wsgi_application()
