#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for scripts that run the API as a separate process (CI's smoke test):
# the API and its api-keys command must share one database, which the API's own throwaway cluster
# (used when no connection string is configured) cannot offer.
#
# Usage: scripts/throwaway-postgres.sh start DIR   initdb + start on a free loopback port; prints the
#                                                   connection string (database "pollingapi") on stdout
#        scripts/throwaway-postgres.sh stop DIR    stop it and delete DIR
#
# Trusts every local connection: for tests only. As root, the server runs as the postgres OS user.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
command="$1"
dir="$2"

locate() {
  if command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
    return
  fi
  local found
  found=$(compgen -G "/usr/lib/postgresql/*/bin/$1" | sort -V | tail -1 || true)
  [[ -n "$found" ]] || { echo "$1 not found (install the PostgreSQL server binaries)" >&2; exit 1; }
  echo "$found"
}

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$command" in
  start)
    initdb=$(locate initdb)
    pg_ctl=$(locate pg_ctl)
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir"
    as_owner "$initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-sync --no-instructions >/dev/null
    # A port that looked free can be taken before the server binds it (another cluster starting or stopping at the
    # same moment): then the next free one is tried, three times in all, and the server's log is shown if all fail.
    port=55432
    for try in 1 2 3; do
      while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
      done
      if as_owner "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=off" start >/dev/null; then
        break
      fi
      echo "throwaway PostgreSQL did not start on port $port (try $try of 3); its log ends:" >&2
      tail -n 5 "$dir/server.log" >&2 || true
      [[ $try -lt 3 ]] || exit 1
      port=$((port + 1))
    done
    as_owner "$(locate psql)" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt \
      -c "CREATE DATABASE pollingapi" >/dev/null
    echo "Host=127.0.0.1;Port=$port;Username=postgres;Database=pollingapi"
    ;;
  stop)
    if [[ -d "$dir/data" ]]; then
      as_owner "$(locate pg_ctl)" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  *)
    usage
    ;;
esac
