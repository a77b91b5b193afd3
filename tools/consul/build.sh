#!/usr/bin/env bash
# build.sh builds the Consul agent that the integration tests start
# (internal/consultest) into a cache directory outside the repository, so
# fresh clones on the same machine reuse it. It is idempotent: when the binary
# already exists and answers "consul version", nothing is built. The binary's
# path is the only thing printed on stdout; progress goes to stderr.
#
#   AZIMUTH_CACHE    cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/azimuth)
#   AZIMUTH_GOPROXY  module proxy (default https://proxy.golang.org, no direct fallback)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=$(awk '$1 == "github.com/hashicorp/consul" { print $2; exit }' "$here/go.mod")
if [[ -z $version ]]; then
	echo "build.sh: no github.com/hashicorp/consul requirement in $here/go.mod" >&2
	exit 1
fi

cache=${AZIMUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azimuth}
dir=$cache/consul-$version
bin=$dir/consul

if [[ -x $bin ]] && "$bin" version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp "$dir/consul.XXXXXX")
trap 'rm -f "$tmp"' EXIT

echo "build.sh: building consul $version into $bin (several minutes the first time)" >&2
cd "$here"
# go.sum is complete and committed: some of Consul's dependencies are not in
# the checksum database, so resolve through the module proxy only and trust
# go.sum for those. -mod=readonly overrides a -mod=vendor from the caller.
GOFLAGS="-buildvcs=false -mod=readonly" \
	GOPROXY=${AZIMUTH_GOPROXY:-https://proxy.golang.org} \
	GONOSUMDB=github.com/hashicorp/consul \
	GOWORK=off \
	go build -trimpath -o "$tmp" github.com/hashicorp/consul

"$tmp" version >&2
mv -f "$tmp" "$bin"
trap - EXIT
echo "$bin"
