#!/usr/bin/env bash
# run.sh runs every fuzz target of the module, one after the other (go test
# -fuzz takes one target at a time), each for FUZZTIME (default 60s), and
# prints one summary line per target: its package, the execs and the new
# interesting inputs of the last progress line go test printed, and PASS or
# FAIL. It exits 1 if any target failed, after running all of them, so one
# finding does not hide another. It is for scheduled runs (make fuzz), not
# CI: the seed corpora already run with every go test.
#
#   FUZZTIME      how long each target fuzzes (default 60s; go test's
#                 -fuzztime, so 10000x counts execs instead)
#   FUZZPARALLEL  fuzzing workers per target (default: go test's, GOMAXPROCS)
#   FUZZLOGS      directory for each target's full output (default: a new
#                 temporary directory, named in the output)
#
# A failing input is written by go test to the package's
# testdata/fuzz/<target>/ and named in that target's log.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
fuzztime=${FUZZTIME:-60s}
logs=${FUZZLOGS:-$(mktemp -d "${TMPDIR:-/tmp}/azimuth-fuzz.XXXXXX")}
mkdir -p "$logs"
parallel=()
if [[ -n ${FUZZPARALLEL:-} ]]; then
	parallel=(-parallel "$FUZZPARALLEL")
fi

# Packages of other modules (tools/consul has its own go.mod) are not
# this module's: go test from here cannot build them.
nested=$(find . -mindepth 2 -name go.mod -not -path './.git/*' -printf '%h\n')
targets=()
while IFS=: read -r file name; do
	dir=$(dirname "$file")
	skip=
	for n in $nested; do
		[[ $dir == "$n" || $dir == "$n"/* ]] && skip=1
	done
	[[ -z $skip ]] && targets+=("$dir $name")
done < <(grep -rHo --include='*_test.go' --exclude-dir=testdata --exclude-dir=.git \
	'^func Fuzz[A-Za-z0-9_]*' . | sed 's/func //' | sort)

if ((${#targets[@]} == 0)); then
	echo "run.sh: no fuzz targets found under $root" >&2
	exit 1
fi
echo "fuzzing ${#targets[@]} targets for $fuzztime each; full output in $logs"

summary=()
failed=0
for t in "${targets[@]}"; do
	read -r dir name <<<"$t"
	log="$logs/$(echo "${dir#./}" | tr / _)_$name.log"
	echo "== $name ($dir)"
	go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "${parallel[@]}" "$dir" >"$log" 2>&1
	rc=$?
	tail -n 3 "$log"
	# The last progress line: "fuzz: elapsed: 1m0s, execs: 123 (2/sec),
	# new interesting: 4 (total: 56)".
	last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -n 1)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	newin=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	total=$(sed -nE 's/.*\(total: ([0-9]+)\).*/\1/p' <<<"$last")
	result=PASS
	if ((rc != 0)); then
		result=FAIL
		failed=1
		input=$(grep -Eo 'testdata/fuzz/[^ ]+' "$log" | tail -n 1)
		[[ -n $input ]] && result="FAIL (input $dir/$input)"
	fi
	summary+=("$(printf '%-36s %-22s execs %-11s new %-5s corpus %-6s %s' \
		"$name" "$dir" "${execs:-?}" "${newin:-?}" "${total:-?}" "$result")")
done

echo
echo "fuzz summary (FUZZTIME=$fuzztime, logs in $logs):"
printf '%s\n' "${summary[@]}"
exit "$failed"
