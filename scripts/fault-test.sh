#!/usr/bin/env bash
# Fault tests: builds the API (Release) and the harness, then starts a throwaway PostgreSQL and real API
# processes and breaks them under load (see docs/fault-tests.md).
#
# Usage: scripts/fault-test.sh <crash|outage|shutdown|webhooks|clock-skew|network-stall|any-node|pg-crash|all> [--operations N] [--duration S] [--seed N] ...
#        scripts/fault-test.sh all                          # CI size, about 6 minutes on 2 cores
#        scripts/fault-test.sh crash --operations 10000     # bigger
#
# Exits with the harness's exit code: 0 passed, 1 an invariant was violated, 2 usage, 3 the harness failed.
set -euo pipefail
cd "$(dirname "$0")/.."

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

dotnet build src/PollingApi -c Release -v quiet -nologo
dotnet build tests/PollingApi.FaultTests -c Release -v quiet -nologo

status=0
dotnet tests/PollingApi.FaultTests/bin/Release/net10.0/PollingApi.FaultTests.dll "$@" || status=$?
exit "$status"
