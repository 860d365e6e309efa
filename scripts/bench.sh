#!/usr/bin/env bash
# The benchmark (docs/benchmarks.md): builds the API and the load driver in Release, then runs the driver, which
# starts its own durable throwaway PostgreSQL, measures it with pgbench, starts the API as a real process and
# drives the scenarios at it. Prints progress on stderr, and on stdout a markdown table plus one JSON line
# starting with {"benchmark":.
#
# Usage: scripts/bench.sh [--quick] [--runs N] [--seconds S] [...]   (scripts/bench.sh --help lists them all)
#   --quick   1 run with short windows, 100,000 seeded rows and 5,000 operations per (k) drain: about 4 minutes, for CI
#   default   3 runs (the median is reported) with 10 s windows, 10,000,000 seeded rows and 20,000 operations per (k) drain:
#             about 25 minutes; (h) needs the Hangfire peer in ../shared/peers/hangfire-api (built here when it is there)
#
# Exit status: 0 when everything was measured (also when targets are missed: it is a measurement), 1 when
# something broke, 2 on a usage error, 130 when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

for arg in "$@"; do
  if [[ "$arg" == "--help" || "$arg" == "-h" ]]; then
    exec dotnet run --project tests/PollingApi.Benchmarks -c Release -- --help
  fi
done

# Another build of the same project may be writing the same output folder right now; one retry gets past that.
build() {
  if ! dotnet build "$1" -c Release -nologo -v quiet >&2; then
    echo "== build of $1 failed; retrying once" >&2
    sleep 5
    dotnet build "$1" -c Release -nologo -v quiet >&2
  fi
}

started=$SECONDS
echo "== building src/PollingApi and tests/PollingApi.Benchmarks (Release)" >&2
build src/PollingApi
build tests/PollingApi.Benchmarks
# (h) runs the Hangfire peer next to the API when its folder is there (the driver leaves (h) out otherwise).
peer_dir=../shared/peers/hangfire-api
for arg in "$@"; do
  [[ "${prev:-}" == "--peer" ]] && peer_dir=$arg
  [[ "$arg" == "--no-peer" ]] && peer_dir=
  prev=$arg
done
if [[ -n "$peer_dir" && -f "$peer_dir/hangfire-api.csproj" ]]; then
  echo "== building the Hangfire peer in $peer_dir (Release)" >&2
  build "$peer_dir"
fi
echo "== built in $((SECONDS - started)) s; load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

status=0
dotnet tests/PollingApi.Benchmarks/bin/Release/net10.0/PollingApi.Benchmarks.dll \
  --api-dll src/PollingApi/bin/Release/net10.0/PollingApi.dll "$@" || status=$?
echo "== scripts/bench.sh took $((SECONDS - started)) s (exit status $status)" >&2
exit "$status"
