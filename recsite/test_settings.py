"""Test settings: the real settings with fast, isolated overrides (see pyproject.toml)."""

import os
import tempfile

# Set before the real settings read them: tests never write into the checkout's var/.
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="recsite-test-"))
os.environ["Q_SYNC"] = "1"

from recsite.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
SNAPSHOT_MIN_RATINGS = 50
SERVING_THREADS = False
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns about a missing one
# Where commits happen for real (a live server's tests), each training enqueues its fairness
# report, run at once by Q_SYNC: the tests that want one compute it themselves.
FAIRNESS_AFTER_TRAINING = False
# A test that makes the database fail must not leave the next one answered without it.
SERVING_DATABASE_RETRY_SECONDS = 0.0
