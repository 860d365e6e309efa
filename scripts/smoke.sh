#!/usr/bin/env bash
# End-to-end smoke test for a running PollingApi instance.
#
# Usage: scripts/smoke.sh BASE_URL      e.g. scripts/smoke.sh http://127.0.0.1:5080
#        POLLINGAPI_API_KEY=pak_... scripts/smoke.sh BASE_URL
#
# With POLLINGAPI_API_KEY set, every request sends it in X-Api-Key (the key needs the scopes
# operations:submit,operations:read,operations:manage), and the smoke test also checks that a request
# without it is refused with 401. Without it, the API must let anonymous callers in (Development).
#
# Needs only bash, curl and jq. Prints one "ok: ..." line per passed step and
# "smoke test passed" at the end; on the first deviation prints
# "FAIL: <expected> <got>" (with the response body) to stderr and exits 1.
#
# jq programs are single-quoted on purpose; their $variables are jq --arg bindings.
# shellcheck disable=SC2016
set -euo pipefail

if [[ $# -lt 1 || -z "${1:-}" ]]; then
  echo "usage: $0 BASE_URL   (e.g. $0 http://127.0.0.1:5080)" >&2
  exit 2
fi

BASE_URL="${1%/}"
READY_DEADLINE_S=60
POLL_DEADLINE_S=60
MAX_WAIT_S=5
SLEEP_URL="$BASE_URL/v1/diagnostics/sleep"
OPERATIONS_URL="$BASE_URL/v1/operations"
API_KEY="${POLLINGAPI_API_KEY:-}"
KEY_HEADER=()
if [[ -n "$API_KEY" ]]; then
  KEY_HEADER=(-H "X-Api-Key: $API_KEY")
fi
UUID_V7_RE='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'

for tool in curl jq; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "FAIL: expected $tool on PATH, got nothing" >&2
    exit 1
  fi
done

TMP_DIR="$(mktemp -d)"
trap 'rm -rf "$TMP_DIR"' EXIT
HEADERS="$TMP_DIR/headers"
BODY="$TMP_DIR/body"
CURL_ERR="$TMP_DIR/curl-stderr"
: >"$HEADERS"
: >"$BODY"
: >"$CURL_ERR"
STATUS=""

# fail EXPECTED GOT: report the deviation (plus the last response body) and stop.
fail() {
  {
    printf 'FAIL: expected %s; got %s\n' "$1" "$2"
    if [[ -s "$BODY" ]]; then
      printf 'response body: %s\n' "$(cat "$BODY")"
    fi
  } >&2
  exit 1
}

lower() {
  printf '%s' "$1" | tr '[:upper:]' '[:lower:]'
}

# request METHOD URL [JSON]: one HTTP exchange; sets STATUS, fills HEADERS and BODY.
# Returns 1 (STATUS=000, curl's message in CURL_ERR) when no HTTP answer came back.
request() {
  local method="$1" url="$2" data="${3-}"
  local args=(--max-time 30 -sS -X "$method" -D "$HEADERS" -o "$BODY" -w '%{http_code}' "${KEY_HEADER[@]}")
  if [[ -n "$data" ]]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$data")
  fi
  : >"$HEADERS"
  : >"$BODY"
  if ! STATUS="$(curl "${args[@]}" "$url" 2>"$CURL_ERR")"; then
    STATUS="000"
    return 1
  fi
}

# call METHOD URL [JSON]: like request, but a transport error is a failure.
call() {
  if ! request "$@"; then
    fail "an HTTP answer to $1 $2" "curl error: $(tr -d '\n' <"$CURL_ERR")"
  fi
}

# header NAME: value of the last NAME header of the final response (empty if absent).
header() {
  local want line name value result=""
  want="$(lower "$1")"
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%$'\r'}"
    if [[ "$line" == HTTP/* ]]; then
      result=""
      continue
    fi
    [[ "$line" == *:* ]] || continue
    name="${line%%:*}"
    value="${line#*:}"
    if [[ "$(lower "$name")" == "$want" ]]; then
      value="${value#"${value%%[![:space:]]*}"}"
      value="${value%"${value##*[![:space:]]}"}"
      result="$value"
    fi
  done <"$HEADERS"
  printf '%s' "$result"
}

expect_status() {
  local want="$1" what="$2"
  if [[ "$STATUS" != "$want" ]]; then
    fail "HTTP $want from $what" "HTTP $STATUS"
  fi
}

# expect_jq EXPECTED TEST_FILTER GOT_FILTER [jq options...]:
# TEST_FILTER must be true on BODY; otherwise GOT_FILTER's output is reported.
expect_jq() {
  local expected="$1" test_filter="$2" got_filter="$3"
  shift 3
  if ! jq -e "$@" "$test_filter" "$BODY" >/dev/null 2>&1; then
    fail "$expected" "$(jq -c "$@" "$got_filter" "$BODY" 2>/dev/null || echo '<non-JSON body>')"
  fi
}

expect_json_object() {
  expect_jq "a JSON object body from $1" 'type == "object"' 'type'
}

# A positive whole number of seconds, as Retry-After must be.
is_retry_after() {
  [[ "$1" =~ ^[0-9]+$ ]] && ((10#$1 >= 1))
}

random_uuid_v4() {
  local hex variant
  hex="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  variant="$(printf '%x' $(((16#${hex:16:1} & 3) | 8)))"
  printf '%s-%s-4%s-%s%s-%s' "${hex:0:8}" "${hex:8:4}" "${hex:13:3}" "$variant" "${hex:17:3}" "${hex:20:12}"
}

# submit_sleep JSON: POST a sleep and check the 202 answer; sets OP_ID and OP_URL.
submit_sleep() {
  local what="POST /v1/diagnostics/sleep $1" location op_location retry_after
  call POST "$SLEEP_URL" "$1"
  expect_status 202 "$what"
  expect_json_object "$what"

  location="$(header Location)"
  op_location="$(header Operation-Location)"
  retry_after="$(header Retry-After)"
  [[ -n "$location" ]] || fail "a Location header from $what" "none"
  [[ -n "$op_location" ]] || fail "an Operation-Location header from $what" "none"
  [[ -n "$retry_after" ]] || fail "a Retry-After header from $what" "none"
  is_retry_after "$retry_after" || fail "Retry-After in whole seconds >= 1 from $what" "'$retry_after'"
  [[ "$location" == "$op_location" ]] ||
    fail "Location == Operation-Location from $what" "Location '$location', Operation-Location '$op_location'"
  [[ "$location" =~ ^https?:// ]] || fail "an absolute Location URL from $what" "'$location'"

  OP_ID="$(jq -r '.id // empty | strings' "$BODY")"
  [[ "$OP_ID" =~ $UUID_V7_RE ]] || fail "id to be a version-7 UUID from $what" "'$OP_ID'"
  [[ "$location" == */v1/operations/"$OP_ID" ]] ||
    fail "Location ending in /v1/operations/$OP_ID from $what" "'$location'"
  expect_jq "kind diagnostics.sleep from $what" '.kind == "diagnostics.sleep"' '.kind'
  expect_jq "status pending or running from $what" '.status == "pending" or .status == "running"' '.status'
  expect_jq "done false from $what" '.done == false' '.done'
  OP_URL="$location"
}

# poll_until_done URL ID: GET URL until a terminal answer, honouring Retry-After.
# Leaves the terminal (200) answer in BODY; sets POLLS.
poll_until_done() {
  local url="$1" id="$2" deadline=$((SECONDS + POLL_DEADLINE_S)) retry_after wait what="GET $1"
  POLLS=0
  while :; do
    call GET "$url"
    POLLS=$((POLLS + 1))
    case "$STATUS" in
      200)
        expect_json_object "$what"
        expect_jq "id $id from $what" '.id == $id' '.id' --arg id "$id"
        expect_jq "done true on 200 from $what" '.done == true' '.done'
        return 0
        ;;
      202)
        expect_json_object "$what"
        retry_after="$(header Retry-After)"
        is_retry_after "$retry_after" || fail "Retry-After in whole seconds >= 1 on 202 from $what" "'$retry_after'"
        expect_jq "id $id from $what" '.id == $id' '.id' --arg id "$id"
        expect_jq "status pending or running on 202 from $what" \
          '(.status == "pending" or .status == "running") and .done == false' '{status, done}'
        wait=$((10#$retry_after))
        if ((wait > MAX_WAIT_S)); then
          wait=$MAX_WAIT_S
        fi
        if ((SECONDS + wait > deadline)); then
          fail "operation $id to finish within ${POLL_DEADLINE_S}s" \
            "status $(jq -r '.status' "$BODY") after $POLLS polls"
        fi
        sleep "$wait"
        ;;
      *)
        fail "HTTP 200 or 202 from $what" "HTTP $STATUS"
        ;;
    esac
  done
}

