#!/usr/bin/env bash
# Lints the committed OpenAPI document (openapi/v1.json) with Redocly CLI, by the rules in redocly.yaml.
# Exits non-zero when the document has an error (warnings are printed, not fatal).
# Installs the pinned CLI with npm into .tools/redocly (git-ignored) on first use; needs Node.js 20.19+ or 22.12+.
set -euo pipefail
cd "$(dirname "$0")/.."

version=2.77.0
prefix=.tools/redocly
cli=$prefix/node_modules/.bin/redocly
document=${1:-openapi/v1.json}

# No usage reports, no update check: the only network this script needs is the npm registry, once.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "lint-openapi: Node.js and npm are needed (Node.js 20.19+ or 22.12+)." >&2
  exit 2
fi

if [[ ! -x $cli ]] || [[ "$("$cli" --version 2>/dev/null)" != "$version" ]]; then
  echo "lint-openapi: installing @redocly/cli@$version into $prefix"
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --save-exact --no-audit --no-fund --loglevel=error "@redocly/cli@$version" >/dev/null
fi

"$cli" lint "$document" --config redocly.yaml --format=stylish
