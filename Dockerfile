# One image for every process of docker-compose.yml (web, migrate, Celery workers, beat).
#
# The torch wheel on PyPI for Linux x86_64 pulls in the CUDA runtime libraries (nvidia-* wheels),
# so the same image runs the GPU worker; the host only needs the NVIDIA driver and the
# NVIDIA Container Toolkit. No CUDA base image is needed.

# --- build: install requirements into a virtualenv (a compiler for packages without a wheel) ----
FROM python:3.11-slim AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

# --- runtime ------------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    P2W_MEDIA_ROOT=/data/media \
    P2W_UPLOADS_ROOT=/data/uploads

COPY --from=build /opt/venv /opt/venv

# Non-root user; /data/media, /data/uploads and /models exist owned by it, so named volumes
# mounted there start out writable (media, uploads) and readable (models) by the app.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app \
    && mkdir -p /app /data/media /data/uploads /models \
    && chown app:app /data/media /data/uploads /models

WORKDIR /app
COPY . /app

# Static files belong to the image (whitenoise serves them from DJANGO_STATIC_ROOT), so every
# container has them. collectstatic touches neither the database nor Redis; the URLs and the
# key below exist only so that the settings load during the build.
RUN DATABASE_URL=postgresql://build@localhost/build \
    REDIS_URL=redis://localhost:6379/0 \
    DJANGO_SECRET_KEY=build-only-not-used-at-runtime \
    DJANGO_DEBUG=false \
    python manage.py collectstatic --noinput

USER app

EXPOSE 8000
CMD ["gunicorn", "shop_demo.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--access-logfile", "-"]
