#!/usr/bin/env bash
# Fuzz tests: builds the API (Release) and the fuzz suite, then starts a throwaway PostgreSQL and one real API process
# and sends it thousands of malformed or hostile requests from a seeded generator (see docs/fuzz-tests.md).
#
# Usage: scripts/fuzz-test.sh [--requests N] [--seed N] [--duration-limit S] ...
#        scripts/fuzz-test.sh --requests 2000       # CI size
#        scripts/fuzz-test.sh                        # full size, 10000 requests
#        scripts/fuzz-test.sh --seed 1234            # repeat a run (the seed is printed)
#
# Exits with the suite's exit code: 0 passed, 1 a check was violated, 2 usage, 3 the harness failed.
set -euo pipefail
cd "$(dirname "$0")/.."

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

dotnet build src/PollingApi -c Release -v quiet -nologo
dotnet build tests/PollingApi.FuzzTests -c Release -v quiet -nologo

status=0
dotnet tests/PollingApi.FuzzTests/bin/Release/net10.0/PollingApi.FuzzTests.dll "$@" || status=$?
exit "$status"
