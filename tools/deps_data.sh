#!/bin/sh
# Installs the data sets the device classifier loads at start (docs/devices.md), from
# pinned npm packages checked against their sha512 integrity:
#   node-device-detector 2.2.7 (MIT; its regexes are Matomo device-detector's, LGPL-3.0):
#     robots (bots.js), device brands and models with their types (device/mobiles.js),
#     and the non-browser clients: feed readers, libraries, media players, PIM and
#     mobile apps (client/*.js).
# Only the data files are kept, each converted from its "module.exports = ...;" form
# to plain JSON, into $EVPIPE_UA_DATA (default /usr/local/share/evpipe/ua-data).
# Nothing is fetched when that folder already holds the pinned version.
set -eu
DEST=${EVPIPE_UA_DATA:-/usr/local/share/evpipe/ua-data}
PKG=node-device-detector
VER=2.2.7
INTEGRITY="sha512-75DMuWtUq5g7bLAd6wNpS/TWoGQD+xM30s4IbxsGHwvbSlZ5XbV2nmgn1sg4Fdqs29Sjf6bCLi8MUyiXDL9YTg=="
FILES="bots device/mobiles client/feed_readers client/libraries client/mediaplayers client/pim
client/mobile_apps"
STAMP="$PKG@$VER $INTEGRITY"

if [ -f "$DEST/STAMP" ] && [ "$(cat "$DEST/STAMP")" = "$STAMP" ]; then
    echo "deps-data: $PKG@$VER present in $DEST"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "deps-data: installing npm"
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends npm
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "$PKG@$VER" >/dev/null)
TGZ="$TMP/$PKG-$VER.tgz"
GOT=$(python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$TGZ")
if [ "$GOT" != "$INTEGRITY" ]; then
    echo "deps-data: $PKG@$VER integrity mismatch: got $GOT, want $INTEGRITY" >&2
    exit 1
fi
mkdir -p "$TMP/x"
tar -xzf "$TGZ" -C "$TMP/x" package/regexes package/package.json
mkdir -p "$TMP/out"
for f in $FILES; do
    mkdir -p "$TMP/out/$(dirname "$f")"
    python3 - "$TMP/x/package/regexes/$f.js" "$TMP/out/$f.json" <<'EOF'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read().strip()
prefix = "module.exports = "
if not text.startswith(prefix):
    sys.exit("deps-data: %s: not a 'module.exports = ...' data file" % sys.argv[1])
text = text[len(prefix):].rstrip(";")
with open(sys.argv[2], "w", encoding="utf-8") as out:
    json.dump(json.loads(text), out, ensure_ascii=False, separators=(",", ":"))
EOF
done
echo "$STAMP" > "$TMP/out/STAMP"
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST.new"
cp -r "$TMP/out" "$DEST.new"
chmod -R a+rX "$DEST.new"
rm -rf "$DEST"
mv "$DEST.new" "$DEST"
echo "deps-data: installed $PKG@$VER data into $DEST"
