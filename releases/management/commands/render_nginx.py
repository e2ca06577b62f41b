"""python manage.py render_nginx: write NGINX's upstreams from the running release and reload."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from releases.traffic import TrafficError, traffic_apply


class Command(BaseCommand):
    help = "Render nginx upstream weights from the running release (RELEASE_MODE=nginx) and reload NGINX."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            weight = traffic_apply()
        except (TrafficError, OSError) as error:
            raise CommandError(str(error)) from None
        if weight is None:
            raise CommandError("set RELEASE_MODE=nginx and NGINX_UPSTREAMS_PATH to render NGINX upstreams")
        self.stdout.write(f"nginx upstreams rendered: canary at {weight}%")
