#!/bin/sh
# Container entry: `web` (migrate, bootstrap, collectstatic, daphne), `worker`, `gpu-worker`, `beat`,
# or any other command (e.g. `python manage.py import_photos ...`).
set -eu
cd /app
case "${1:-web}" in
  web)
    python manage.py migrate --no-input
    python manage.py bootstrap
    python manage.py collectstatic --no-input -v0
    # Forwarded headers are trusted only behind a TLS proxy that sets them (BEHIND_TLS_PROXY=1).
    case "${BEHIND_TLS_PROXY:-0}" in 1|true|yes|on) proxy="--proxy-headers" ;; *) proxy="" ;; esac
    # daphne on flatsite.asgi, through the launcher every way of starting web shares (flatsite/web.py).
    # shellcheck disable=SC2086 # $proxy is empty or one word
    exec python -m flatsite.web -b 0.0.0.0 -p "${PORT:-8000}" $proxy
    ;;
  worker)
    exec celery -A flatsite worker -Q "${WORKER_QUEUES:-default,gpu}" \
      --concurrency "${WORKER_CONCURRENCY:-2}" -n "cpu@%h" -l "${LOG_LEVEL:-INFO}"
    ;;
  gpu-worker)
    # One process per GPU: CUDA state does not survive fork, so the solo pool.
    exec celery -A flatsite worker -Q gpu --pool solo -n "gpu@%h" -l "${LOG_LEVEL:-INFO}"
    ;;
  beat)
    exec celery -A flatsite beat -s "${FLATSITE_DATA_DIR:-/data}/celerybeat-schedule" -l "${LOG_LEVEL:-INFO}"
    ;;
  *)
    exec "$@"
    ;;
esac
