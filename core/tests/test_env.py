import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_choice, env_int, env_secret_key, env_url


def test_env_int_names_the_variable_with_a_bad_value(monkeypatch):
    monkeypatch.setenv("STREAM_BATCH_SIZE", "lots")

    with pytest.raises(ImproperlyConfigured, match="STREAM_BATCH_SIZE='lots' is not an integer"):
        env_int("STREAM_BATCH_SIZE", 5000)


def test_env_int_enforces_its_bounds(monkeypatch):
    monkeypatch.setenv("STREAM_BATCH_SIZE", "0")

    with pytest.raises(ImproperlyConfigured, match="STREAM_BATCH_SIZE=0 is below the minimum of 1"):
        env_int("STREAM_BATCH_SIZE", 5000, minimum=1)


def test_env_bool_refuses_a_word_it_does_not_know(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")

    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe' is not a boolean"):
        env_bool("DEBUG", False)


def test_env_choice_lists_the_allowed_values(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "xml")

    with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT='xml' must be one of: text, json"):
        env_choice("LOG_FORMAT", "text", ("text", "json"))


def test_env_url_checks_the_scheme(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://x/y")

    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL='postgres://x/y' must start with one of"):
        env_url("DATABASE_URL", "", schemes=("sqlite", "mysql"))


def test_defaults_apply_when_unset(monkeypatch):
    monkeypatch.delenv("STREAM_BATCH_SIZE", raising=False)

    assert env_int("STREAM_BATCH_SIZE", 5000) == 5000


def test_a_bad_setting_stops_manage_py_with_one_clear_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), "STREAM_BATCH_SIZE": "-5"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "STREAM_BATCH_SIZE=-5 is below the minimum of 1" in result.stderr


def _settings_say(code: str, **environment: str) -> str:
    """What ``code`` prints about the settings, loaded in a fresh process with ``environment``."""
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); from django.conf import settings; {code}"],
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "recsite.settings", **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_mysql_database_url_selects_mysql(tmp_path):
    engine = _settings_say(
        "print(settings.DATABASES['default']['ENGINE'])",
        VAR_DIR=str(tmp_path),
        DATABASE_URL="mysql://u:p@127.0.0.1:3306/recsite",
    )

    assert engine == "django.db.backends.mysql"


def test_a_secret_key_is_generated_once_and_readable_by_its_owner_only(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    path = tmp_path / "var" / "secret_key"

    first = env_secret_key("SECRET_KEY", path=path, required=False)
    again = env_secret_key("SECRET_KEY", path=path, required=False)

    assert first == again
    assert len(first) >= 50
    assert path.stat().st_mode & 0o777 == 0o600


def test_no_key_is_built_in(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)

    keys = {env_secret_key("SECRET_KEY", path=tmp_path / f"{n}" / "secret_key", required=False) for n in range(3)}

    assert len(keys) == 3  # every checkout gets its own


def test_production_refuses_to_start_without_a_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)

    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set"):
        env_secret_key("SECRET_KEY", path=tmp_path / "secret_key", required=True)


def test_a_key_file_others_can_read_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    path = tmp_path / "secret_key"
    path.write_text("a-key-someone-else-could-read\n")
    path.chmod(0o644)

    with pytest.raises(ImproperlyConfigured, match="readable by its owner only"):
        env_secret_key("SECRET_KEY", path=path, required=False)


def test_the_key_given_in_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")

    assert env_secret_key("SECRET_KEY", path=tmp_path / "secret_key", required=True) == "from-the-environment"
    assert not (tmp_path / "secret_key").exists()


def test_the_settings_carry_no_key_from_the_repository():
    settings_source = (Path(__file__).resolve().parents[2] / "recsite" / "settings.py").read_text()

    assert "insecure" not in settings_source


def test_mysql_connections_have_connect_read_and_write_timeouts(tmp_path):
    timeouts = _settings_say(
        "o = settings.DATABASES['default']['OPTIONS']; "
        "print(o['connect_timeout'], o['read_timeout'], o['write_timeout'])",
        VAR_DIR=str(tmp_path),
        DATABASE_URL="mysql://u:p@127.0.0.1:3306/recsite",
        DATABASE_READ_TIMEOUT="45",
    )

    assert timeouts.split() == ["10", "45", "300"]


def test_env_int_list_reads_numbers_and_names_the_variable_with_a_bad_one(monkeypatch):
    from core.env import env_int_list

    monkeypatch.setenv("RELEASE_STEPS", "10, 25,50")
    assert env_int_list("RELEASE_STEPS", [20], minimum=1, maximum=99) == [10, 25, 50]

    monkeypatch.setenv("RELEASE_STEPS", "10,half")
    with pytest.raises(ImproperlyConfigured, match="RELEASE_STEPS"):
        env_int_list("RELEASE_STEPS", [20], minimum=1, maximum=99)

    monkeypatch.setenv("RELEASE_STEPS", "10,100")
    with pytest.raises(ImproperlyConfigured, match="between 1 and 99"):
        env_int_list("RELEASE_STEPS", [20], minimum=1, maximum=99)
