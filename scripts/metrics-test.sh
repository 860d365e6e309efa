#!/usr/bin/env bash
# Metrics test: the alert rules, the dashboard and a real scrape of a real API by a real Prometheus.
#
# Usage: scripts/metrics-test.sh [OPERATIONS]     (default 25)
#
# 1. promtool check rules and promtool test rules on deploy/prometheus/alerts.yml, jq on the Grafana dashboard.
# 2. Builds the API (Release), starts a throwaway PostgreSQL, makes an API key with the app's own api-keys command
#    and starts the API in Production (diagnostics on) on a free 127.0.0.1 port.
# 3. promtool check metrics on a curl of its /metrics.
# 4. Starts Prometheus (the Debian package's server) on a free 127.0.0.1 port, scraping the API every second
#    with the alert rules loaded, runs OPERATIONS diagnostics.sleep operations to success and asserts through
#    Prometheus's query API that the completed counter rose by exactly OPERATIONS (and the submitted, attempts
#    and completion-duration counts with it).
# 5. Kills the API (SIGKILL) in the middle of an attempt and starts it again: Prometheus must see the lease rescue
#    and the PollingApiLeaseRescues rule must become active.
# 6. Every metric name that the dashboard's queries and the loaded alert rules use is served by /metrics (up
#    aside, which Prometheus makes), and every dashboard query runs on Prometheus.
#
# Needs the .NET SDK, initdb/pg_ctl, curl, jq, prometheus and promtool (Debian: apt-get install prometheus).
# Only 127.0.0.1 is used; every wait has a deadline. The API, Prometheus and the cluster are stopped and the
# temporary folder deleted on every exit. Prints "ok: ..." per step and ends with "metrics test passed (N s)";
# on the first deviation prints "FAIL: expected ...; got ..." (with the logs' tails) and exits 1.
# KEEP_WORK=1 keeps the temporary folder (scrapes, logs, the generated Prometheus config) for a look afterwards.
#
# jq programs are single-quoted on purpose; their $variables are jq --arg bindings.
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/.."

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

OPERATIONS="${1:-25}"
BUILD_DEADLINE_S=900     # a cold Release build on a busy 2-core machine
KEY_DEADLINE_S=120       # the api-keys command (migrates the schema first)
START_DEADLINE_S=60      # the API ready, Prometheus ready, the first scrape
SCRAPE_DEADLINE_S=30     # Prometheus showing what the API counted
STOP_DEADLINE_S=20       # SIGTERM -> exited, then SIGKILL
ALERTS=deploy/prometheus/alerts.yml
ALERT_TESTS=deploy/prometheus/alerts.test.yml
DASHBOARD=deploy/grafana/pollingapi.json
API_DIR=src/PollingApi/bin/Release/net10.0
SUCCEEDED='pollingapi_operations_completed_total{status="succeeded"}'

[[ "$OPERATIONS" =~ ^[1-9][0-9]{0,3}$ ]] || { echo "usage: $0 [OPERATIONS 1..9999]" >&2; exit 2; }

STARTED=$SECONDS
WORK=""
PG_DIR=""
API_PID=""
PROM_PID=""
REPORTED=""

# fail EXPECTED GOT: report the deviation and stop (cleanup prints the logs' tails).
fail() {
  printf 'FAIL: expected %s; got %s\n' "$1" "$2" >&2
  REPORTED=1
  exit 1
}

ok() { echo "ok: $*"; }

