#!/usr/bin/env bash
# ab.sh — two builds of Azimuth side by side, for what one change bought.
#
#   loadtest/peers/ab.sh OLD_REV [NEW_REV]     # NEW_REV defaults to HEAD
#   loadtest/peers/ab.sh --serverloop [REV]    # net/http's server against a bare loop
#
# Both builds run at once on the proxy core, each with the peer config's
# plain listener and pool of six backends (one backend process, also on
# the proxy core, as in run.sh). wrk loads them in turn, ROUNDS times,
# alternating, so a machine whose speed drifts (a shared host) drifts for
# both. Each line is one run; the summary is the median of each column.
# CPU is the proxy's user+system time over the run per request.
#
# With --serverloop the two contenders are tools/serverloop built
# from REV, serving the proxy's request path behind net/http's server
# ("nethttp") and behind a bare HTTP/1.1 loop ("loop"): what net/http's
# server costs per request.
#
# OLD_CONFIG and NEW_CONFIG run each build with a config of their own
# (templates with run.sh's @PLAIN@, @BPORT@ and @ADMIN@ placeholders;
# default: the peer config without its TLS listener). One build with two
# configs prices a setting, e.g. the shipped access log against none:
#   OLD_CONFIG=loadtest/peers/configs/azimuth-defaults-nolog.yaml \
#   NEW_CONFIG=loadtest/peers/configs/azimuth-defaults.yaml ab.sh HEAD HEAD
#
# Environment: ROUNDS=8, DURATION=3s, CONNS=64, PORT_BASE=29000,
# LOAD_CPU=0, PROXY_CPU=1, KEEP=1 keeps the work directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
usage="usage: ab.sh OLD_REV [NEW_REV] | ab.sh --serverloop [REV]"
if [[ ${1:?$usage} == --serverloop ]]; then
	mode=serverloop names=(nethttp loop) old=${2:-HEAD} new=$old
else
	mode=azimuth names=(old new) old=$1 new=${2:-HEAD}
fi
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-3s}
CONNS=${CONNS:-64}
PORT_BASE=${PORT_BASE:-29000}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
BPORT=$((PORT_BASE + 80))
CLK_TCK=$(getconf CLK_TCK)

