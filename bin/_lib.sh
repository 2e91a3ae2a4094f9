# Shared helpers for bin/up, bin/test and .ci/run (sourced, not run).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLATSITE_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
export FLATSITE_DATA_DIR="${FLATSITE_DATA_DIR:-$ROOT/var}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"

say() { printf '\033[1m[flatsite]\033[0m %s\n' "$*" >&2; }

ensure_venv() {
  # Create the virtualenv and install pinned dependencies once per change of pyproject.toml. pip's own
  # output (hundreds of lines of resolver and build-backend chatter) goes to a log; a few lines say how it goes.
  local python="${PYTHON:-python3.11}"
  command -v "$python" >/dev/null 2>&1 || python=python3
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
    say "Python 3.11 is required (found $("$python" --version 2>&1))"; exit 1; }
  [ -x "$PY" ] || { say "creating virtualenv in $VENV"; "$python" -m venv "$VENV"; }
  local stamp="$VENV/.flatsite-installed" want log="$VENV/install.log" started=$SECONDS
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing dependencies (first run: a few minutes; full log in $log)"
    if ! { "$PY" -m pip install -q --upgrade pip && "$PY" -m pip install -q -e "$ROOT[dev]"; } >"$log" 2>&1; then
      say "installing dependencies failed; the end of $log:"; tail -n 25 "$log" >&2; exit 1
    fi
    say "installed $("$PY" -m pip list --format=freeze 2>/dev/null | wc -l) packages in $((SECONDS - started)) s"
    echo "$want" > "$stamp"
  fi
}

up_environment() {
  # bin/up's defaults. DEBUG stays as the environment or .env says (off when unset): error pages never list
  # the URL patterns. The local server speaks plain HTTP, so its cookies cannot be Secure-only; a deployment
  # behind TLS sets SECURE_COOKIES=1 (docker/compose.yaml).
  export SECURE_COOKIES="${SECURE_COOKIES:-0}"
  export PORT="${PORT:-8000}"
}

ensure_secret_key() {
  # One generated SECRET_KEY per data folder, written once (never committed: var/ is ignored), so every
  # later `manage.py` command works in a new shell with DEBUG off and no environment set.
  local key_file="$FLATSITE_DATA_DIR/secret_key"
  [ -n "${SECRET_KEY:-}" ] && return 0
  [ -s "$key_file" ] && return 0
  mkdir -p "$FLATSITE_DATA_DIR"
  (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(50))' > "$key_file.tmp" && mv "$key_file.tmp" "$key_file")
  say "generated a secret key in $key_file"
}

redis_answers() {
  "$PY" - "$REDIS_URL" <<'PYEOF' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PYEOF
}

redis_port() {
  "$PY" -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p.port or 6379)' "$REDIS_URL"
}

redis_is_local() {
  "$PY" -c 'import sys, urllib.parse as u; sys.exit(u.urlparse(sys.argv[1]).hostname not in ("127.0.0.1", "localhost", "::1"))' "$REDIS_URL"
}

ensure_redis_binary() {
  command -v redis-server >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing redis-server (Debian package)"
    (apt-get install -y -q redis-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; })
  fi
  command -v redis-server >/dev/null 2>&1 || {
    say "No Redis answers at $REDIS_URL and redis-server is not installed."
    say "Install it (sudo apt-get install redis-server) or set REDIS_URL to a running Redis."
    exit 1; }
}

start_redis_daemon() {
  # Starts a private, non-persistent Redis for this checkout; prints nothing when one already answers.
  redis_answers && return 0
  redis_is_local || { say "Redis at $REDIS_URL does not answer; start it or fix REDIS_URL"; exit 1; }
  ensure_redis_binary
  mkdir -p "$FLATSITE_DATA_DIR/redis"
  say "starting a local redis-server on port $(redis_port)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$(redis_port)" --save "" --appendonly no \
    --dir "$FLATSITE_DATA_DIR/redis" --logfile "$FLATSITE_DATA_DIR/redis/redis.log" \
    --pidfile "$FLATSITE_DATA_DIR/redis/redis.pid"
  for _ in $(seq 50); do redis_answers && return 0; sleep 0.1; done
  say "redis-server did not come up; see $FLATSITE_DATA_DIR/redis/redis.log"; exit 1
}