# stop_process PID: SIGTERM, then SIGKILL after STOP_DEADLINE_S.
stop_process() {
  local pid="$1" deadline=$((SECONDS + STOP_DEADLINE_S))
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  set +e
  if ((status != 0)) && [[ -z "$REPORTED" ]]; then
    printf 'FAIL: expected the metrics test to run to its end; got exit %s\n' "$status" >&2
  fi
  if ((status != 0)) && [[ -n "$WORK" ]]; then
    for log in "$WORK/api.log" "$WORK/prometheus.log"; do
      if [[ -s "$log" ]]; then
        echo "--- last lines of $(basename "$log") ---" >&2
        tail -40 "$log" >&2
      fi
    done
  fi
  [[ -n "$API_PID" ]] && stop_process "$API_PID"
  [[ -n "$PROM_PID" ]] && stop_process "$PROM_PID"
  [[ -n "$PG_DIR" ]] && scripts/throwaway-postgres.sh stop "$PG_DIR" >/dev/null 2>&1
  [[ -n "$WORK" && -z "${KEEP_WORK:-}" ]] && rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in dotnet curl jq prometheus promtool timeout; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool on PATH (Debian's prometheus package brings prometheus and promtool)" "nothing"
done

WORK="$(mktemp -d /tmp/pollingapi-metrics-test-XXXXXX)"

# free_port FIRST: the first port from FIRST on that nothing listens on at 127.0.0.1.
free_port() {
  local port="$1"
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
  done
  echo "$port"
}

# Metric names that PromQL expressions (one per line on stdin) select, without functions, keywords, label
# matchers, grouping labels, durations, numbers and Grafana variables.
metric_names() {
  sed -E \
    -e 's/"([^"\\]|\\.)*"//g' \
    -e 's/\{[^}]*\}//g' \
    -e 's/\[[^]]*\]//g' \
    -e 's/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?//g' \
    -e 's/\b(by|without|on|ignoring|group_left|group_right)[[:space:]]*\([^)]*\)//g' \
    -e 's/\boffset[[:space:]]+-?[0-9]+[a-z]+//g' \
    -e 's/[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\(/(/g' \
    -e 's/(^|[^A-Za-z0-9_:.])[0-9][0-9.]*([eE][-+]?[0-9]+)?/\1/g' |
    { grep -oE '[A-Za-z_:][A-Za-z0-9_:]*' || true; } |
    { grep -vxE 'and|or|unless|bool|offset|atan2|[Ii]nf|NaN|nan' || true; } |
    sort -u
}

# --- 1. The rules and the dashboard, on their own -------------------------------------------------------------

out="$(promtool check rules "$ALERTS" 2>&1)" || fail "promtool check rules $ALERTS to pass" "$out"
rules_found="$(sed -n 's/.*SUCCESS: \([0-9]*\) rules found.*/\1/p' <<<"$out")"
ok "promtool check rules $ALERTS: ${rules_found:-?} rules"
out="$(promtool test rules "$ALERT_TESTS" 2>&1)" || fail "promtool test rules $ALERT_TESTS to pass" "$out"
grep -q SUCCESS <<<"$out" || fail "SUCCESS from promtool test rules" "$out"
ok "promtool test rules $ALERT_TESTS: $(grep -c '^  - name:' "$ALERT_TESTS") test groups pass"

jq -e . "$DASHBOARD" >/dev/null 2>&1 || fail "$DASHBOARD to be valid JSON" "$(jq . "$DASHBOARD" 2>&1 | tail -1)"
jq -e '
  (.schemaVersion | type == "number" and . >= 36)
  and (.uid | type == "string" and length > 0)
  and (.templating.list | any(.type == "datasource" and .query == "prometheus"))
  and ([.panels[] | select(.type != "row")] | length > 0 and all(.targets | length > 0))
  and ([.panels[] | select(.type != "row") | .targets[] | .datasource.uid] | all(. == "${datasource}"))
' "$DASHBOARD" >/dev/null ||
  fail "$DASHBOARD: schemaVersion, uid, a Prometheus datasource variable, queries on every panel using it" \
    "$(jq -c '{schemaVersion, uid, variables: [.templating.list[] | {name, type}]}' "$DASHBOARD")"
jq -r '[.panels[] | select(.type != "row") | .targets[].expr] | .[] | gsub("\n"; " ")' "$DASHBOARD" >"$WORK/dashboard.exprs"
# A template variable's label_values(metric{...}, label) names a metric too.
jq -r '.templating.list[] | select(.type == "query") | .query | if type == "object" then .query else . end' "$DASHBOARD" |
  sed -nE 's/^label_values\(([A-Za-z_:][A-Za-z0-9_:]*).*/\1/p' >"$WORK/variable.names"
ok "$DASHBOARD is valid JSON: $(wc -l <"$WORK/dashboard.exprs") queries, schemaVersion $(jq .schemaVersion "$DASHBOARD")"

# --- 2. The API, with a key made by its own command --------------------------------------------------------------

if ! timeout "$BUILD_DEADLINE_S" dotnet build src/PollingApi -c Release -v quiet -nologo >"$WORK/build.log" 2>&1; then
  fail "dotnet build src/PollingApi -c Release to succeed within ${BUILD_DEADLINE_S}s" "$(tail -20 "$WORK/build.log")"
fi
ok "built the API (Release)"

# Not inside WORK: the server may run as the postgres OS user, who cannot enter a root-only folder.
PG_DIR="$(mktemp -d -u /tmp/pollingapi-metrics-pg.XXXXXX)"
CONNECTION_STRING="$(scripts/throwaway-postgres.sh start "$PG_DIR" 2>"$WORK/postgres.log")" ||
  fail "a throwaway PostgreSQL from scripts/throwaway-postgres.sh" "$(tail -5 "$WORK/postgres.log")"
ok "throwaway PostgreSQL: $CONNECTION_STRING"

API_KEY="$(cd "$API_DIR" && ConnectionStrings__Operations="$CONNECTION_STRING" ASPNETCORE_ENVIRONMENT=Production \
  timeout "$KEY_DEADLINE_S" dotnet PollingApi.dll api-keys create --tenant metrics \
  --scopes operations:submit,operations:read,operations:manage --name metrics-test 2>"$WORK/api-keys.log")" ||
  fail "api-keys create to print a key" "$(tail -20 "$WORK/api-keys.log")"
[[ "$API_KEY" =~ ^pak_[A-Za-z0-9_-]+$ ]] || fail "a key pak_... from api-keys create" "'$API_KEY'"
ok "made an API key for tenant metrics with the api-keys command"

API_PORT="$(free_port 5380)"
API="http://127.0.0.1:$API_PORT"
# start_api: the API in Production from its output folder (so it reads its appsettings.json as a deployment
# would), with the diagnostics command on, leases short enough that a killed node's work is rescued within
# seconds (section 5), and the consistency check every 2 s instead of 5 min, so that the test sees a check run
# (pollingapi_consistency_findings is served from the start, at 0, and then reports the last check); waits until
# it is ready.
start_api() {
  (cd "$API_DIR" && ConnectionStrings__Operations="$CONNECTION_STRING" ASPNETCORE_ENVIRONMENT=Production     Diagnostics__Enabled=true Operations__LeaseDuration=00:00:03 Operations__LeaseRenewInterval=00:00:01     Operations__LeaseRescueInterval=00:00:01 Operations__ConsistencyCheckInterval=00:00:02 exec dotnet PollingApi.dll --urls "$API") >>"$WORK/api.log" 2>&1 &
  API_PID=$!
  local deadline=$((SECONDS + START_DEADLINE_S))
  until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$API/health/ready" 2>/dev/null)" == 200 ]]; do
    kill -0 "$API_PID" 2>/dev/null || fail "the API to keep running" "it exited"
    ((SECONDS < deadline)) || fail "GET /health/ready -> 200 within ${START_DEADLINE_S}s" "no"
    sleep 0.2
  done
}
start_api
ok "API ready at $API (Production, diagnostics on)"

