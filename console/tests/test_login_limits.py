"""Failed console logins are limited per account and per address (django-axes)."""

import pytest
from django.test import Client
from django.urls import reverse

from core.http import client_address

# The attempts are rows: the database engine shapes what this checks.
pytestmark = pytest.mark.engine


@pytest.fixture
def ops(django_user_model):
    return django_user_model.objects.create_superuser("ops", "ops@example.org", "right-password-1")


def _login(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(reverse("admin:login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_after_the_failure_limit_even_the_right_password_is_refused(ops, settings):
    client = Client()
    answers = [_login(client, "ops", "wrong").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert answers == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]  # the form again, then locked

    locked = _login(client, "ops", "right-password-1")

    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_one_account_tried_from_many_addresses_is_locked(ops, settings):
    for number in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), "ops", "wrong", address=f"10.0.1.{number}")

    assert _login(Client(), "ops", "right-password-1", address="10.0.2.1").status_code == 429


def test_many_accounts_tried_from_one_address_lock_the_address(ops, settings):
    for number in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), f"someone-{number}", "wrong", address="10.0.3.1")

    assert _login(Client(), "ops", "right-password-1", address="10.0.3.1").status_code == 429
    assert _login(Client(), "ops", "right-password-1", address="10.0.3.2").status_code == 302


def test_a_success_before_the_limit_starts_the_count_again(ops, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "ops", "wrong")
    assert _login(client, "ops", "right-password-1").status_code == 302
    client.logout()

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "ops", "wrong")
    assert _login(client, "ops", "right-password-1").status_code == 302


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw_not_one_the_client_wrote(rf, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    request = rf.get("/", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9", REMOTE_ADDR="172.18.0.5")

    assert client_address(request) == "203.0.113.9"
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_address(request) == "172.18.0.5"
