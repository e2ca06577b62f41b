from datetime import timedelta

import pytest
from django.contrib import admin
from django.urls import reverse

from stream.services import stream_ingest_batch

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


@pytest.fixture
def superuser_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.org", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def ingested(db):
    stream_ingest_batch(
        lines=[
            "2023-10-01T12:00:00,7,GET /data/m/the+matrix+1999/0.mpg",
            "2023-10-01T12:03:00,7,GET /rate/the+matrix+1999=5",
            "2023-10-01T12:06:00,9,recommendation request r:8082, status 200, result: the+matrix+1999, 41 ms",
            "2023-10-01T12:07:00,7,GET /rate/the+matrix+1999=E",
        ]
    )


def test_every_admin_page_opens_for_a_superuser(superuser_client, ingested, trained_version):
    for model, model_admin in admin.site._registry.items():
        info = f"{model._meta.app_label}_{model._meta.model_name}"
        changelist = superuser_client.get(reverse(f"admin:{info}_changelist"))
        assert changelist.status_code == 200, info
        obj = model_admin.get_queryset(changelist.wsgi_request).first()
        if obj is not None:
            change = superuser_client.get(reverse(f"admin:{info}_change", args=[obj.pk]))
            assert change.status_code == 200, info
        if model_admin.has_add_permission(changelist.wsgi_request):
            assert superuser_client.get(reverse(f"admin:{info}_add")).status_code == 200, info


def test_stream_audit_data_is_read_only(superuser_client, ingested):
    response = superuser_client.get(reverse("admin:stream_rejectedline_add"))

    assert response.status_code == 403


def test_changelists_filter_by_operational_buckets(superuser_client, ingested):
    response = superuser_client.get(reverse("admin:stream_observedrecommendation_changelist") + "?speed=fast")

    assert response.status_code == 200
    assert b"r:8082" in response.content


def test_served_at_page_names_the_stable_version(superuser_client, trained_version):
    # The form takes whole seconds: ask about the second after the version became stable.
    at = (trained_version.status_changes.last().at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")

    response = superuser_client.get(reverse("admin:recommender_modelversion_served_at"), {"at": at})

    assert response.status_code == 200
    assert b"The stable version was" in response.content
    assert f">v{trained_version.version}</a>".encode() in response.content


def test_served_at_page_explains_bad_input(superuser_client, db):
    response = superuser_client.get(reverse("admin:recommender_modelversion_served_at"), {"at": "yesterday-ish"})

    assert response.status_code == 200
    assert b"Enter a valid date/time." in response.content


def test_model_version_page_shows_gate_metrics_and_groups(superuser_client, trained_version):
    response = superuser_client.get(reverse("admin:recommender_modelversion_change", args=[trained_version.pk]))

    assert b"first version of an empty registry" in response.content
    assert b'Gate: <span class="check-pass">passed</span>' in response.content
    assert b"<td>gender</td>" in response.content


def test_the_served_at_page_needs_permission_to_view_model_versions(client, django_user_model, trained_version):
    staff = django_user_model.objects.create_user("viewer-of-nothing", password="pw", is_staff=True)
    client.force_login(staff)

    response = client.get(reverse("admin:recommender_modelversion_served_at"))

    assert response.status_code == 403
