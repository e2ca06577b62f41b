"""recsite settings: one module, every option from the environment, safe defaults.

A fresh checkout runs with SQLite under ``var/``, the built-in simulator and console e-mail.
Production sets ``DATABASE_URL=mysql://...``, ``KAFKA_BOOTSTRAP`` and friends (see README).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from rest_framework import fields, serializers

from core.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_int_list,
    env_list,
    env_path,
    env_secret_key,
    env_str,
    env_url,
)

# Lets the code write ModelAdmin[Movie] and DRF's Field[...] at run time, as mypy reads them.
django_stubs_ext.monkeypatch(extra_classes=[fields.Field, serializers.BaseSerializer])

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# TLS ends at the proxy in front (NGINX or a load balancer); these make Django trust its
# X-Forwarded-Proto, send cookies over HTTPS only and ask browsers for HTTPS (HSTS). Off by
# default for the laptop demo on plain HTTP; production turns them on.
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Probes and scrapes reach the pools directly over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

# Where recsite keeps its files: the SQLite database, stream files, snapshots, model artifacts.
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")
DATA_DIR = env_path("DATA_DIR", VAR_DIR / "data")
MODEL_DIR = env_path("MODEL_DIR", VAR_DIR / "models")

# No server runs on a key anyone can read in the repository: SECRET_KEY, or (a laptop, the demo)
# one generated on first start into VAR_DIR/secret_key, readable by its owner only. Production
# sets REQUIRE_SECRET_KEY and refuses to start without SECRET_KEY.
SECRET_KEY = env_secret_key("SECRET_KEY", path=VAR_DIR / "secret_key", required=env_bool("REQUIRE_SECRET_KEY", False))

INSTALLED_APPS = [
    # First, so that its templates (admin/base_site.html) take precedence over the admin's own.
    "console",
    # Django's admin, with the console as its default site.
    "console.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    # intcomma, applied to counts only: a global thousands separator would print ids and years as 1,234.
    "django.contrib.humanize",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "django_q",
    "axes",
    # recsite's apps, bottom layer first (the import contract in pyproject.toml holds the order).
    "core",
    "catalog",
    "simulator",
    "stream",
    "recommender",
    "provenance",
    "serving",
    "releases",
    "fairness",
    "recsite",
]

MIDDLEWARE = [
    "core.logcontext.AllowedMethodsMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "core.logcontext.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After the session and the user are read (always from the primary).
    "core.replica.ReplicaReadsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last but the metrics: answers a locked-out login with 429.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# --- Console logins ---------------------------------------------------------------------------
# django-axes counts failed logins per account and per address (each on its own: an attacker
# trying many accounts from one address is stopped, and so is one account tried from many).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.http.client_address"
# How many proxies in front append to X-Forwarded-For (NGINX in the compose stack: 1). With 0,
# the connection's address is the client's; a header a client sends itself is never trusted.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=5)

ROOT_URLCONF = env_str("ROOT_URLCONF", "recsite.urls")
WSGI_APPLICATION = "recsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.replica.replica_context",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
# SQLite by default; DATABASE_URL=mysql://user:pass@host:port/name selects MySQL/MariaDB.
DATABASE_URL = env_url(
    "DATABASE_URL", f"sqlite:///{VAR_DIR / 'recsite.sqlite3'}", schemes=("sqlite", "mysql", "mysql2", "mariadb")
)
# Persistent connections are checked before their first use in each task or request: after the
# database restarted, the worker's first task failed on a connection the server had dropped.
_db = dict(
    dj_database_url.parse(
        DATABASE_URL.replace("mariadb://", "mysql://", 1),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        # WAL lets the web server read while the stream consumer writes; IMMEDIATE avoids
        # "database is locked" upgrades from read to write locks inside transactions.
        # A 64 MiB page cache (SQLite's default is 2 MiB): importing millions of ratings updates
        # indexes all over the file, and a small cache rereads the same pages again and again.
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA cache_size=-65536;"
        ),
        "transaction_mode": "IMMEDIATE",
    }
    # A fresh checkout has no var/ yet, and SQLite won't create the directory itself.
    Path(str(_db["NAME"])).parent.mkdir(parents=True, exist_ok=True)
else:
    _db["OPTIONS"] = _mysql_options = {
        "charset": "utf8mb4",
        "isolation_level": "read committed",
        # Without these a request or a consumer waits for ever on a database that went silent.
        "connect_timeout": env_int("DATABASE_CONNECT_TIMEOUT", 10, minimum=1),
        "read_timeout": env_int("DATABASE_READ_TIMEOUT", 300, minimum=1),
        "write_timeout": env_int("DATABASE_WRITE_TIMEOUT", 300, minimum=1),
    }
    _db["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
DATABASES = {"default": _db}

# A read replica (MariaDB replication): the console's pages, the snapshot export and the fairness
# and feedback jobs read from it, inside core.replica.replica_reads(); writes, the request path
# and everything else stay on the primary. A replica that does not answer, does not replicate or
# is more than DATABASE_REPLICA_MAX_LAG_SECONDS behind sends those reads back to the primary
# (checked at most every DATABASE_REPLICA_CHECK_SECONDS per process), and the console says so.
DATABASE_REPLICA_URL = env_url("DATABASE_REPLICA_URL", "", schemes=("mysql", "mysql2", "mariadb"))
DATABASE_REPLICA_MAX_LAG_SECONDS = env_float("DATABASE_REPLICA_MAX_LAG_SECONDS", 10.0, minimum=0.0)
DATABASE_REPLICA_CHECK_SECONDS = env_float("DATABASE_REPLICA_CHECK_SECONDS", 5.0, minimum=0.0)
if DATABASE_REPLICA_URL:
    if _db["ENGINE"] == "django.db.backends.sqlite3":
        raise ImproperlyConfigured("DATABASE_REPLICA_URL needs a MariaDB primary (DATABASE_URL=mysql://...)")
    _replica = dict(dj_database_url.parse(DATABASE_REPLICA_URL.replace("mariadb://", "mysql://", 1), conn_max_age=60))
    _replica["CONN_HEALTH_CHECKS"] = True
    # A replica that went away costs a console page this long at most, once per check.
    _replica["OPTIONS"] = {
        **_mysql_options,
        "connect_timeout": env_int("DATABASE_REPLICA_CONNECT_TIMEOUT", 2, minimum=1),
    }
    # Tests never create a database on the replica: it gets the primary's by replication.
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES["replica"] = _replica
DATABASE_ROUTERS = ["core.replica.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
FORMAT_MODULE_PATH = ["recsite.formats"]  # times to the second, with the zone
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- The event stream ------------------------------------------------------------------------
KAFKA_BOOTSTRAP = env_str("KAFKA_BOOTSTRAP", "127.0.0.1:19092")
KAFKA_TOPIC = env_str("KAFKA_TOPIC", "movielog")
KAFKA_GROUP = env_str("KAFKA_GROUP", "recsite-ingest")
# Partitions of the topic when recsite creates it (stream_topic --ensure, the compose stack's
# migrate step); an existing topic keeps its own.
KAFKA_PARTITIONS = env_int("KAFKA_PARTITIONS", 3, minimum=1, maximum=1000)
# Lines per database transaction; larger batches ingest faster, smaller ones commit sooner.
STREAM_BATCH_SIZE = env_int("STREAM_BATCH_SIZE", 5000, minimum=1, maximum=100_000)
# Longer lines are rejected unread: the longest real line (20 results) is about 1.5 KB.
STREAM_MAX_LINE_BYTES = env_int("STREAM_MAX_LINE_BYTES", 8192, minimum=256)
# Events dated further than this past the consumer's clock are rejected (future_timestamp):
# the platform's clocks may run a little ahead, not years.
STREAM_MAX_CLOCK_SKEW_SECONDS = env_int("STREAM_MAX_CLOCK_SKEW_SECONDS", 300, minimum=0)
# Rejected lines kept verbatim; past this they are still counted, but not stored.
STREAM_REJECTED_KEEP = env_int("STREAM_REJECTED_KEEP", 10_000, minimum=0)
STREAM_METRICS_PORT = env_int("STREAM_METRICS_PORT", 0, minimum=0, maximum=65535)
# A consumer's run that shows no sign of life (stream.services.RUN_HEARTBEAT_SECONDS, idle or
# not) for this long is marked abandoned by the next consumer of another host: a process of another
# container cannot be seen, so this is how replicas of the ingest service judge each other's runs.
STREAM_RUN_STALE_SECONDS = env_float("STREAM_RUN_STALE_SECONDS", 300.0, minimum=60.0)

# --- Notifications ---------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# With the file backend (the demo's), each message is a file here and the log keeps one line.
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "recsite@localhost")
NOTIFY_EMAILS = env_list("NOTIFY_EMAILS", ["ops@localhost"])
SLACK_WEBHOOK_URL = env_url("SLACK_WEBHOOK_URL", "", schemes=("http", "https"))
SLACK_TIMEOUT = env_int("SLACK_TIMEOUT", 10, minimum=1)

# --- Data snapshots and model training --------------------------------------------------------
# DVC remote for snapshots and model artifacts: a local directory by default, any DVC URL.
DVC_REMOTE = env_str("DVC_REMOTE", str(VAR_DIR / "dvc-remote"))
DVC_TIMEOUT = env_int("DVC_TIMEOUT", 600, minimum=10)
SNAPSHOT_MIN_RATINGS = env_int("SNAPSHOT_MIN_RATINGS", 500, minimum=1)
SNAPSHOT_MAX_NEW_VIEWER_SHARE = env_float("SNAPSHOT_MAX_NEW_VIEWER_SHARE", 0.5, minimum=0.0, maximum=1.0)
# A watch shorter than this is browsing, not a signal of interest.
WATCH_MIN_MINUTES = env_int("WATCH_MIN_MINUTES", 5, minimum=0)
# Where the factor models are fitted: "local" (scikit-surprise and implicit, in the process) or
# "spark" (pyspark's ALS for both, recommender.learning.spark; pip install -r
# requirements-spark.txt), in local mode or on the cluster SPARK_MASTER names.
TRAINING_ENGINE = env_choice("TRAINING_ENGINE", "local", ("local", "spark"))
SPARK_MASTER = env_str("SPARK_MASTER", "local[2]")
SPARK_DRIVER_MEMORY = env_str("SPARK_DRIVER_MEMORY", "4g")
SPARK_LOCAL_DIR = env_path("SPARK_LOCAL_DIR", VAR_DIR / "spark")
SPARK_PARTITIONS = env_int("SPARK_PARTITIONS", 8, minimum=1)
_SPARK = TRAINING_ENGINE == "spark"
# Names from the learning registries; the recommender app checks them at start (apps.py).
TRAIN_RATING_ALGORITHM = env_str("TRAIN_RATING_ALGORITHM", "spark-als" if _SPARK else "svd").lower()
# "auto": model selection chooses among every ranker at each training (recommender.learning.
# selection); a ranker's name forces that one, with its default parameters. On Spark the
# factor ranker is fitted there, without selection (it fits its candidates in the process).
TRAIN_RANKER = env_str("TRAIN_RANKER", "spark-als" if _SPARK else "auto").lower()
# Model selection stops starting candidates after this long; each candidate is measured on at
# most TRAIN_SELECTION_VIEWERS validation viewers (a fixed sample). Small data sets finish the
# whole grid in seconds; at the platform's size (1M viewers, 10M interactions) the other steps
# take about 470 s without the rating refit (docs/scaling.md), and 120 s of search keeps the whole
# near ten minutes.
TRAIN_SELECTION_SECONDS = env_float("TRAIN_SELECTION_SECONDS", 120.0, minimum=0.0)
TRAIN_SELECTION_VIEWERS = env_int("TRAIN_SELECTION_VIEWERS", 20_000, minimum=100)
TRAIN_SEED = env_int("TRAIN_SEED", 42)
# Ranking metrics are measured on at most this many viewers (a fixed sample, stated in the
# version's metrics): the measurement's cost then stays flat as the platform grows.
TRAIN_EVALUATION_VIEWERS = env_int("TRAIN_EVALUATION_VIEWERS", 50_000, minimum=100)
# The git commit of the code, for images built without a .git directory.
CODE_REVISION = env_str("CODE_REVISION", "")
# django-q2 keeps a schedule's minutes in a small integer (about three weeks at most).
RETRAIN_EVERY_MINUTES = env_int("RETRAIN_EVERY_MINUTES", 2 * 24 * 60, minimum=1, maximum=32767)
# The feedback-loop windows: their size, and how often the latest are computed again. A day
# each in production; the demo, whose platform plays for minutes, uses minutes.
FEEDBACK_WINDOW_MINUTES = env_int("FEEDBACK_WINDOW_MINUTES", 24 * 60, minimum=1, maximum=7 * 24 * 60)
FEEDBACK_EVERY_MINUTES = env_int("FEEDBACK_EVERY_MINUTES", 24 * 60, minimum=1, maximum=32767)
# The gate: an absolute RMSE bound (the seed system's), and how much worse than stable is tolerated.
GATE_MAX_RMSE = env_float("GATE_MAX_RMSE", 1.0, minimum=0.0)
GATE_RMSE_TOLERANCE = env_float("GATE_RMSE_TOLERANCE", 0.02, minimum=0.0)
GATE_NDCG_TOLERANCE = env_float("GATE_NDCG_TOLERANCE", 0.02, minimum=0.0)

# --- Background work (django-q2 on the ORM broker: no extra service) ------------------------
Q_TIMEOUT = env_int("Q_TIMEOUT", 3600, minimum=10)
Q_CLUSTER = {
    "name": "recsite",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 1, minimum=1, maximum=16),
    "timeout": Q_TIMEOUT,
    # django-q2 requires retry > timeout, or a long task runs twice.
    "retry": Q_TIMEOUT + 60,
    "catch_up": False,
    "sync": env_bool("Q_SYNC", False),
}

# --- APIs ------------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, object] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "recsite",
    "DESCRIPTION": "Movie recommendations: GET /recommend/<user_id> answers up to 20 movie ids, best first.",
    "VERSION": "1",
}

# --- Fairness --------------------------------------------------------------------------------
# A report per model version (after each training) of quality, representation, diversity and
# exposure per demographic group. Groups with fewer viewers are shown, flagged, never ranked.
FAIRNESS_MIN_GROUP_VIEWERS = env_int("FAIRNESS_MIN_GROUP_VIEWERS", 30, minimum=1)
FAIRNESS_BOOTSTRAP = env_int("FAIRNESS_BOOTSTRAP", 100, minimum=0, maximum=10_000)
FAIRNESS_AFTER_TRAINING = env_bool("FAIRNESS_AFTER_TRAINING", True)
# Past these, people are notified and the overview shows the report: the worst compared group's
# NDCG@10 below this share of the best's, or its RMSE above the best's by more than this.
FAIRNESS_MIN_NDCG_RATIO = env_float("FAIRNESS_MIN_NDCG_RATIO", 0.8, minimum=0.0, maximum=1.0)
FAIRNESS_MAX_RMSE_GAP = env_float("FAIRNESS_MAX_RMSE_GAP", 0.1, minimum=0.0)
# A disparity is flagged only where its bootstrap interval lies wholly past the bound; the
# intervals are corrected for the number of group pairs a report compares, so that a report on
# data without any real difference flags something with at most this probability.
FAIRNESS_ALPHA = env_float("FAIRNESS_ALPHA", 0.05, minimum=0.0001, maximum=0.5)
# The daily report on what was served: an answer is followed when the viewer starts one of its
# movies this soon after it (the canary analysis' window); a day is reported once that much of
# the next day has passed. Past the bound, the worst compared group's lists were followed less
# than this share as often as the best's.
FAIRNESS_FOLLOW_HOURS = env_float("FAIRNESS_FOLLOW_HOURS", 1.0, minimum=0.01, maximum=168.0)
FAIRNESS_MIN_FOLLOW_RATIO = env_float("FAIRNESS_MIN_FOLLOW_RATIO", 0.8, minimum=0.0, maximum=1.0)

# --- Serving -----------------------------------------------------------------------------------
# embedded: one server holds stable and canary and splits viewers by a hash of their id (the
# demo). nginx: NGINX splits traffic between pools of servers; each serves SERVING_POOL.
RELEASE_MODE = env_choice("RELEASE_MODE", "embedded", ("embedded", "nginx"))
SERVING_POOL = env_choice("SERVING_POOL", "stable", ("stable", "canary"))
# A candidate that passes the gate starts a canary by itself; the check runs on a schedule.
RELEASE_AUTO_START = env_bool("RELEASE_AUTO_START", True)
RELEASE_CHECK_MINUTES = env_int("RELEASE_CHECK_MINUTES", 5, minimum=1)
# What a release does unless the person starting it says otherwise (auto-start, the console, the
# command): its canary weights, each check's window, the least time on a step. Compressed, they
# let the whole release loop run in minutes (the stack's end-to-end test).
RELEASE_STEPS = env_int_list("RELEASE_STEPS", [20], minimum=1, maximum=99)
RELEASE_INTERVAL_SECONDS = env_int("RELEASE_INTERVAL_SECONDS", 300, minimum=10)
RELEASE_MIN_STEP_SECONDS = env_int("RELEASE_MIN_STEP_SECONDS", 1800, minimum=0)
# Whether a release's last step must judge the behavioural metric (watched after recommended)
# before it can promote; off, a canary may be promoted on latency and success alone, and the
# release page says so.
RELEASE_FOLLOW_REQUIRED = env_bool("RELEASE_FOLLOW_REQUIRED", False)
# How often the overview and a release's page look for a change (a promotion, a step, a check)
# and reload to show it.
CONSOLE_LIVE_SECONDS = env_int("CONSOLE_LIVE_SECONDS", 10, minimum=2, maximum=3600)
# RELEASE_MODE=nginx: where the upstreams file goes, how to reload NGINX, the pools' servers.
NGINX_UPSTREAMS_PATH = env_str("NGINX_UPSTREAMS_PATH", "")
NGINX_RELOAD_COMMAND = env_str("NGINX_RELOAD_COMMAND", "nginx -s reload")
NGINX_STABLE_SERVERS = env_list("NGINX_STABLE_SERVERS", ["web-stable:8082"])
NGINX_CANARY_SERVERS = env_list("NGINX_CANARY_SERVERS", ["web-canary:8082"])
# The canary analysis reads latency and success from Prometheus when this is set, else from the
# provenance table; the decision code is the same.
PROMETHEUS_URL = env_url("PROMETHEUS_URL", "", schemes=("http", "https"))
# Test-only fault injection: this pool answers /recommend that many milliseconds late.
SERVING_FAULT_DELAY_MS = env_int("SERVING_FAULT_DELAY_MS", 0, minimum=0)
SERVING_REFRESH_SECONDS = env_float("SERVING_REFRESH_SECONDS", 5.0, minimum=0.1)
# How often a worker hashes the artifact it serves again (0: only at load). A file damaged in
# place is read through the mapping as it now is; this bounds how long that goes unnoticed.
SERVING_VERIFY_SECONDS = env_float("SERVING_VERIFY_SECONDS", 60.0, minimum=0.0)
# After a failed read of a viewer's history, answers come from the model alone this long before
# the database is asked again (serving.services.DatabaseBreaker).
SERVING_DATABASE_RETRY_SECONDS = env_float("SERVING_DATABASE_RETRY_SECONDS", 2.0, minimum=0.0)
SERVING_LIST_LENGTH = env_int("SERVING_LIST_LENGTH", 20, minimum=1, maximum=100)
# Exploration against the feedback loop (off by default): this many of a list's last slots go
# to movies the model ranks for the viewer but rarely shows anyone, chosen reproducibly per
# viewer and request, and recorded as explored in the provenance row.
SERVING_EXPLORATION_SLOTS = env_int("SERVING_EXPLORATION_SLOTS", 0, minimum=0, maximum=10)
# A movie counts as watched to the end past this share of its runtime, or past this many
# minutes when its runtime is unknown.
SERVING_FINISHED_SHARE = env_float("SERVING_FINISHED_SHARE", 0.9, minimum=0.1, maximum=1.0)
SERVING_FINISHED_MINUTES = env_int("SERVING_FINISHED_MINUTES", 60, minimum=1)
# Provenance rows are queued in memory and written in batches by a thread of each worker.
PROVENANCE_MAX_PENDING = env_int("PROVENANCE_MAX_PENDING", 50_000, minimum=100)
PROVENANCE_BATCH_SIZE = env_int("PROVENANCE_BATCH_SIZE", 500, minimum=1)
# Background threads (model watcher, provenance writer); tests drive their work directly.
SERVING_THREADS = env_bool("SERVING_THREADS", True)
PROVENANCE_FLUSH_SECONDS = env_float("PROVENANCE_FLUSH_SECONDS", 1.0, minimum=0.05)
# How often each worker's writer drains the spool files left by dead workers on its host (and
# its own rows dropped from memory during an outage) once the database answers.
PROVENANCE_RECOVER_SECONDS = env_float("PROVENANCE_RECOVER_SECONDS", 10.0, minimum=0.05)

# --- Logging ---------------------------------------------------------------------------------
LOG_FORMAT = env_choice("LOG_FORMAT", "text", ("text", "json"))
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.logcontext.ContextFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(context)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # kafka-python warns about its own event loop timing on every slow poll; errors still show.
        "kafka": {"level": "ERROR"},
    },
}
