#!/usr/bin/env bash
# Package test: the engine as an app outside this repository gets it.
#
# Usage: scripts/package-test.sh
#
# Packs src/PollingApi.Operations as a NuGet package with a version of its own (0.1.0-test.<time>.<pid>, so no
# NuGet cache can serve an older copy), builds samples/PackageSample (not in PollingApi.sln, without the
# repository's Directory.*.props) against that package, starts a throwaway PostgreSQL and the sample on 127.0.0.1,
# and drives its greetings.create command with curl and jq: submit -> 202 + Location, poll -> 200 with the
# handler's result, a bad body -> 400 problem+json. Needs the .NET SDK, initdb/pg_ctl, curl, jq and unzip.
#
# Nothing is written into the work tree: the package, both builds and the cluster live in one temporary folder,
# deleted on exit with the cluster stopped, and the test version is removed from the NuGet packages folder.
# Prints "ok: ..." per step and ends with "package test: PASS (N s)", or "package test: FAIL: ..." and exit 1.
#
# jq programs are single-quoted on purpose; their $variables are jq --arg bindings.
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/.."

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

START_DEADLINE_S=60     # the sample listening and ready
POLL_DEADLINE_S=30      # submit -> done
POLL_INTERVAL_S=0.2
STOP_DEADLINE_S=30      # SIGTERM -> exited
PACKAGE_ID=PollingApi.Operations
SAMPLE=samples/PackageSample
UUID_V7_RE='^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$'

WORK=""
PG_DATA=""
APP_PID=""
PACKAGES_COPY=""
REPORTED=""
STATUS=""

# fail EXPECTED GOT [LOG]: report the deviation (with the last response body, or a log's tail) and stop.
fail() {
  {
    printf 'package test: FAIL: expected %s; got %s\n' "$1" "$2"
    if [[ -n "${3-}" && -s "$3" ]]; then
      echo "--- last lines of $(basename "$3") ---"
      tail -60 "$3"
    elif [[ -n "$WORK" && -s "$WORK/body" ]]; then
      printf 'response body: %s\n' "$(cat "$WORK/body")"
    fi
  } >&2
  REPORTED=1
  exit 1
}

