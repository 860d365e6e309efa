#!/usr/bin/env bash
# Runs every test project against real PostgreSQL and prints the totals as "N passed, N failed".
# The suites start their own throwaway cluster (initdb/pg_ctl) unless POLLINGAPI_TEST_POSTGRES names a server.
set -euo pipefail
cd "$(dirname "$0")/.."

results=TestResults
rm -rf "$results"
status=0
dotnet test PollingApi.sln --logger trx --results-directory "$results" "$@" || status=$?

passed=0
failed=0
shopt -s nullglob
for trx in "$results"/*.trx; do
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
  f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
done
echo "$passed passed, $failed failed"
if [[ $status -eq 0 && $passed -eq 0 ]]; then
  echo "no test ran" >&2
  exit 1
fi
exit "$status"
