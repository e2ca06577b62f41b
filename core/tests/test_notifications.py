import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from prometheus_client import REGISTRY

from core.notifications import notification_enqueue, notification_send


@pytest.fixture
def webhook():
    """A real HTTP server on loopback standing where Slack would."""
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def _failures(channel):
    return REGISTRY.get_sample_value("recsite_notifications_failed_total", {"channel": channel}) or 0


def test_sends_email_and_slack(settings, webhook):
    url, received = webhook
    settings.NOTIFY_EMAILS = ["ops@example.org"]
    settings.SLACK_WEBHOOK_URL = url

    delivered = notification_send(subject="v3 passed the gate", body="RMSE 0.91")

    assert delivered == {"email": True, "slack": True}
    assert mail.outbox[0].subject == "[recsite] v3 passed the gate"
    assert mail.outbox[0].to == ["ops@example.org"]
    assert received == [{"text": "*v3 passed the gate*\nRMSE 0.91"}]


def test_a_dead_webhook_is_logged_and_counted_not_raised(settings, caplog):
    settings.NOTIFY_EMAILS = []
    settings.SLACK_WEBHOOK_URL = "http://127.0.0.1:9/nothing-listens-here"
    before = _failures("slack")

    delivered = notification_send(subject="v4 rejected", body="reasons")

    assert delivered == {"slack": False}
    assert _failures("slack") == before + 1
    assert "could not send the slack notification" in caplog.text


def test_a_mail_server_that_never_answers_fails_within_the_timeout(settings):
    # A listener that accepts and then says nothing: without a timeout, send_mail waits for ever.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = silent.getsockname()
    settings.EMAIL_TIMEOUT = 1
    settings.SLACK_WEBHOOK_URL = ""
    started = time.monotonic()

    try:
        delivered = notification_send(subject="v4 rejected", body="reasons")
    finally:
        silent.close()

    assert delivered == {"email": False}
    assert time.monotonic() - started < 10


def test_enqueued_notifications_are_sent_by_the_worker(monkeypatch):
    queued = []
    monkeypatch.setattr("core.notifications.async_task", lambda name, *args: queued.append((name, *args)))

    notification_enqueue(subject="v4 promoted", body="by ops")

    assert queued == [("core.notifications.notification_send_task", "v4 promoted", "by ops")]
    assert not mail.outbox  # nothing was sent from the caller's thread