# --- 3. Lint a real scrape -----------------------------------------------------------------------------------------

# scrape FILE: GET /metrics without credentials (anonymous is the default) into FILE.
scrape() {
  local code
  code="$(curl -sS --max-time 10 -o "$1" -w '%{http_code}' "$API/metrics")" || fail "an answer from GET /metrics" "none"
  [[ "$code" == 200 ]] || fail "HTTP 200 from GET /metrics" "HTTP $code: $(head -c 300 "$1")"
}

# sum_scraped FILE SERIES LABEL_MATCH: the sum of SERIES samples in a scrape whose labels contain LABEL_MATCH.
sum_scraped() {
  awk -v name="$2" -v match_="$3" '
    index($0, name "{") == 1 || $1 == name {
      if (match_ != "" && index($0, match_) == 0) next
      line = $0
      sub(/^[^}]*\}/, "", line)
      if (line == $0) sub(/^[^ ]+/, "", line)
      split(line, fields, " ")
      total += fields[1]
    }
    END { printf "%.0f\n", total }' "$1"
}

scrape "$WORK/metrics.txt"
grep -q '^# TYPE pollingapi_' "$WORK/metrics.txt" ||
  fail "pollingapi_ series in GET /metrics" "$(grep -c '^# TYPE' "$WORK/metrics.txt") other series"
