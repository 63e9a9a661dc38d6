#!/bin/sh
# Entrypoint of the Postgres example guest (runs as the image USER, postgres): initialise the data
# directory when it has none (demo user "demo", password "demo", scram over TCP), then run Postgres
# in the foreground so init's vmstart respawns it if it exits. With --init-only it initialises and
# exits: the image build runs it that way (spec `merge` RUN) so the data directory ships in the
# image, because initdb under TCG takes minutes on a first boot; the boot-time path stays as a
# fallback for images built without it.
set -eu
BIN=/usr/lib/postgresql/15/bin
PGDATA=${PGDATA:-/var/lib/postgresql/data}
mkdir -p /run/postgresql 2>/dev/null || true
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  pw=$(mktemp)
  echo "${POSTGRES_PASSWORD:-demo}" > "$pw"
  "$BIN/initdb" -D "$PGDATA" -U "${POSTGRES_USER:-demo}" --pwfile="$pw" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pw"
  echo "include '/etc/postgresql-neon/neon-example.conf'" >> "$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi
if [ "${1:-}" = "--init-only" ]; then exit 0; fi
exec "$BIN/postgres" -D "$PGDATA" -k /run/postgresql
