# One image for every recsite process (web, stream consumer, django-q2 worker); the command
# chooses the role. Built FROM the official Python 3.11 image with the MariaDB client headers.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libmariadb-dev git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# A throwaway key for the build step alone: no key is baked into the image.
RUN SECRET_KEY=build-only VAR_DIR=/tmp/build DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --no-input -v 0 && rm -rf /tmp/build

ENV LOG_FORMAT=json VAR_DIR=/var/lib/recsite
EXPOSE 8082
CMD ["gunicorn", "recsite.wsgi", "--bind", "0.0.0.0:8082", "--workers", "2", "--access-logfile", "-"]
