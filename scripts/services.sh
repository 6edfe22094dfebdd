#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on loopback, for the guard service's tests.
# Source it (`. scripts/services.sh`) to get the URLs the tests read:
#   BASTION_TEST_DATABASE_URL  postgresql+psycopg://postgres@127.0.0.1:5432/test
#   BASTION_TEST_REDIS_URL     redis://127.0.0.1:6379/0
# Starts only what does not answer; never stops anything. When a service cannot be
# started it says so and goes on: the tests that need it then fail under CI=true and
# skip, with the reason, elsewhere.

_bastion_services() {
  local pg_host=127.0.0.1 pg_port=5432 redis_port=6379 i
  if command -v pg_isready >/dev/null && ! pg_isready -q -h "$pg_host" -p "$pg_port"; then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
      local version
      version="$(ls /etc/postgresql | sort -V | tail -n 1)"
      echo "starting PostgreSQL $version ..." >&2
      pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 ||
        echo "warning: could not start PostgreSQL" >&2
    fi
    for i in $(seq 1 30); do
      pg_isready -q -h "$pg_host" -p "$pg_port" && break
      sleep 0.5
    done
  fi
  if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 -p "$redis_port" ping \
      >/dev/null 2>&1; then
    if command -v redis-server >/dev/null; then
      echo "starting Redis ..." >&2
      mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
      redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log >&2 ||
        echo "warning: could not start Redis" >&2
    fi
    for i in $(seq 1 30); do
      redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1 && break
      sleep 0.5
    done
  fi
  export BASTION_TEST_DATABASE_URL="${BASTION_TEST_DATABASE_URL:-postgresql+psycopg://postgres@$pg_host:$pg_port/test}"
  export BASTION_TEST_REDIS_URL="${BASTION_TEST_REDIS_URL:-redis://127.0.0.1:$redis_port/0}"
}
_bastion_services
unset -f _bastion_services
