#!/usr/bin/env bash
# run.sh — Azimuth side by side with HAProxy, nginx and Caddy, in one run on
# this machine, over loopback only.
#
#   loadtest/peers/run.sh              # ~10 s per measurement, ~7 minutes
#   QUICK=1 loadtest/peers/run.sh      # 3 s per measurement, a smoke check
#
# It builds azimuth and azload from the committed HEAD (AZIMUTH_SRC=tree
# builds the working tree instead) and the fixed-body backend in
# backend/, starts one backend process answering on six loopback addresses
# in three zones (127.0.1.1, 127.0.1.2, 127.0.2.1, 127.0.2.2, 127.0.3.1,
# 127.0.3.2), then in turn each proxy with the equivalent config in
# configs/, and loads it with wrk (HTTP/1.1, TLS HTTP/1.1) and azload
# (HTTP/2 over TLS, one stream per connection, and ten: h2x10) at 8 and
# 64 connections. The same load straight to one
# backend is the limit. Each proxy is then restarted and held at 1,000
# keep-alive connections for its peak RSS there.
#
# Core layout: the load generator runs on core LOAD_CPU (0), the proxy and
# the backend share core PROXY_CPU (1). Every proxy gets one core: HAProxy
# nbthread 1, nginx worker_processes 1, Caddy and Azimuth GOMAXPROCS=1, all
# pinned with taskset. wrk runs one thread, azload GOMAXPROCS=1.
#
# Azimuth runs the config a user writes first (configs/azimuth.yaml: no
# runtime, log or timeout keys), so its access log is on, to stdout, which
# goes to a file. The peers run without logs, as tuned for a benchmark;
# each NAME-log proxy is the same peer with its log on as it ships it:
# haproxy-log sends its lines to a syslog socket (a sink on the load core,
# `backend -syslog`), nginx-log writes its access log file (combined
# format), caddy-log writes its JSON access log to a file.
# azimuth-nolog is Azimuth with `output: "off"`, the same as the peers.
#
# Environment:
#   DURATION=10s        each measurement (QUICK=1 sets 3s)
#   CONNS="8 64"        connection counts of the matrix
#   BIG_CONNS=1000      connections of the peak RSS run (0 skips it)
#   PROXIES="azimuth haproxy nginx caddy"
#                       also: azimuth-nolog, haproxy-log, nginx-log, caddy-log
#   ROUNDS=1            rounds of the whole sequence; each cell is then the
#                       median of its rounds (a busy machine drifts: use 3)
#   PROFILE=1           also take a CPU profile of Azimuth at 64 connections
#                       and print its top entries (not during a measurement)
#   PROFILE_SECONDS=10  length of that profile
#   AZIMUTH_SRC=head    head | tree: what azimuth and azload are built from
#   PORT_BASE=28000     ports: backends +80 (+444 TLS on 127.0.1.1), proxy
#                       plain +100, proxy TLS +443, Azimuth admin +901
#   LOAD_CPU=0 PROXY_CPU=1
#   KEEP=1              keep the work directory (configs, logs, raw output)
#
# Output: a markdown report on stdout (versions, layout, load average,
# absolute numbers, ratios to HAProxy, the targets); progress on stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then DURATION=${DURATION:-3s}; else DURATION=${DURATION:-10s}; fi
CONNS=${CONNS:-"8 64"}
BIG_CONNS=${BIG_CONNS:-1000}
PROXIES=${PROXIES:-"azimuth haproxy nginx caddy"}
PROFILE=${PROFILE:-0}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
ROUNDS=${ROUNDS:-1}
AZIMUTH_SRC=${AZIMUTH_SRC:-head}
PORT_BASE=${PORT_BASE:-28000}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
KEEP=${KEEP:-0}

