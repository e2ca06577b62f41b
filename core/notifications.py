"""Telling people what happened: e-mail through Django's mail, and a Slack-compatible webhook.

A notification that cannot be delivered is logged and counted (``recsite_notifications_failed_total``)
and never breaks the work that triggered it.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable

from django.conf import settings
from django.core.mail import send_mail
from django_q.tasks import async_task
from prometheus_client import Counter

logger = logging.getLogger(__name__)

NOTIFICATIONS_SENT = Counter("recsite_notifications_sent_total", "Notifications delivered", ["channel"])
NOTIFICATIONS_FAILED = Counter("recsite_notifications_failed_total", "Notifications that failed", ["channel"])


def notification_enqueue(*, subject: str, body: str) -> None:
    """Send from the django-q2 worker, not from here: a person pressing a button in the console
    must not wait on a slow mail server (nor see its failure, which is logged and counted)."""
    async_task("core.notifications.notification_send_task", subject, body)


def notification_send_task(subject: str, body: str) -> dict[str, bool]:
    """The django-q2 task behind ``notification_enqueue``."""
    return notification_send(subject=subject, body=body)


def notification_send(*, subject: str, body: str) -> dict[str, bool]:
    """Send to every configured channel; returns channel -> delivered."""
    delivered: dict[str, bool] = {}
    if settings.NOTIFY_EMAILS:
        delivered["email"] = _deliver("email", lambda: _email(subject, body))
    if settings.SLACK_WEBHOOK_URL:
        delivered["slack"] = _deliver("slack", lambda: _slack(subject, body))
    logger.info("notified %s: %s", ", ".join(delivered) or "nobody (no channel configured)", subject)
    return delivered


def _deliver(channel: str, send: Callable[[], None]) -> bool:
    try:
        send()
    except Exception:
        NOTIFICATIONS_FAILED.labels(channel=channel).inc()
        logger.exception("could not send the %s notification", channel)
        return False
    NOTIFICATIONS_SENT.labels(channel=channel).inc()
    return True


def _email(subject: str, body: str) -> None:
    send_mail(f"[recsite] {subject}", body, settings.DEFAULT_FROM_EMAIL, settings.NOTIFY_EMAILS, fail_silently=False)


def _slack(subject: str, body: str) -> None:
    payload = json.dumps({"text": f"*{subject}*\n{body}"}).encode()
    request = urllib.request.Request(
        settings.SLACK_WEBHOOK_URL, data=payload, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=settings.SLACK_TIMEOUT) as response:
        if response.status >= 300:
            raise OSError(f"webhook answered {response.status}")
