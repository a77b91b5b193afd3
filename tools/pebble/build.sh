#!/usr/bin/env bash
# build.sh builds Pebble, Let's Encrypt's ACME test server, and its DNS
# companion pebble-challtestsrv, which the ACME tests start (internal/
# acmetest), into a cache directory outside the repository, so fresh clones
# on the same machine reuse them. It is idempotent: when both binaries
# already exist and run, nothing is built. The pebble binary's path is the
# only thing printed on stdout (pebble-challtestsrv lies beside it);
# progress goes to stderr.
#
#   AZIMUTH_CACHE    cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/azimuth)
#   AZIMUTH_GOPROXY  module proxy (default https://proxy.golang.org, no direct fallback)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=$(awk '$1 == "github.com/letsencrypt/pebble/v2" { print $2; exit }' "$here/go.mod")
if [[ -z $version ]]; then
	echo "build.sh: no github.com/letsencrypt/pebble/v2 requirement in $here/go.mod" >&2
	exit 1
fi

cache=${AZIMUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azimuth}
dir=$cache/pebble-$version
bin=$dir/pebble
dns=$dir/pebble-challtestsrv

if [[ -x $bin && -x $dns ]] && "$bin" -version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "build.sh: building pebble $version into $dir" >&2
cd "$here"
GOFLAGS="-buildvcs=false -mod=readonly" \
	GOPROXY=${AZIMUTH_GOPROXY:-https://proxy.golang.org} \
	GOWORK=off \
	go build -trimpath -o "$tmp/" \
	github.com/letsencrypt/pebble/v2/cmd/pebble \
	github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv

mv -f "$tmp/pebble-challtestsrv" "$dns"
mv -f "$tmp/pebble" "$bin"
echo "$bin"
