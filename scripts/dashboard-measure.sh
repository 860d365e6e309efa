#!/usr/bin/env bash
# The dashboard with a full table: seeds finished operations (1,000,000 unless --rows N) into a throwaway database,
# opens the overview in Debian's chromium and reports the first load's bytes and how long the overview takes to show
# (artifacts/dashboard-measure.json). The browser tests run the same test at 20,000 rows.
#
# Usage: scripts/dashboard-measure.sh [--rows N]
set -euo pipefail
cd "$(dirname "$0")/.."

rows=1000000
while (($#)); do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    *) echo "usage: scripts/dashboard-measure.sh [--rows N]" >&2; exit 2 ;;
  esac
done

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
POLLINGAPI_DASHBOARD_ROWS=$rows dotnet test tests/PollingApi.BrowserTests -c Release --nologo \
  --filter "FullyQualifiedName~DashboardWeightTests" --logger "console;verbosity=detailed"
cat artifacts/dashboard-measure.json