BPORT=$((PORT_BASE + 80))
BTLS=$((PORT_BASE + 444))
PLAIN=$((PORT_BASE + 100))
TLS=$((PORT_BASE + 443))
ADMIN=$((PORT_BASE + 901))
BACKEND_ADDRS="127.0.1.1:$BPORT,127.0.1.2:$BPORT,127.0.2.1:$BPORT,127.0.2.2:$BPORT,127.0.3.1:$BPORT,127.0.3.2:$BPORT"
CLK_TCK=$(getconf CLK_TCK)

log() { printf '%s\n' "$*" >&2; }
die() { log "peers: $*"; exit 1; }

# --- what the run needs ------------------------------------------------------
for tool in go wrk jq openssl taskset curl; do
	command -v "$tool" >/dev/null || die "$tool is missing (apt-get update && apt-get install -y wrk jq openssl util-linux curl; Go from go.dev)"
done
ncpu=$(nproc)
((ncpu > LOAD_CPU && ncpu > PROXY_CPU)) || die "need cores $LOAD_CPU and $PROXY_CPU, this machine has $ncpu"

skipped=()
wanted=()
for p in $PROXIES; do
	case $p in
	azimuth | azimuth-nolog) wanted+=("$p") ;;
	haproxy | nginx | caddy | haproxy-log | nginx-log | caddy-log)
		if command -v "${p%-log}" >/dev/null; then
			wanted+=("$p")
		else
			skipped+=("$p: not installed (apt-get install -y ${p%-log}), skipped")
			log "peers: ${p%-log} is not installed (apt-get install -y ${p%-log}): SKIPPED"
		fi
		;;
	*) die "unknown proxy $p (azimuth, azimuth-nolog, haproxy, nginx, caddy, and each peer with -log)" ;;
	esac
done
[[ " ${wanted[*]} " == *" haproxy "* ]] || log "peers: haproxy not measured: the ratio columns will be empty"

# --- cleanup: every process this script starts ---------------------------------
work=$(mktemp -d /tmp/azimuth-peers.XXXXXX)
cd "$work" # stray output of any tool lands here, not in the repository
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait_gone "$p" 5 || kill -KILL "$p" 2>/dev/null || true
	done
	if [[ $KEEP == 1 ]]; then log "peers: work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'log "peers: a command failed at line $LINENO (KEEP=1 keeps $work)"' ERR

# wait_gone PID SECONDS: true once PID has exited.
wait_gone() {
	local end=$((SECONDS + $2))
	while kill -0 "$1" 2>/dev/null; do
		((SECONDS < end)) || return 1
		sleep 0.1
	done
	wait "$1" 2>/dev/null || true
}