# promtool exits 1 when it cannot parse the scrape and 3 when it only has lint findings. The lint findings of
# series that ASP.NET Core and Npgsql name (e.g. a counter without _total, which their OpenTelemetry names
# dictate) are not ours to fix and are only shown; a finding on a pollingapi_ series, or a scrape that does not
# parse, fails the test.
lint_status=0
promtool check metrics <"$WORK/metrics.txt" >"$WORK/lint.txt" 2>&1 || lint_status=$?
case "$lint_status" in
  0) ;;
  3)
    if grep -q '^pollingapi_' "$WORK/lint.txt"; then
      fail "no promtool check metrics findings on pollingapi_ series" "$(grep '^pollingapi_' "$WORK/lint.txt")"
    fi
    while IFS= read -r finding; do
      echo "note: promtool check metrics, third-party series: $finding"
    done <"$WORK/lint.txt"
    ;;
  *) fail "promtool check metrics to parse GET /metrics" "exit $lint_status: $(head -5 "$WORK/lint.txt")" ;;
esac
ok "promtool check metrics on a real scrape: no findings on pollingapi_ series ($(grep -c '^# TYPE' "$WORK/metrics.txt") series)"

# --- 4. A real Prometheus scraping the API -------------------------------------------------------------------------

PROM_PORT="$(free_port 19390)"
PROM="http://127.0.0.1:$PROM_PORT"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/$ALERTS
scrape_configs:
  - job_name: pollingapi
    static_configs:
      - targets: ["127.0.0.1:$API_PORT"]
EOF
promtool check config "$WORK/prometheus.yml" >"$WORK/check-config.txt" 2>&1 ||
  fail "a valid generated Prometheus config" "$(cat "$WORK/check-config.txt")"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
deadline=$((SECONDS + START_DEADLINE_S))
until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$PROM/-/ready" 2>/dev/null)" == 200 ]]; do
  kill -0 "$PROM_PID" 2>/dev/null || fail "Prometheus to keep running" "it exited"
  ((SECONDS < deadline)) || fail "Prometheus ready within ${START_DEADLINE_S}s" "no"
  sleep 0.2
done

# query EXPR: Prometheus's answer to an instant query, as JSON (status success checked).
query() {
  local body
  body="$(curl -sS --max-time 10 -G "$PROM/api/v1/query" --data-urlencode "query=$1")" ||
    fail "an answer from Prometheus to $1" "none"
  jq -e '.status == "success"' >/dev/null <<<"$body" || fail "status success for the query $1" "$body"
  printf '%s' "$body"
}

# value EXPR: the value of a query with one result; empty when it has none.
value() {
  query "$1" | jq -r 'if (.data.result | length) == 0 then "" else .data.result[0].value[1] end'
}