# expect_problem HTTP_STATUS TYPE WHAT: the last answer is a problem+json of that status and type.
expect_problem() {
  local want_status="$1" want_type="$2" what="$3" content_type
  expect_status "$want_status" "$what"
  content_type="$(lower "$(header Content-Type)")"
  [[ "$content_type" == application/problem+json* ]] ||
    fail "Content-Type application/problem+json from $what" "'$content_type'"
  expect_json_object "$what"
  if [[ -n "$want_type" ]]; then
    expect_jq "problem type $want_type from $what" '.type == $t' '.type' --arg t "$want_type"
  fi
}

# 1. Readiness.
ready_deadline=$((SECONDS + READY_DEADLINE_S))
until request GET "$BASE_URL/health/ready" && [[ "$STATUS" == 200 ]]; do
  if ((SECONDS >= ready_deadline)); then
    if [[ "$STATUS" == 000 ]]; then
      fail "GET /health/ready -> 200 within ${READY_DEADLINE_S}s" "curl error: $(tr -d '\n' <"$CURL_ERR")"
    fi
    fail "GET /health/ready -> 200 within ${READY_DEADLINE_S}s" "HTTP $STATUS"
  fi
  sleep 1
done
call GET "$BASE_URL/health/live"
expect_status 200 "GET /health/live"
echo "ok: /health/ready and /health/live answer 200"
# The server does not name itself, and no answer may be sniffed as another media type.
if grep -qi '^server:' "$HEADERS"; then
  fail "GET /health/live has no Server header" "$(grep -i '^server:' "$HEADERS" | tr -d '\r')"