cleanup() {
  local status=$?
  set +e
  if [[ -n "$APP_PID" ]] && kill -0 "$APP_PID" 2>/dev/null; then
    kill -KILL "$APP_PID" 2>/dev/null
    wait "$APP_PID" 2>/dev/null
  fi
  if [[ -n "$PG_DATA" && -f "$PG_DATA/postmaster.pid" ]]; then
    as_pg "$PG_CTL" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
  fi
  if [[ -n "$PACKAGES_COPY" ]]; then
    rm -rf "$PACKAGES_COPY"
    rmdir "$(dirname "$PACKAGES_COPY")" 2>/dev/null
  fi
  [[ -n "$WORK" ]] && rm -rf "$WORK"
  if ((status != 0)) && [[ -z "$REPORTED" ]]; then
    echo "package test: FAIL (exit $status)" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in dotnet curl jq unzip; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool on PATH" "nothing"
done

# The PostgreSQL server binaries: on PATH, or the newest under /usr/lib/postgresql (as Debian installs them).
pg_tool() {
  local found
  found="$(command -v "$1" 2>/dev/null)" || found="$(compgen -G "/usr/lib/postgresql/*/bin/$1" | sort -V | tail -1)" || true
  [[ -n "$found" ]] && printf '%s' "$found"
}
INITDB="$(pg_tool initdb)" || fail "initdb on PATH or under /usr/lib/postgresql/*/bin" "nothing"
PG_CTL="$(pg_tool pg_ctl)" || fail "pg_ctl on PATH or under /usr/lib/postgresql/*/bin" "nothing"

# PostgreSQL refuses to run as root: then its tools run as the postgres OS user, from a folder it may enter.
as_pg() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

WORK="$(mktemp -d /tmp/pollingapi-package-test-XXXXXX)"
chmod 755 "$WORK"
VERSION="0.1.0-test.$(date -u +%Y%m%d%H%M%S).$$"
FEED="$WORK/feed"

# 1. Pack the engine. Its build output goes to the temporary folder too, so the work tree's bin/ and obj/ keep
#    what the solution build put there. TreatWarningsAsErrors holds for pack warnings (NU5xxx) as well.
if ! dotnet pack src/PollingApi.Operations -c Release -o "$FEED" -p:Version="$VERSION" \
    --artifacts-path "$WORK/engine" -v quiet -nologo >"$WORK/pack.log" 2>&1; then
  fail "dotnet pack src/PollingApi.Operations to succeed" "a failure" "$WORK/pack.log"
fi
NUPKG="$FEED/$PACKAGE_ID.$VERSION.nupkg"
[[ -f "$NUPKG" ]] || fail "$NUPKG" "$(ls "$FEED")"
unzip -p "$NUPKG" "$PACKAGE_ID.nuspec" >"$WORK/nuspec"
for want in "<id>$PACKAGE_ID</id>" "<version>$VERSION</version>" "<readme>README.md</readme>" \
    '<license type="expression">MIT</license>' '<frameworkReference name="Microsoft.AspNetCore.App"'; do
  grep -qF "$want" "$WORK/nuspec" || fail "the nuspec to contain $want" "$(cat "$WORK/nuspec")"
done
unzip -l "$NUPKG" >"$WORK/contents"
for want in README.md "lib/net10.0/$PACKAGE_ID.dll" "lib/net10.0/$PACKAGE_ID.xml"; do
  grep -qE " $want\$" "$WORK/contents" || fail "$want in the package" "$(cat "$WORK/contents")"
done
echo "ok: packed $PACKAGE_ID $VERSION (readme, MIT licence, dll and XML docs)"

# 2. Build the sample against that package: its nuget.config's sources plus the temporary feed. The version is
#    new, so restore must take the package from the feed; it is removed from the packages folder on exit.
packages_folder="$(dotnet nuget locals global-packages --list | sed -n 's/^global-packages: //p')"
[[ -n "$packages_folder" ]] || fail "the NuGet global packages folder" "nothing from dotnet nuget locals"
package_lower="$(tr '[:upper:]' '[:lower:]' <<<"$PACKAGE_ID")"
PACKAGES_COPY="${packages_folder%/}/$package_lower/$VERSION"
# Copies left by runs that were killed before they could clean up (an hour is far longer than any run).
if [[ -d "${packages_folder%/}/$package_lower" ]]; then
  find "${packages_folder%/}/$package_lower" -mindepth 1 -maxdepth 1 -name '*-test.*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
fi
if ! dotnet build "$SAMPLE" -c Release -p:PollingApiOperationsVersion="$VERSION" -p:RestoreAdditionalProjectSources="$FEED" \
    --artifacts-path "$WORK/sample" -v quiet -nologo >"$WORK/build.log" 2>&1; then
  fail "the sample to build against $PACKAGE_ID $VERSION" "a failure" "$WORK/build.log"
fi
assets="$(find "$WORK/sample/obj" -name project.assets.json -print -quit)"
[[ -n "$assets" ]] && grep -qF "\"$PACKAGE_ID/$VERSION\"" "$assets" ||
  fail "the sample restored with $PACKAGE_ID/$VERSION" "another version, or no project.assets.json" "$WORK/build.log"
APP_DLL="$(find "$WORK/sample/bin" -name PackageSample.dll -print -quit)"
[[ -n "$APP_DLL" ]] || fail "PackageSample.dll in the build output" "nothing"
echo "ok: samples/PackageSample built against the package"

# 3. A throwaway PostgreSQL on a free loopback port below the ephemeral range (not durable: it is thrown away).
free_port() {
  local port tries
  for ((tries = 0; tries < 100; tries++)); do
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s' "$port"
      return 0
    fi
  done
  return 1
}
mkdir "$WORK/pg"
((EUID == 0)) && chown postgres:postgres "$WORK/pg"
PG_DATA="$WORK/pg/data"
as_pg "$INITDB" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --no-sync --no-instructions >"$WORK/initdb.log" 2>&1 ||
  fail "initdb to succeed" "a failure" "$WORK/initdb.log"
pg_started=""
for ((attempt = 1; attempt <= 3; attempt++)); do
  PG_PORT="$(free_port)" || fail "a free loopback port" "none after 100 tries"
  if as_pg "$PG_CTL" -D "$PG_DATA" -l "$WORK/pg/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK/pg -c fsync=off -c synchronous_commit=off -c log_min_messages=warning" \
      start >"$WORK/pg_ctl.log" 2>&1; then
    pg_started=1
    break
  fi
done
[[ -n "$pg_started" ]] || fail "PostgreSQL to start" "a failure" "$WORK/pg/server.log"
echo "ok: PostgreSQL started on 127.0.0.1:$PG_PORT"

# 4. The sample, from its output folder (so it reads its appsettings.json), on a port the OS picks.
APP_LOG="$WORK/sample.log"
(cd "$(dirname "$APP_DLL")" &&
  ASPNETCORE_ENVIRONMENT=Production \
  ConnectionStrings__Operations="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=postgres" \
  exec dotnet PackageSample.dll --urls http://127.0.0.1:0) >"$APP_LOG" 2>&1 &
APP_PID=$!
BASE_URL=""
deadline=$((SECONDS + START_DEADLINE_S))
until BASE_URL="$(grep -o 'Now listening on: http://127\.0\.0\.1:[0-9]*' "$APP_LOG" | head -1 | sed 's/^Now listening on: //')" &&
    [[ -n "$BASE_URL" ]]; do
  kill -0 "$APP_PID" 2>/dev/null || fail "the sample to keep running" "it exited" "$APP_LOG"
  ((SECONDS < deadline)) || fail "the sample listening within ${START_DEADLINE_S}s" "no 'Now listening on'" "$APP_LOG"
  sleep "$POLL_INTERVAL_S"
done

# request METHOD URL [JSON]: one HTTP exchange, bounded in time; sets STATUS, fills $WORK/headers and $WORK/body.
request() {
  local method="$1" url="$2" data="${3-}"
  local args=(--max-time 10 -sS -X "$method" -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}')
  if [[ -n "$data" ]]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$data")
  fi
  : >"$WORK/headers"
  : >"$WORK/body"
  STATUS="$(curl "${args[@]}" "$url" 2>"$WORK/curl-stderr")" || STATUS=000
}

# header NAME: the value of NAME in the last response (empty if absent).
header() {
  tr -d '\r' <"$WORK/headers" | awk -v want="$(tr '[:upper:]' '[:lower:]' <<<"$1")" '
    { i = index($0, ":"); if (i > 0 && tolower(substr($0, 1, i - 1)) == want) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); r = v } }
    END { print r }'
}

expect_status() {
  [[ "$STATUS" == "$1" ]] || fail "HTTP $1 from $2" "HTTP $STATUS $(tr -d '\n' <"$WORK/curl-stderr")"
}

# expect_jq EXPECTED TEST_FILTER GOT_FILTER [jq options...]: TEST_FILTER must be true on the last body.
expect_jq() {
  local expected="$1" test_filter="$2" got_filter="$3"
  shift 3
  jq -e "$@" "$test_filter" "$WORK/body" >/dev/null 2>&1 ||
    fail "$expected" "$(jq -c "$@" "$got_filter" "$WORK/body" 2>/dev/null || echo '<non-JSON body>')"
}

# expect_problem STATUS TYPE WHAT: the last answer is an application/problem+json of that status (and type).
expect_problem() {
  expect_status "$1" "$3"
  [[ "$(header Content-Type)" == application/problem+json* ]] ||
    fail "Content-Type application/problem+json from $3" "'$(header Content-Type)'"
  expect_jq "status $1 in the problem from $3" '.status == ($s | tonumber)' '.status' --arg s "$1"
  if [[ -n "$2" ]]; then
    expect_jq "problem type $2 from $3" '.type == $t' '.type' --arg t "$2"
  fi
}

until request GET "$BASE_URL/health/ready" && [[ "$STATUS" == 200 ]]; do
  kill -0 "$APP_PID" 2>/dev/null || fail "the sample to keep running" "it exited" "$APP_LOG"
  ((SECONDS < deadline)) || fail "GET /health/ready -> 200 within ${START_DEADLINE_S}s" "HTTP $STATUS" "$APP_LOG"
  sleep "$POLL_INTERVAL_S"
done
echo "ok: the sample is ready at $BASE_URL (schema migrated by the package)"

# 5. Submit -> 202 with Location and an id.
what='POST /v1/greetings {"name": "Ada"}'
request POST "$BASE_URL/v1/greetings" '{"name": "Ada"}'
expect_status 202 "$what"
expect_jq "an operation of kind greetings.create, not done, from $what" \
  '.kind == "greetings.create" and .done == false and (.status == "pending" or .status == "running")' '{kind, status, done}'
OP_ID="$(jq -r '.id // empty | strings' "$WORK/body")"
[[ "$OP_ID" =~ $UUID_V7_RE ]] || fail "a UUIDv7 id from $what" "'$OP_ID'"
LOCATION="$(header Location)"
[[ "$LOCATION" == "$BASE_URL/v1/operations/$OP_ID" ]] || fail "Location $BASE_URL/v1/operations/$OP_ID from $what" "'$LOCATION'"
[[ "$(header Retry-After)" =~ ^[1-9][0-9]*$ ]] || fail "Retry-After in whole seconds from $what" "'$(header Retry-After)'"
echo "ok: $what -> 202, Location $LOCATION"

# 6. Poll the Location until 200: the result is what the handler returned.
polls=0
deadline=$((SECONDS + POLL_DEADLINE_S))
while :; do
  request GET "$LOCATION"
  polls=$((polls + 1))
  case "$STATUS" in
    200) break ;;
    202) expect_jq "a pending or running operation $OP_ID on 202" '.id == $id and .done == false' '{id, status, done}' --arg id "$OP_ID" ;;
    *) fail "HTTP 200 or 202 from GET $LOCATION" "HTTP $STATUS" ;;
  esac
  ((SECONDS < deadline)) || fail "operation $OP_ID done within ${POLL_DEADLINE_S}s" "status $(jq -r .status "$WORK/body") after $polls polls"
  sleep "$POLL_INTERVAL_S"