deadline=$((SECONDS + START_DEADLINE_S))
until [[ "$(value 'up{job="pollingapi"}')" == 1 ]]; do
  ((SECONDS < deadline)) || fail "up{job=\"pollingapi\"} == 1 within ${START_DEADLINE_S}s" \
    "$(curl -s --max-time 5 "$PROM/api/v1/targets" | jq -c '[.data.activeTargets[] | {health, lastError}]')"
  sleep 0.2
done
ok "Prometheus $PROM scrapes the API every second (up{job=\"pollingapi\"} == 1)"

# run_sleep: one diagnostics.sleep operation, waited for in the submit, must succeed.
run_sleep() {
  local code
  code="$(curl -sS --max-time 30 -o "$WORK/body" -w '%{http_code}' -X POST "$API/v1/diagnostics/sleep" \
    -H "X-Api-Key: $API_KEY" -H 'Content-Type: application/json' -H 'Prefer: respond-async, wait=10' \
    --data-binary '{"durationMs": 10}')" || fail "an answer to POST /v1/diagnostics/sleep" "none"
  if [[ "$code" == 202 ]]; then
    # Not done within the wait: long-poll its status monitor.
    local id
    id="$(jq -r .id "$WORK/body")"
    code="$(curl -sS --max-time 30 -o "$WORK/body" -w '%{http_code}' -H "X-Api-Key: $API_KEY" \
      "$API/v1/operations/$id?wait=20")" || fail "an answer to GET /v1/operations/$id?wait=20" "none"
  fi
  if [[ "$code" != 200 ]] || ! jq -e '.status == "succeeded"' "$WORK/body" >/dev/null; then
    fail "a succeeded diagnostics.sleep operation (200)" "HTTP $code: $(cat "$WORK/body")"
  fi
}

# settled EXPR: wait until Prometheus's value of EXPR equals what the API serves now, and print it.
# EXPR is a sum over one series name; the API's figure is summed from a direct scrape with the same match.
settled() {
  local expr="$1" name="$2" match="$3" deadline=$((SECONDS + SCRAPE_DEADLINE_S)) seen direct
  while :; do
    scrape "$WORK/direct.txt"
    direct="$(sum_scraped "$WORK/direct.txt" "$name" "$match")"
    seen="$(value "$expr")"
    if [[ -n "$seen" && "$seen" == "$direct" ]]; then
      echo "$seen"
      return
    fi
    ((SECONDS < deadline)) || fail "Prometheus's $expr to reach the API's $direct within ${SCRAPE_DEADLINE_S}s" "'$seen'"
    sleep 0.5
  done
}

# One operation first, so that every series below exists before the measured window opens.
run_sleep
declare -A CHECKED=(
  [completed]="sum($SUCCEEDED)|pollingapi_operations_completed_total|status=\"succeeded\""
  [submitted]='sum(pollingapi_operations_submitted_total{kind="diagnostics.sleep"})|pollingapi_operations_submitted_total|kind="diagnostics.sleep"'
  [attempts]='sum(pollingapi_operation_attempts_total{outcome="succeeded"})|pollingapi_operation_attempts_total|outcome="succeeded"'
  [durations]='sum(pollingapi_operation_completion_duration_seconds_count{status="succeeded"})|pollingapi_operation_completion_duration_seconds_count|status="succeeded"'
)
declare -A BEFORE=()
for what in completed submitted attempts durations; do
  IFS='|' read -r expr name match <<<"${CHECKED[$what]}"
  BEFORE[$what]="$(settled "$expr" "$name" "$match")"
done
ok "before: Prometheus has sum($SUCCEEDED) = ${BEFORE[completed]}, the same as the API serves"

for ((i = 0; i < OPERATIONS; i++)); do
  run_sleep
done
ok "ran $OPERATIONS diagnostics.sleep operations to succeeded"

