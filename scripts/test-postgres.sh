#!/usr/bin/env bash
# Start a local PostgreSQL server for the registry contract tests and print its URL.
# Idempotent: installs the Debian package if missing (needs root), starts the
# cluster, creates the jetfleet role and an empty test database.
set -euo pipefail
URL="postgresql+psycopg://jetfleet:jetfleet@127.0.0.1:5432/jetfleet_test"
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then echo "postgresql is not installed and we are not root" >&2; exit 1; fi
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
    cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster start >&2
fi
as_pg() { runuser -u postgres -- "$@"; }
for _ in $(seq 1 30); do as_pg psql -qtAc "select 1" >/dev/null 2>&1 && break; sleep 0.5; done
as_pg psql -qtAc "select 1 from pg_roles where rolname='jetfleet'" | grep -q 1 \
    || as_pg psql -qc "create role jetfleet login superuser password 'jetfleet'" >&2
as_pg psql -qtAc "select 1 from pg_database where datname='jetfleet_test'" | grep -q 1 \
    || as_pg createdb -O jetfleet jetfleet_test >&2
echo "$URL"