# stop PID: TERM, then KILL after 5 s; forgets the pid.
stop() {
	kill -TERM "$1" 2>/dev/null || true
	wait_gone "$1" 5 || { kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
	local keep=() p
	for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	pids=("${keep[@]}")
}

# wait_port HOST PORT PID LOGFILE: polls until HOST:PORT accepts, for 15 s.
wait_port() {
	local end=$((SECONDS + 15))
	until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
		if ! kill -0 "$3" 2>/dev/null; then
			log "peers: process $3 exited before $1:$2 opened; its log:"
			tail -n 30 "$4" >&2 || true
			exit 1
		fi
		((SECONDS < end)) || die "$1:$2 did not open within 15 s (log: $4)"
		sleep 0.05
	done
}

# --- packaged daemons -----------------------------------------------------------
# Debian starts nginx and haproxy (and caddy) on install where it can. They
# would compete for the cores, so they are stopped; every proxy here runs in
# the foreground under this script.
for svc in nginx haproxy caddy; do
	for pf in /run/$svc.pid /run/$svc/$svc.pid /var/run/$svc.pid; do
		if [[ -f $pf ]] && kill -0 "$(cat "$pf")" 2>/dev/null; then
			log "peers: stopping the packaged $svc service (pid $(cat "$pf"))"
			service "$svc" stop >&2 2>&1 || kill -TERM "$(cat "$pf")"
		fi
	done
done

ulimit -n "$(ulimit -Hn)" || true
((BIG_CONNS == 0)) || (($(ulimit -n) > BIG_CONNS * 3)) ||
	die "open files limit $(ulimit -n) is too low for $BIG_CONNS connections through a proxy"

# --- build ----------------------------------------------------------------------
log "peers: building into $work"
src=$repo
if [[ $AZIMUTH_SRC == head ]]; then
	src=$work/src
	mkdir -p "$src"
	git -C "$repo" archive HEAD | tar -x -C "$src"
	az_rev=$(git -C "$repo" rev-parse --short HEAD)
else
	az_rev="$(git -C "$repo" rev-parse --short HEAD) + working tree"
fi
(cd "$src" && go build -o "$work/azimuth" ./cmd/azimuth && go build -o "$work/azload" ./cmd/azload)
(cd "$repo" && go build -o "$work/backend" ./loadtest/peers/backend)

# A fresh self-signed ECDSA certificate per run; no key is kept.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" >"$work/haproxy.pem"

render() { # render TEMPLATE OUT
	sed -e "s#@PLAIN@#$PLAIN#g" -e "s#@TLS@#$TLS#g" -e "s#@BPORT@#$BPORT#g" \
		-e "s#@ADMIN@#$ADMIN#g" -e "s#@DIR@#$work#g" -e "s#@CERT@#$work/cert.pem#g" \
		-e "s#@KEY@#$work/key.pem#g" -e "s#@PEM@#$work/haproxy.pem#g" "$1" >"$2"
}

# --- versions -------------------------------------------------------------------
declare -A version
version[azimuth]="$("$work/azimuth" version 2>&1 | sed -n 1p) ($az_rev)"
version[go]=$(go version)
command -v haproxy >/dev/null && version[haproxy]=$(haproxy -v 2>&1 | sed -n 1p)
command -v nginx >/dev/null && version[nginx]=$(nginx -v 2>&1 | sed -n 1p)
command -v caddy >/dev/null && version[caddy]="caddy $(caddy version 2>&1 | sed -n 1p)"
version[wrk]=$(wrk -v 2>&1 | sed -n 1p || true)

# --- the backend ----------------------------------------------------------------
taskset -c "$PROXY_CPU" env GOMAXPROCS=1 "$work/backend" -addrs "$BACKEND_ADDRS" \
	-tls "127.0.1.1:$BTLS" -cert "$work/cert.pem" -key "$work/key.pem" -size 100 \
	>"$work/backend.log" 2>&1 &
backend_pid=$!
pids+=("$backend_pid")
for a in ${BACKEND_ADDRS//,/ }; do wait_port "${a%:*}" "${a##*:}" "$backend_pid" "$work/backend.log"; done
wait_port 127.0.1.1 "$BTLS" "$backend_pid" "$work/backend.log"
if [[ " ${wanted[*]} " == *" haproxy-log "* ]]; then
	# The syslog daemon's socket, on the load core: a daemon's work is not
	# the proxy's, as the kernel's writeback of a log file is not.
	taskset -c "$LOAD_CPU" "$work/backend" -syslog "$work/syslog.sock" >"$work/syslog.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do [[ -S $work/syslog.sock ]] && break; sleep 0.1; done
	[[ -S $work/syslog.sock ]] || die "the syslog sink did not start: $(cat "$work/syslog.log")"
fi

# --- proxies --------------------------------------------------------------------
# start_proxy NAME: renders its config, starts it on the proxy core, waits
# for both listeners and checks one request through each; sets proxy_pid.
start_proxy() {
	local name=$1 logf=$work/$1.log
	# Log files start empty in every run of a proxy, so one run's file
	# does not make the next one's writes slower.
	rm -f "$work"/*-access.log
	case $name in
	azimuth | azimuth-nolog)
		render "$here/configs/azimuth.yaml" "$work/$name.yaml"
		[[ $name == azimuth ]] || printf 'log: { access_log: { output: "off" } }\n' >>"$work/$name.yaml"
		"$work/azimuth" validate "$work/$name.yaml" >&2
		# stdout (the access log) to a file, as `azimuth >> azimuth.log`.
		taskset -c "$PROXY_CPU" env GOMAXPROCS=1 "$work/azimuth" -config "$work/$name.yaml" >"$work/azimuth-access.log" 2>"$logf" &
		;;
	haproxy | haproxy-log)
		render "$here/configs/haproxy.cfg" "$work/$name.cfg"
		if [[ $name == haproxy-log ]]; then
			# As Debian ships it: every request to the syslog socket, in
			# HTTP log format.
			sed -i -e "s#^global\$#global\n    log $work/syslog.sock local0#" \
				-e 's#^defaults$#defaults\n    log global\n    option httplog#' "$work/$name.cfg"
		fi
		haproxy -c -q -f "$work/$name.cfg" >&2
		taskset -c "$PROXY_CPU" haproxy -db -f "$work/$name.cfg" >"$logf" 2>&1 &
		;;
	nginx | nginx-log)
		render "$here/configs/nginx.conf" "$work/$name.conf"
		[[ $name == nginx ]] || sed -i "s#^    access_log off;#    access_log $work/nginx-access.log combined;#" "$work/$name.conf"
		nginx -t -q -p "$work" -e "$work/nginx-error.log" -c "$work/$name.conf" >&2
		taskset -c "$PROXY_CPU" nginx -p "$work" -e "$work/nginx-error.log" -c "$work/$name.conf" >"$logf" 2>&1 &
		;;
	caddy | caddy-log)
		render "$here/configs/Caddyfile" "$work/$name.Caddyfile"
		[[ $name == caddy ]] || sed -i "s#^    import fleet\$#    import fleet\n    log {\n        output file $work/caddy-access.log\n    }#" "$work/$name.Caddyfile"
		mkdir -p "$work/caddy-home"
		HOME=$work/caddy-home XDG_DATA_HOME=$work/caddy-home XDG_CONFIG_HOME=$work/caddy-home \
			caddy validate --adapter caddyfile --config "$work/$name.Caddyfile" >"$work/caddy-validate.log" 2>&1 ||
			{ cat "$work/caddy-validate.log" >&2; die "caddy rejects $work/$name.Caddyfile"; }
		HOME=$work/caddy-home XDG_DATA_HOME=$work/caddy-home XDG_CONFIG_HOME=$work/caddy-home \
			taskset -c "$PROXY_CPU" env GOMAXPROCS=1 caddy run --adapter caddyfile --config "$work/$name.Caddyfile" >"$logf" 2>&1 &
		;;
	esac
	proxy_pid=$!
	pids+=("$proxy_pid")
	wait_port 127.0.0.1 "$PLAIN" "$proxy_pid" "$logf"
	wait_port 127.0.0.1 "$TLS" "$proxy_pid" "$logf"
	check "http://127.0.0.1:$PLAIN/" --http1.1
	check "https://127.0.0.1:$TLS/" --http2
}

# check URL CURL-FLAG: one request must get 200 and the 100-byte body.
check() {
	local got
	got=$(curl -sk "$2" -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 "$1") || true
	[[ $got == "200 100" ]] || die "$1: want 200 with 100 bytes, got '$got' (logs in $work; KEEP=1 keeps them)"
}

# tree PID: PID and all its descendants (nginx's workers).
tree() {
	local p c
	for p in "$@"; do
		echo "$p"
		for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do tree "$c"; done
	done
}

# cpu_ticks PID: utime+stime of PID and its descendants, in clock ticks.
cpu_ticks() {
	local sum=0 p f
	for p in $(tree "$1"); do
		# Fields after the ")" that ends comm: utime and stime are 12 and 13.
		f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		set -- $f
		sum=$((sum + ${12} + ${13}))
	done
	echo "$sum"
}

# hwm_kib PID: VmHWM (peak RSS) of PID and its descendants, summed, in KiB.
hwm_kib() {
	local sum=0 p v
	for p in $(tree "$1"); do
		v=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status" 2>/dev/null) || continue
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# core_ticks: softirq and idle time of the proxy core, in clock ticks, from
# /proc/stat (user nice system idle iowait irq softirq steal). Softirq is
# the loopback's receive work, which no process is charged for.
core_ticks() { awk -v c="cpu$PROXY_CPU" '$1 == c { print $8 + $7, $5 }' /proc/stat; }

results=$work/results.tsv
: >"$results"

# measure TARGET PROTO CONNS URL CPU_PID: one load run, one row of results:
# target proto conns rps p50_us p99_us cpu_s_per_100k errors requests backends load
# backend_us_per_req softirq_us_per_req idle_us_per_req (the last three on the
# proxy core; the backend's is "-" on the direct rows, where it is the CPU)
measure() {
	local target=$1 proto=$2 conns=$3 url=$4 cpu_pid=$5 raw load t0 t1 line b0 b1 c0 c1
	raw=$work/$target-$proto-$conns.out
	load=$(loadavg)
	b0=$(cpu_ticks "$backend_pid")
	c0=$(core_ticks)
	t0=$(cpu_ticks "$cpu_pid")
	if [[ $proto == h2* ]]; then
		# h2: one stream per connection; h2x10: ten on each, as browsers
		# and gRPC clients use HTTP/2.
		local streams=1
		[[ $proto == h2x10 ]] && streams=10
		taskset -c "$LOAD_CPU" env GOMAXPROCS=1 "$work/azload" -p h2 -insecure -c $((conns * streams)) -conns "$conns" -d "$DURATION" -o json "$url" >"$raw"
		t1=$(cpu_ticks "$cpu_pid")
		line=$(jq -r '[.throughput_rps, .latency.p50_us, .latency.p99_us, .failed, .requests, ((.backends // {}) | length)] | @tsv' "$raw")
	else
		taskset -c "$LOAD_CPU" wrk -t1 -c "$conns" -d "$DURATION" --latency "$url" >"$raw"
		t1=$(cpu_ticks "$cpu_pid")
		line=$(awk '
			function us(v) {
				if (v ~ /us$/) return v + 0
				if (v ~ /ms$/) return (v + 0) * 1000
				if (v ~ /s$/) return (v + 0) * 1000000
				return v + 0
			}
			/^ +50%/ { p50 = us($2) }
			/^ +99%/ { p99 = us($2) }
			/ requests in / { n = $1 }
			/Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 }
			/Non-2xx or 3xx/ { e += $NF }
			/^Requests\/sec:/ { rps = $2 }
			END { printf "%s\t%d\t%d\t%d\t%d\t-", rps, p50, p99, e, n }' "$raw")
	fi
	b1=$(cpu_ticks "$backend_pid")
	c1=$(core_ticks)
	local rps p50 p99 errs n backends cpu core
	IFS=$'\t' read -r rps p50 p99 errs n backends <<<"$line"
	cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.2f", (n > 0 ? d / hz / n * 100000 : 0) }')
	core=$(awk -v c0="$c0" -v c1="$c1" -v b=$((b1 - b0)) -v hz="$CLK_TCK" -v n="$n" -v direct=$([[ $target == direct ]] && echo 1 || echo 0) 'BEGIN {
		split(c0, a, " "); split(c1, z, " ")
		us = (n > 0 ? 1e6 / hz / n : 0)
		printf "%s\t%.1f\t%.1f", (direct ? "-" : sprintf("%.1f", b * us)), (z[1] - a[1]) * us, (z[2] - a[2]) * us }')
	printf '%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$proto" "$conns" "$rps" "$p50" "$p99" "$cpu" "$errs" "$n" "$backends" "$load" "$core" >>"$results"
	log "$(printf 'peers: %-8s %-6s c=%-4s %9.0f req/s  p50 %6sµs  p99 %6sµs  cpu %5ss/100k  errors %s  load %s' \
		"$target" "$proto" "$conns" "$rps" "$p50" "$p99" "$cpu" "$errs" "$load")"
	((errs == 0)) || log "peers: WARNING: $target $proto c=$conns had $errs errors (raw output: $raw)"
}

# matrix TARGET PLAIN_URL TLS_URL CPU_PID: every protocol at every count.
matrix() {
	local c
	for c in $CONNS; do
		measure "$1" h1 "$c" "$2" "$4"
		measure "$1" tls-h1 "$c" "$3" "$4"
		measure "$1" h2 "$c" "$3" "$4"
		measure "$1" h2x10 "$c" "$3" "$4"
	done
}

declare -A rss rss_big
start_load=$(loadavg)

max() { echo $(($1 > ${2:-0} ? $1 : ${2:-0})); }

for ((round = 1; round <= ROUNDS; round++)); do
	log "peers: round $round of $ROUNDS: direct to one backend (the limit)"
	taskset -c "$LOAD_CPU" wrk -t1 -c 8 -d 1s "http://127.0.1.1:$BPORT/" >/dev/null
	matrix direct "http://127.0.1.1:$BPORT/" "https://127.0.1.1:$BTLS/" "$backend_pid"
	((BIG_CONNS == 0)) || measure direct h1 "$BIG_CONNS" "http://127.0.1.1:$BPORT/" "$backend_pid"

	for p in "${wanted[@]}"; do
		base=${p%-log}
		log "peers: round $round of $ROUNDS: $p (${version[${base%-nolog}]})"
		start_proxy "$p"
		taskset -c "$LOAD_CPU" wrk -t1 -c 64 -d 1s "http://127.0.0.1:$PLAIN/" >/dev/null # warm-up
		matrix "$p" "http://127.0.0.1:$PLAIN/" "https://127.0.0.1:$TLS/" "$proxy_pid"
		rss[$p]=$(max "$(hwm_kib "$proxy_pid")" "${rss[$p]:-0}")
		if [[ $p == azimuth && $PROFILE == 1 && $round == 1 ]]; then
			taskset -c "$LOAD_CPU" wrk -t1 -c 64 -d "$((PROFILE_SECONDS + 2))s" "http://127.0.0.1:$PLAIN/" >"$work/profile-load.out" &
			wrk_pid=$!
			pids+=("$wrk_pid")
			curl -s -o "$work/azimuth.cpu.pprof" "http://127.0.0.1:$ADMIN/debug/pprof/profile?seconds=$PROFILE_SECONDS"
			wait_gone "$wrk_pid" $((PROFILE_SECONDS + 30)) || stop "$wrk_pid"
			go tool pprof -top -nodecount=25 "$work/azimuth" "$work/azimuth.cpu.pprof" >"$work/azimuth.pprof.txt" 2>/dev/null || true
		fi
		stop "$proxy_pid"
		if ((BIG_CONNS > 0)); then
			# A fresh process, so its peak is that of the big run alone.
			start_proxy "$p"
			measure "$p" h1 "$BIG_CONNS" "http://127.0.0.1:$PLAIN/" "$proxy_pid"
			rss_big[$p]=$(max "$(hwm_kib "$proxy_pid")" "${rss_big[$p]:-0}")
			stop "$proxy_pid"
		fi
	done
done

# Several rounds: each cell is the median of its rounds (errors summed, the
# highest load average kept), so a burst of other work on the machine moves
# one round, not the result.
awk -F'\t' -v OFS='\t' '
	function median(key, col,   i, j, t, m, a) {
		m = n[key]
		for (i = 1; i <= m; i++) a[i] = v[key, col, i] + 0
		for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
	}
	{
		key = $1 OFS $2 OFS $3
		if (!(key in n)) order[++keys] = key
		i = ++n[key]
		for (c = 4; c <= 7; c++) v[key, c, i] = $c
		for (c = 12; c <= 14; c++) v[key, c, i] = $c
		direct[key] = $12 == "-"
		errs[key] += $8; reqs[key] += $9
		if (!(key in back) || $10 > back[key]) back[key] = $10
		if (!(key in load) || $11 + 0 > load[key] + 0) load[key] = $11
	}
	END {
		for (k = 1; k <= keys; k++) {
			key = order[k]
			printf "%s\t%.0f\t%.0f\t%.0f\t%.2f\t%d\t%d\t%s\t%s\t%s\t%.1f\t%.1f\n", key, median(key, 4), median(key, 5), median(key, 6), median(key, 7), errs[key], reqs[key], back[key], load[key],
				(direct[key] ? "-" : sprintf("%.1f", median(key, 12))), median(key, 13), median(key, 14)
		}
	}' "$results" >"$work/median.tsv"
results=$work/median.tsv

# --- report ---------------------------------------------------------------------
mib() { awk -v k="${1:-0}" 'BEGIN { if (k > 0) printf "%.1f", k / 1024; else printf "—" }'; }

echo "# Azimuth next to HAProxy, nginx and Caddy"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -srm), $ncpu cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo))."
echo
echo "Command: \`$(for v in QUICK DURATION ROUNDS CONNS BIG_CONNS PROXIES PROFILE AZIMUTH_SRC; do
	[[ -n ${!v:-} ]] && printf '%s="%s" ' "$v" "${!v}"
done)loadtest/peers/run.sh\`"
echo
echo "Core layout: load generator (wrk -t1, azload GOMAXPROCS=1) on core $LOAD_CPU;" \
	"the proxy and the backend process share core $PROXY_CPU." \
	"One core for every proxy: HAProxy nbthread 1, nginx worker_processes 1, Caddy and Azimuth GOMAXPROCS=1;" \
	"Azimuth with the config a user writes first (access log on, to a file; no runtime keys), azimuth-nolog the same with the log off;" \
	"the peers with their logs off, and each NAME-log with its log on as it ships it (HAProxy to a syslog socket, nginx and Caddy to a file)." \
	"Backend: one Go process (GOMAXPROCS=1) with a 100-byte body on 6 addresses in 3 zones;" \
	"every proxy balances least-connections over all 6 (Azimuth has no own zone set, so it does not prefer zone a)."
echo
echo "Load average (1, 5, 15 min) at the start: $start_load; at the end: $(loadavg)." \
	"It is printed per measurement below: other work on the machine (builds, tests) shows there and skews the numbers."
echo
echo "Versions:"
for k in azimuth go haproxy nginx caddy wrk; do
	[[ -n ${version[$k]:-} ]] && echo "- $k: ${version[$k]}"
done
for s in "${skipped[@]}"; do echo "- $s"; done
echo
echo "## Numbers"
echo
((ROUNDS == 1)) || { echo "Each cell is the median of $ROUNDS rounds; errors are summed, the load average is the highest seen; peak RSS is the highest of the rounds."; echo; }
echo "| target | protocol | conns | req/s | p50 µs | p99 µs | CPU s / 100k req | backend µs/req | core softirq µs/req | core idle µs/req | errors | backends answering | load avg |"
echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, ($1 == "direct" ? $7 " (backend)" : $7), $12, $13, $14, $8, $10, $11 }' "$results"
echo
echo "CPU is the proxy's processes' user+system time (the backend's on the direct rows)." \
	"backend µs/req is the backend process's user+system time per request behind that proxy;" \
	"core softirq and idle are the proxy core's softirq+irq time (the loopback's receive work, charged to no process) and idle time per request, from /proc/stat." \
	"\"backends answering\" counts distinct X-Backend values azload saw (h2 rows only; wrk does not count them)."
echo
echo "## Ratios to HAProxy"
echo
echo "Throughput: higher is better; p99, CPU and RSS: lower is better."
echo
echo "| proxy | protocol | conns | req/s × | p99 × | CPU × |"
echo "|---|---|--:|--:|--:|--:|"
awk -F'\t' '
	function r(a, b) { return (b > 0 && a != "") ? sprintf("%.2f", a / b) : "—" }
	{ k = $2 SUBSEP $3; rps[$1, k] = $4; p99[$1, k] = $6; cpu[$1, k] = $7; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
	  if (!($1 in tseen)) { tseen[$1] = 1; targets[++nt] = $1 } }
	END {
		for (t = 1; t <= nt; t++) {
			if (targets[t] == "haproxy") continue
			for (i = 1; i <= nk; i++) {
				k = keys[i]; if (!((targets[t], k) in rps)) continue
				split(k, pk, SUBSEP)
				printf "| %s | %s | %s | %s | %s | %s |\n", targets[t], pk[1], pk[2],
					r(rps[targets[t], k], rps["haproxy", k]), r(p99[targets[t], k], p99["haproxy", k]),
					(targets[t] == "direct" ? "—" : r(cpu[targets[t], k], cpu["haproxy", k]))
			}
		}
	}' "$results"
echo
echo "## Memory (peak RSS, VmHWM summed over the proxy's processes)"
echo
echo "| proxy | after the matrix MiB | at $BIG_CONNS keep-alive conns MiB (fresh process) | × HAProxy at $BIG_CONNS |"
echo "|---|--:|--:|--:|"
for p in "${wanted[@]}"; do
	ratio=$(awk -v a="${rss_big[$p]:-0}" -v b="${rss_big[haproxy]:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "—" }')
	echo "| $p | $(mib "${rss[$p]:-0}") | $(mib "${rss_big[$p]:-0}") | $ratio |"
done
echo
echo "## Targets (Azimuth with the config a user writes first, 64 connections)"
echo
get() { awk -F'\t' -v t="$1" -v p="$2" -v c="$3" -v f="$4" '$1 == t && $2 == p && $3 == c { print $f }' "$results"; }
verdict() { awk -v v="$1" -v op="$2" -v lim="$3" 'BEGIN { if (v == "") { print "not measured"; exit } ok = (op == ">=" ? v >= lim : v <= lim); printf "%.2f (%s %s): %s", v, op, lim, (ok ? "met" : "MISSED") }'; }
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.4f", a / b }'; }
echo "- plain HTTP/1.1 throughput × HAProxy: $(verdict "$(ratio_of "$(get azimuth h1 64 4)" "$(get haproxy h1 64 4)")" ">=" 1.0)"
echo "- plain HTTP/1.1 p99 × HAProxy: $(verdict "$(ratio_of "$(get azimuth h1 64 6)" "$(get haproxy h1 64 6)")" "<=" 1.0)"
for proto in tls-h1 h2 h2x10; do
	echo "- $proto throughput × HAProxy: $(verdict "$(ratio_of "$(get azimuth $proto 64 4)" "$(get haproxy $proto 64 4)")" ">=" 0.9)"
done
if ((BIG_CONNS > 0)); then
	echo "- $BIG_CONNS connections throughput × HAProxy: $(verdict "$(ratio_of "$(get azimuth h1 "$BIG_CONNS" 4)" "$(get haproxy h1 "$BIG_CONNS" 4)")" ">=" 0.9)"
	echo "- peak RSS at $BIG_CONNS connections × HAProxy: $(verdict "$(ratio_of "${rss_big[azimuth]:-}" "${rss_big[haproxy]:-}")" "<=" 1.5)"
fi
for proto in h1 tls-h1 h2 h2x10; do
	echo "- $proto throughput × Caddy: $(verdict "$(ratio_of "$(get azimuth $proto 64 4)" "$(get caddy $proto 64 4)")" ">=" 3)"
done
echo "- the default access log: throughput × the same build with it off: $(verdict "$(ratio_of "$(get azimuth h1 64 4)" "$(get azimuth-nolog h1 64 4)")" ">=" 0.9)"
if [[ -s $work/azimuth.pprof.txt ]]; then
	echo
	echo "## Azimuth CPU profile (plain HTTP/1.1, 64 connections, ${PROFILE_SECONDS}s, round 1)"
	echo
	echo "Load during the profile: $(awk '/^Requests\/sec:/ { print $2 " req/s" }' "$work/profile-load.out" 2>/dev/null)." \
		"Few samples (the \"Total samples\" line) mean other work took the core: profile again."
	echo
	echo '```'
	cat "$work/azimuth.pprof.txt"
	echo '```'
fi