# The counter must reach exactly before + N, and stay there for later scrapes: not short, not over.
want=$((BEFORE[completed] + OPERATIONS))
deadline=$((SECONDS + SCRAPE_DEADLINE_S))
while :; do
  seen="$(value "sum($SUCCEEDED)")"
  [[ -n "$seen" ]] && ((seen > want)) && fail "sum($SUCCEEDED) = $want in Prometheus" "$seen"
  [[ "$seen" == "$want" ]] && break
  ((SECONDS < deadline)) || fail "sum($SUCCEEDED) = $want in Prometheus within ${SCRAPE_DEADLINE_S}s" "'$seen'"
  sleep 0.5
done
reached_at="$(query 'time()' | jq -r '.data.result[1]')"
deadline=$((SECONDS + SCRAPE_DEADLINE_S))
until query "max(timestamp($SUCCEEDED)) > $reached_at + 2" | jq -e '.data.result | length > 0' >/dev/null; do
  ((SECONDS < deadline)) || fail "a scrape more than 2 s after the counter reached $want" "none"
  sleep 0.5
done
seen="$(value "sum($SUCCEEDED)")"
[[ "$seen" == "$want" ]] || fail "sum($SUCCEEDED) to stay at $want" "$seen"
ok "after: Prometheus has sum($SUCCEEDED) = $seen, exactly ${BEFORE[completed]} + $OPERATIONS"

for what in submitted attempts durations; do
  IFS='|' read -r expr name match <<<"${CHECKED[$what]}"
  seen="$(settled "$expr" "$name" "$match")"
  ((seen == BEFORE[$what] + OPERATIONS)) ||
    fail "$expr to rise by $OPERATIONS in Prometheus (from ${BEFORE[$what]})" "$seen"
  ok "$expr rose by exactly $OPERATIONS to $seen"
done

deadline=$((SECONDS + SCRAPE_DEADLINE_S))
until [[ "$(value 'max(pollingapi_consistency_findings{check="all"})')" == 0 ]]; do
  ((SECONDS < deadline)) || fail "pollingapi_consistency_findings{check=\"all\"} = 0 in Prometheus within ${SCRAPE_DEADLINE_S}s" \
    "'$(value 'max(pollingapi_consistency_findings{check="all"})')'"
  sleep 0.5
done
ok "the consistency check ran: Prometheus has pollingapi_consistency_findings{check=\"all\"} = 0"

# The alert rules Prometheus loaded: all of them, evaluated without errors, none firing on a healthy API.
deadline=$((SECONDS + START_DEADLINE_S))
until curl -sS --max-time 10 "$PROM/api/v1/rules" >"$WORK/rules.json" &&
  jq -e '[.data.groups[] | select(.name == "pollingapi") | .rules[]]
         | length > 0 and all(.health == "ok" and .lastEvaluation != "0001-01-01T00:00:00Z")' "$WORK/rules.json" >/dev/null; do
  ((SECONDS < deadline)) || fail "every rule of group pollingapi evaluated with health ok" \
    "$(jq -c '[.data.groups[].rules[] | {name, health, lastError}]' "$WORK/rules.json")"
  sleep 0.5
done
loaded="$(jq '[.data.groups[] | select(.name == "pollingapi") | .rules[]] | length' "$WORK/rules.json")"
[[ "$loaded" == "${rules_found:-}" ]] || fail "Prometheus to load the $rules_found rules of $ALERTS" "$loaded"
firing="$(jq -r '[.data.groups[].rules[] | select(.state == "firing") | .name] | join(", ")' "$WORK/rules.json")"
[[ -z "$firing" ]] || fail "no alert firing on a healthy API" "$firing"
ok "Prometheus loaded the $loaded rules of group pollingapi; all evaluate, none fires"