for tool in go git wrk taskset curl; do
	command -v "$tool" >/dev/null || { echo "ab: $tool is missing (apt-get install -y wrk curl)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/azimuth-ab.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	git -C "$repo" worktree remove --force "$work/src-old" 2>/dev/null || true
	git -C "$repo" worktree remove --force "$work/src-new" 2>/dev/null || true
	[[ ${KEEP:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT

build() { # build NAME REV
	git -C "$repo" worktree add -q --detach "$work/src-$1" "$2"
	if [[ $mode == serverloop ]]; then
		# (under loadtest/peers/ before it moved to tools/)
		(cd "$work/src-$1" && go build -o "$work/serverloop" "$(ls -d ./tools/serverloop ./loadtest/peers/serverloop 2>/dev/null | head -1)")
	else
		(cd "$work/src-$1" && go build -o "$work/azimuth-$1" ./cmd/azimuth)
	fi
	echo "$1: $(git -C "$repo" rev-parse --short "$2") $(git -C "$repo" log -1 --format=%s "$2" | cut -c1-70)" >&2
}
build old "$old"
[[ $mode == serverloop ]] || build new "$new"
(cd "$repo" && go build -o "$work/backend" ./loadtest/peers/backend)

# Anything already on these ports would take the load and void the result.
for p in $BPORT $((PORT_BASE + 100)) $((PORT_BASE + 101)) $((PORT_BASE + 901)) $((PORT_BASE + 902)); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.1.1/$p") 2>/dev/null; then
		echo "ab: port $p is in use; stop what listens there or set PORT_BASE" >&2
		exit 1
	fi
done

addrs=127.0.1.1:$BPORT,127.0.1.2:$BPORT,127.0.2.1:$BPORT,127.0.2.2:$BPORT,127.0.3.1:$BPORT,127.0.3.2:$BPORT
taskset -c "$PROXY_CPU" env GOMAXPROCS=1 "$work/backend" -addrs "$addrs" -size 100 >"$work/backend.log" 2>&1 &
pids+=($!)

declare -A port pid
i=0
for v in "${names[@]}"; do
	port[$v]=$((PORT_BASE + 100 + i))
	if [[ $mode == serverloop ]]; then
		taskset -c "$PROXY_CPU" env GOMAXPROCS=1 "$work/serverloop" -server "$v" \
			-addr "127.0.0.1:${port[$v]}" -backends "$addrs" >"$work/$v.log" 2>&1 &
	else
		# The peer config without its TLS listener, or the build's own
		# config, on its own ports.
		tmpl=$here/configs/azimuth.yaml
		[[ $v == old && -n ${OLD_CONFIG:-} ]] && tmpl=$OLD_CONFIG
		[[ $v == new && -n ${NEW_CONFIG:-} ]] && tmpl=$NEW_CONFIG
		sed -e "s#@PLAIN@#${port[$v]}#g" -e "s#@BPORT@#$BPORT#g" -e "s#@ADMIN@#$((PORT_BASE + 901 + i))#g" \
			"$tmpl" | awk '/^  - name: tls/{skip=1} /^pools:/{skip=0} !skip' >"$work/$v.yaml"
		"$work/azimuth-$v" validate "$work/$v.yaml" >&2
		taskset -c "$PROXY_CPU" env GOMAXPROCS=1 "$work/azimuth-$v" -config "$work/$v.yaml" >"$work/$v.log" 2>&1 &
	fi
	pid[$v]=$!
	pids+=($!)
	i=$((i + 1))
done
for v in "${names[@]}"; do
	for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:${port[$v]}/" && break; sleep 0.1; done
	curl -sf -o /dev/null "http://127.0.0.1:${port[$v]}/" || { echo "ab: $v does not answer" >&2; cat "$work/$v.log" >&2; exit 1; }
	taskset -c "$LOAD_CPU" wrk -t1 -c "$CONNS" -d 1s "http://127.0.0.1:${port[$v]}/" >/dev/null
done
for p in "${pids[@]}"; do
	kill -0 "$p" 2>/dev/null || { echo "ab: a process it started has exited; logs in $work" >&2; KEEP=1; exit 1; }
done

ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# us_of VALUE UNIT: wrk's latency as microseconds.
us_of() { awk -v v="$1" -v u="$2" 'BEGIN{m=(u=="ms")?1000:(u=="s")?1e6:1; printf "%.0f", v*m}'; }

printf 'build round req/s p50_us p99_us cpu_us_per_req\n' >"$work/runs"
for r in $(seq "$ROUNDS"); do
	for v in "${names[@]}"; do
		t0=$(ticks "${pid[$v]}")
		out=$(taskset -c "$LOAD_CPU" wrk -t1 -c "$CONNS" -d "$DURATION" --latency "http://127.0.0.1:${port[$v]}/")
		t1=$(ticks "${pid[$v]}")
		reqs=$(awk '/requests in/{print $1}' <<<"$out")
		rps=$(awk '/^Requests\/sec/{printf "%.0f", $2}' <<<"$out")
		read -r p50 u50 < <(awk '$1=="50%"{v=$2; u=v; gsub(/[a-z]+$/,"",v); gsub(/^[0-9.]+/,"",u); print v, u}' <<<"$out")
		read -r p99 u99 < <(awk '$1=="99%"{v=$2; u=v; gsub(/[a-z]+$/,"",v); gsub(/^[0-9.]+/,"",u); print v, u}' <<<"$out")
		cpu=$(awk -v t=$((t1 - t0)) -v k="$CLK_TCK" -v n="$reqs" 'BEGIN{printf "%.1f", t / k * 1e6 / n}')
		line="$v $r $rps $(us_of "$p50" "$u50") $(us_of "$p99" "$u99") $cpu"
		echo "$line" >>"$work/runs"
		echo "ab: $line (load $(cut -d' ' -f1 /proc/loadavg))" >&2
	done
done

echo "| build | req/s | p50 µs | p99 µs | CPU µs/req |"
echo "|---|--:|--:|--:|--:|"
for v in "${names[@]}"; do
	row="| $v"
	for col in 3 4 5 6; do
		row+=" | $(awk -v b="$v" -v c="$col" 'NR>1 && $1==b {print $c}' "$work/runs" | sort -g |
			awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')"
	done
	echo "$row |"
done
echo
if [[ $mode == serverloop ]]; then
	echo "Medians of $ROUNDS alternating runs of $DURATION at $CONNS connections; serverloop built from $(git -C "$repo" rev-parse --short "$old")."
else
	echo "Medians of $ROUNDS alternating runs of $DURATION at $CONNS connections; old = $(git -C "$repo" rev-parse --short "$old")${OLD_CONFIG:+ with $OLD_CONFIG}, new = $(git -C "$repo" rev-parse --short "$new")${NEW_CONFIG:+ with $NEW_CONFIG}."
fi