fi
if ! grep -qi '^x-content-type-options: *nosniff' "$HEADERS"; then
  fail "GET /health/live has X-Content-Type-Options: nosniff" "headers: $(tr -d '\r' <"$HEADERS" | tr '\n' ' ')"
fi
echo "ok: no Server header, X-Content-Type-Options: nosniff"

# A body the server cannot read (an invalid chunk size) is the client's fault: 400, not 500.
hostport=${BASE_URL#*://}
hostport=${hostport%%/*}
exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
key_line=""
[[ -n "$API_KEY" ]] && key_line="X-Api-Key: $API_KEY"$'\r\n'
printf 'POST /v1/diagnostics/sleep HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n' "$hostport" "$key_line" >&3
IFS= read -r -t 10 status_line <&3 || status_line="(no answer)"
exec 3<&- 3>&-
if [[ "$status_line" != "HTTP/1.1 400"* ]]; then
  fail "POST with an invalid chunk size -> HTTP/1.1 400" "${status_line%$'\r'}"
fi
echo "ok: a body with an invalid chunk size -> 400"

# A chunk size too large to be a number fails below the framework's own checks: still the client's fault.
exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
printf 'POST /v1/diagnostics/sleep HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nffffffffffffffffffff\r\n{}\r\n0\r\n\r\n' "$hostport" "$key_line" >&3
IFS= read -r -t 10 status_line <&3 || status_line="(no answer)"
exec 3<&- 3>&-
if [[ "$status_line" != "HTTP/1.1 400"* ]]; then
  fail "POST with an overflowing chunk size -> HTTP/1.1 400" "${status_line%$'\r'}"
fi
echo "ok: a body with an overflowing chunk size -> 400"

# 2. Submit a short sleep.
submit_sleep '{"durationMs": 200}'
echo "ok: sleep submitted -> 202 with Location/Operation-Location/Retry-After, operation $OP_ID"

# 3. Poll it to success.
poll_until_done "$OP_URL" "$OP_ID"
what="terminal GET $OP_URL"
expect_jq "status succeeded from $what" '.status == "succeeded"' '.status'
expect_jq "result.sleptMs == 200 from $what" '.result.sleptMs == 200' '.result'
expect_jq "numeric result.attempt from $what" '(.result.attempt | type) == "number"' '.result'
expect_jq "error null from $what" '.error == null' '.error'
expect_jq "completedAt non-null from $what" '.completedAt != null' '.completedAt'
echo "ok: operation $OP_ID succeeded after $POLLS poll(s), sleptMs 200"

# 4. A permanent failure.
submit_sleep '{"durationMs": 0, "failPermanently": true}'
poll_until_done "$OP_URL" "$OP_ID"
what="terminal GET $OP_URL"
expect_jq "status failed from $what" '.status == "failed"' '.status'
expect_jq "attempts == 1 from $what" '.attempts == 1' '.attempts'
expect_jq "error.type urn:pollingapi:problem:diagnostics-permanent-failure from $what" \
  '.error.type == "urn:pollingapi:problem:diagnostics-permanent-failure"' '.error'
expect_jq "result null from $what" '.result == null' '.result'
echo "ok: operation $OP_ID failed permanently after 1 attempt"

# 5. Error answers.
unknown_id="$(random_uuid_v4)"
call GET "$OPERATIONS_URL/$unknown_id"
expect_problem 404 "urn:pollingapi:problem:operation-not-found" "GET /v1/operations/$unknown_id"
echo "ok: unknown operation id -> 404 operation-not-found"

call GET "$OPERATIONS_URL/not-a-uuid"
expect_problem 400 "urn:pollingapi:problem:invalid-operation-id" "GET /v1/operations/not-a-uuid"
echo "ok: malformed operation id -> 400 invalid-operation-id"

what='POST /v1/diagnostics/sleep {"durationMs": -1}'
call POST "$SLEEP_URL" '{"durationMs": -1}'
expect_problem 400 "" "$what"
expect_jq "type and title strings from $what" '(.type | type) == "string" and (.title | type) == "string"' '{type, title}'
expect_jq "status 400 in the problem from $what" '.status == 400' '.status'
expect_jq "non-empty errors.durationMs from $what" \
  '(.errors.durationMs | type) == "array" and (.errors.durationMs | length) > 0' '.errors'
echo "ok: invalid sleep request -> 400 validation problem for durationMs"

# 6. The one-call form for CI scripts: submit and wait for the result in the same request.
if ! STATUS="$(curl --max-time 60 -sS -X POST -D "$HEADERS" -o "$BODY" -w '%{http_code}' "${KEY_HEADER[@]}" \
    -H 'Content-Type: application/json' -H 'Prefer: respond-async, wait=30' \
    --data-binary '{"durationMs": 100}' "$SLEEP_URL" 2>"$CURL_ERR")"; then
  fail "an HTTP answer to POST $SLEEP_URL with Prefer: wait=30" "curl error: $(tr -d '\n' <"$CURL_ERR")"
fi
[[ "$STATUS" == "200" ]] || fail "200 for a submit with Prefer: wait=30" "$STATUS"
[[ "$(header Preference-Applied)" == "wait=30" ]] || fail "Preference-Applied: wait=30" "'$(header Preference-Applied)'"
jq -e '.status == "succeeded" and .result.sleptMs == 100' "$BODY" >/dev/null \
  || fail "a succeeded operation with result.sleptMs 100" "$(cat "$BODY")"
echo "ok: submit with Prefer: wait=30 -> 200 succeeded in one call"

# 6b. The same operation as server-sent events (curl -N, as a shell script follows a job): its done event at once, then
#     the end of the stream; with its last version as Last-Event-ID, 204 (nothing more will come).
DONE_ID="$(jq -r '.id' "$BODY")"
EVENTS="$TMP_DIR/events"
if ! curl --max-time 20 -sS -N "${KEY_HEADER[@]}" -H 'Accept: text/event-stream' -o "$EVENTS" \
    "$OPERATIONS_URL/$DONE_ID/events" 2>"$CURL_ERR"; then
  fail "the event stream of $DONE_ID to end after its done event" "curl error: $(tr -d '\n' <"$CURL_ERR")"
fi
grep -q '^event: done$' "$EVENTS" || fail "an 'event: done' line" "$(cat "$EVENTS")"
DONE_VERSION="$(sed -n 's/^id: //p' "$EVENTS" | tail -1)"
sed -n 's/^data: //p' "$EVENTS" | tail -1 | jq -e --arg id "$DONE_ID" '.id == $id and .status == "succeeded"' >/dev/null \
  || fail "the done event's data to be the succeeded operation" "$(cat "$EVENTS")"
STATUS="$(curl --max-time 20 -sS -o /dev/null -w '%{http_code}' "${KEY_HEADER[@]}" -H "Last-Event-ID: $DONE_VERSION" \
  "$OPERATIONS_URL/$DONE_ID/events" 2>"$CURL_ERR")" || fail "an answer with Last-Event-ID" "curl error: $(tr -d '\n' <"$CURL_ERR")"
[[ "$STATUS" == "204" ]] || fail "204 for a stream resumed after its done event" "$STATUS"
echo "ok: GET .../events (curl -N) -> the done event, then 204 with its Last-Event-ID"

# 7. With a key: a request without one is refused, and says how to authenticate.
if [[ -n "$API_KEY" ]]; then
  saved_key_header=("${KEY_HEADER[@]}")
  KEY_HEADER=()
  call GET "$OPERATIONS_URL"
  expect_problem 401 "urn:pollingapi:problem:unauthorized" "GET /v1/operations without X-Api-Key"
  [[ "$(header WWW-Authenticate)" == *'ApiKey header="X-Api-Key"'* ]] \
    || fail 'WWW-Authenticate: ApiKey header="X-Api-Key"' "'$(header WWW-Authenticate)'"
  KEY_HEADER=("${saved_key_header[@]}")
  echo "ok: no X-Api-Key -> 401 unauthorized with WWW-Authenticate"
fi

echo "smoke test passed"