# --- 5. A lease rescue, as Prometheus and the alert rules see it --------------------------------------------------
# A node killed in the middle of an attempt leaves a lease that runs out, and the next node's rescue job makes the
# operation pending again. The rescue counter appears only with its first rescue: the case PollingApiLeaseRescues
# must catch although increase() has no earlier sample to compare with.

code="$(curl -sS --max-time 30 -o "$WORK/body" -w '%{http_code}' -X POST "$API/v1/diagnostics/sleep" \
  -H "X-Api-Key: $API_KEY" -H 'Content-Type: application/json' --data-binary '{"durationMs": 600000}')" ||
  fail "an answer to POST /v1/diagnostics/sleep" "none"
[[ "$code" == 202 ]] || fail "HTTP 202 for a 10-minute sleep" "HTTP $code: $(cat "$WORK/body")"
long_id="$(jq -r .id "$WORK/body")"
deadline=$((SECONDS + SCRAPE_DEADLINE_S))
until [[ "$(jq -r .status "$WORK/body")" == running ]]; do
  ((SECONDS < deadline)) || fail "operation $long_id running within ${SCRAPE_DEADLINE_S}s" "$(jq -r .status "$WORK/body")"
  sleep 0.2
  curl -sS --max-time 10 -o "$WORK/body" -H "X-Api-Key: $API_KEY" "$API/v1/operations/$long_id" ||
    fail "an answer to GET /v1/operations/$long_id" "none"
done
kill -KILL "$API_PID"
wait "$API_PID" 2>/dev/null || true
API_PID=""
ok "killed the API (SIGKILL) while operation $long_id was running"
start_api
ok "started the API again"

deadline=$((SECONDS + SCRAPE_DEADLINE_S))
until [[ "$(value 'sum(pollingapi_lease_rescues_total{outcome="pending"})')" == 1 ]]; do
  ((SECONDS < deadline)) || fail "sum(pollingapi_lease_rescues_total{outcome=\"pending\"}) = 1 in Prometheus within ${SCRAPE_DEADLINE_S}s" \
    "'$(value 'sum(pollingapi_lease_rescues_total)')'"
  sleep 0.5
done
seen="$(value 'sum(pollingapi_operation_attempts_total{outcome="lease_lost"})')"
[[ "$seen" == 1 ]] || fail "sum(pollingapi_operation_attempts_total{outcome=\"lease_lost\"}) = 1 in Prometheus" "'$seen'"
ok "Prometheus has the restarted node's rescue: pollingapi_lease_rescues_total{outcome=\"pending\"} = 1, one lease_lost attempt"
deadline=$((SECONDS + SCRAPE_DEADLINE_S))
until curl -sS --max-time 10 "$PROM/api/v1/alerts" >"$WORK/alerts.json" &&
  jq -e '.data.alerts | any(.labels.alertname == "PollingApiLeaseRescues" and .labels.outcome == "pending"
                            and .labels.severity == "warning" and (.state == "pending" or .state == "firing"))' \
    "$WORK/alerts.json" >/dev/null; do
  ((SECONDS < deadline)) || fail "PollingApiLeaseRescues active for outcome pending within ${SCRAPE_DEADLINE_S}s" \
    "$(jq -c '[.data.alerts[] | {name: .labels.alertname, state, labels}]' "$WORK/alerts.json")"
  sleep 0.5
done
ok "Prometheus's PollingApiLeaseRescues alert is active (outcome pending; it fires after its 1 minute)"

code="$(curl -sS --max-time 30 -o "$WORK/body" -w '%{http_code}' -X POST -H "X-Api-Key: $API_KEY" \
  "$API/v1/operations/$long_id/cancel")" || fail "an answer to POST /v1/operations/$long_id/cancel" "none"
[[ "$code" == 200 || "$code" == 202 ]] || fail "HTTP 200 or 202 from POST /v1/operations/$long_id/cancel" "HTTP $code: $(cat "$WORK/body")"
code="$(curl -sS --max-time 30 -o "$WORK/body" -w '%{http_code}' -H "X-Api-Key: $API_KEY" \
  "$API/v1/operations/$long_id?wait=20")" || fail "an answer to GET /v1/operations/$long_id?wait=20" "none"
