#!/usr/bin/env bash
# run.sh runs the soak (TestSoak in cmd/azimuth) for SOAK, default 30m: a
# real azimuth under steady load with a config reload every 2s, a backend
# fault every minute and a Consul agent restart every 10 minutes, failing
# if a request is lost or goroutines, open files or RSS grow. It builds
# the Consul agent first, as make test does. It is for scheduled runs
# (make soak), not CI: CI runs the same test for 60s.
#
#   SOAK     the soak's length, a Go duration of at least 30s (default 30m)
#   SOAKLOG  also write the test's output to this file
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
soak=${SOAK:-30m}

# go test's -timeout: the soak, plus room for building with the race
# detector, starting the agent, and an event that runs past the end.
secs=$(awk -v d="$soak" 'BEGIN {
	unit["h"] = 3600; unit["m"] = 60; unit["s"] = 1; unit["ms"] = 0.001; unit["us"] = 1e-6; unit["ns"] = 1e-9
	rest = d; total = 0
	while (match(rest, /^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)/)) {
		tok = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1)
		match(tok, /[a-z]+$/)
		total += substr(tok, 1, RSTART - 1) * unit[substr(tok, RSTART)]
	}
	if (d == "" || rest != "") exit 1
	printf "%d", total
}') || {
	echo "run.sh: SOAK=$soak is not a Go duration (e.g. 30m, 1h30m)" >&2
	exit 2
}
timeout=$((secs + 15 * 60))s

consul=$(tools/consul/build.sh)
cmd=(go test -race -count=1 -run '^TestSoak$' -timeout "$timeout" -v ./cmd/azimuth)
echo "AZIMUTH_CONSUL_BIN=$consul AZIMUTH_SOAK=$soak ${cmd[*]}"
if [[ -n ${SOAKLOG:-} ]]; then
	AZIMUTH_CONSUL_BIN=$consul AZIMUTH_SOAK=$soak "${cmd[@]}" 2>&1 | tee "$SOAKLOG"
else
	AZIMUTH_CONSUL_BIN=$consul AZIMUTH_SOAK=$soak "${cmd[@]}"
fi