done
expect_jq "succeeded with result {greeting: \"Hello, Ada!\", operationId: $OP_ID}" \
  '.id == $id and .status == "succeeded" and .done == true and .error == null
   and .result == {greeting: "Hello, Ada!", operationId: $id}' '{status, result, error}' --arg id "$OP_ID"
echo "ok: GET $LOCATION -> 200 succeeded after $polls poll(s), result $(jq -c .result "$WORK/body")"

# 7. Bad bodies are problems, not operations.
what='POST /v1/greetings {"name": ""}'
request POST "$BASE_URL/v1/greetings" '{"name": ""}'
expect_problem 400 urn:pollingapi:problem:validation-failed "$what"
expect_jq "errors.name from $what" '(.errors.name | type) == "array" and (.errors.name | length) > 0' '.errors'
echo "ok: $what -> 400 validation-failed for name"
what='POST /v1/greetings {"name":'
request POST "$BASE_URL/v1/greetings" '{"name":'
expect_problem 400 urn:pollingapi:problem:malformed-json "$what"
echo "ok: $what -> 400 malformed-json"
request GET "$BASE_URL/v1/no-such-route"
expect_problem 404 "" "GET /v1/no-such-route"
echo "ok: GET /v1/no-such-route -> 404 problem+json (UseStatusCodePages)"

# 8. SIGTERM stops the sample cleanly.
kill -TERM "$APP_PID"
deadline=$((SECONDS + STOP_DEADLINE_S))
while kill -0 "$APP_PID" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "the sample to stop within ${STOP_DEADLINE_S}s of SIGTERM" "still running" "$APP_LOG"
  sleep "$POLL_INTERVAL_S"
done
app_status=0
wait "$APP_PID" || app_status=$?
APP_PID=""
((app_status == 0)) || fail "exit code 0 from the sample after SIGTERM" "$app_status" "$APP_LOG"
echo "ok: the sample stopped on SIGTERM with exit code 0"

echo "package test: PASS ($SECONDS s)"