if [[ "$code" != 200 ]] || ! jq -e '.status == "cancelled"' "$WORK/body" >/dev/null; then
  fail "operation $long_id cancelled (200)" "HTTP $code: $(cat "$WORK/body")"
fi
# One more operation, so that the restarted node serves every engine series again.
run_sleep
ok "cancelled the rescued operation and ran one more"

# --- 5b. The logs: JSON lines, an attempt's carrying its operation, kind, attempt and trace --------------------------

trace_id="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
code="$(curl -sS --max-time 30 -o "$WORK/body" -w '%{http_code}' -X POST -H "X-Api-Key: $API_KEY" \
  -H 'Content-Type: application/json' -H 'Prefer: respond-async, wait=10' -H "traceparent: 00-$trace_id-0123456789abcdef-01" \
  --data-binary '{"durationMs": 1, "failPermanently": true}' "$API/v1/diagnostics/sleep")" ||
  fail "an answer to a permanently failing sleep" "none"
[[ "$code" == 200 ]] || fail "HTTP 200 (failed) for a permanently failing sleep" "HTTP $code: $(cat "$WORK/body")"
failed_id="$(jq -r .id "$WORK/body")"
# The handler's permanent failure is logged at Information with the attempt's scope.
deadline=$((SECONDS + 10))
until grep -E '^\{' "$WORK/api.log" | jq -e --arg id "$failed_id" --arg trace "$trace_id" '
    select(.LogLevel == "Information" and (.Message | startswith("Operation failed permanently")))
    | [.Scopes[]? | objects] | add // {}
    | select(.OperationId == $id and .OperationKind == "diagnostics.sleep" and .Attempt == 1 and .TraceId == $trace)' \
    >/dev/null 2>&1; do
  ((SECONDS < deadline)) || fail "a JSON log line of operation $failed_id's attempt with OperationId, OperationKind, Attempt and TraceId $trace_id" \
    "$(grep -F "$failed_id" "$WORK/api.log" | tail -3)"
  sleep 0.2
done
ok "the attempt's log line is JSON with its operation id, kind, attempt and the submit's trace id"

# --- 6. Every name the dashboard and the alerts use is served ------------------------------------------------------

scrape "$WORK/final.txt"
grep -vE '^(#|$)' "$WORK/final.txt" | sed -E 's/[{ ].*//' | sort -u >"$WORK/served.names"
jq -r '.data.groups[] | select(.name == "pollingapi") | .rules[].query | gsub("\n"; " ")' "$WORK/rules.json" \
  | metric_names >"$WORK/alerts.names"
{ metric_names <"$WORK/dashboard.exprs"; cat "$WORK/variable.names"; } | sort -u >"$WORK/dashboard.names"
for source in alerts dashboard; do
  missing="$(grep -vx up "$WORK/$source.names" | comm -23 - "$WORK/served.names" | tr '\n' ' ')"
  [[ -z "$missing" ]] || fail "every metric name in the $source served by GET /metrics" "not served: $missing"
  ok "metric names in the $source ($(grep -vxc up "$WORK/$source.names")), all served by GET /metrics: $(grep -vx up "$WORK/$source.names" | tr '\n' ' ')"
done

# Every dashboard query runs on Prometheus, with the variables as Grafana would fill them.
while IFS= read -r expr; do
  expr="${expr//\$__rate_interval/1m}"
  expr="${expr//\$job/pollingapi}"
  expr="${expr//\$kind/.*}"
  query "$expr" >/dev/null
done <"$WORK/dashboard.exprs"
ok "every dashboard query runs on Prometheus"

echo "metrics test passed ($((SECONDS - STARTED)) s)"
