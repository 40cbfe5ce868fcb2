#!/usr/bin/env bash
# Writes the fan page for a deployed API: a copy of web/ in OUT_DIR whose
# page talks to API_URL only (its fanrush-api meta tag) and whose
# Content-Security-Policy lets it connect there and nowhere else. Serve
# OUT_DIR from FanPageOrigin (the API's CORS allows that origin alone).
#   scripts/fan-page.sh https://abc123.execute-api.eu-west-1.amazonaws.com dist/fan-page
set -euo pipefail
api=${1:?usage: scripts/fan-page.sh API_URL OUT_DIR}
out=${2:?usage: scripts/fan-page.sh API_URL OUT_DIR}
api=${api%/}
# An origin, or an origin with a path (an API mapping): nothing that could
# break out of the attribute or the policy.
if ! [[ $api =~ ^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$ ]]; then
  echo "fan-page: API_URL must be https://host[:port][/path], got '$api'" >&2
  exit 2
fi
origin=$(sed -E 's#^(https://[^/]+).*#\1#' <<<"$api")
mkdir -p "$out"
cp "$(dirname "$0")/../web/"* "$out/"
sed -i -e "s#<meta name=\"fanrush-api\" content=\"\">#<meta name=\"fanrush-api\" content=\"$api\">#" \
  -e "s#connect-src 'self';#connect-src $origin;#" "$out/index.html"
grep -q "content=\"$api\"" "$out/index.html" && grep -q "connect-src $origin;" "$out/index.html" ||
  { echo "fan-page: web/index.html no longer has the tags this script fills" >&2; exit 1; }
echo "fan page for $api written to $out"
