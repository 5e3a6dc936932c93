#!/bin/sh
# Installs the Debian packages evpipe needs to build, test and run its demo, when
# they are missing, then the classifier's data sets (tools/deps_data.sh). Needs root
# (or sudo) for apt-get; otherwise prints the command.
set -eu
PKGS="gcc make pkg-config clang libclang-rt-dev librdkafka-dev libpq-dev libyajl-dev
libcurl4-openssl-dev check libsubunit-dev uap-core libyaml-dev libpcre2-dev
libxlsxwriter-dev libmicrohttpd-dev zlib1g-dev libssl-dev postgresql kcat chromium
docker-compose time python3-confluent-kafka python3-psycopg2"
# Upload tests: a WebDAV target and an independent SigV4 signer.
PKGS="$PKGS nginx python3-botocore"

missing=
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
here=$(dirname "$0")
if [ -z "$missing" ]; then
    echo "deps: all packages present"
    sh "$here/deps_data.sh"
    exit 0
fi
echo "deps: installing:$missing"
if [ "$(id -u)" = 0 ]; then
    SUDO=
elif command -v sudo >/dev/null 2>&1; then
    SUDO=sudo
else
    echo "deps: not root and no sudo; run as root: apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# The server package must not start a system cluster we do not use.
$SUDO apt-get install -y -q --no-install-recommends $missing
sh "$here/deps_data.sh"
