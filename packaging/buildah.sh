#!/usr/bin/env bash
# buildah.sh builds the container image from the Dockerfile without a
# Docker engine, with buildah (Debian: apt-get install buildah), then runs
# the image's command and its HEALTHCHECK inside it, as the image's user,
# and stops it with SIGTERM. It builds the committed tree (a clone of HEAD),
# so the binary's VCS stamp is honest. No daemon, no runc: vfs storage and
# chroot isolation, which work in unprivileged sandboxes.
#
#   packaging/buildah.sh [TAG]         (default TAG: azimuth:$(git describe))
#
#   AZIMUTH_GO_IMAGE=local   assemble the build stage's base from this
#                            machine's Go toolchain, sh, git and coreutils
#                            instead of pulling golang:1.26-bookworm (for
#                            machines that cannot reach an image registry);
#                            the module cache is bind-mounted, so the build
#                            needs no module download either.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(git -C "$repo" describe --tags --always 2>/dev/null || echo dev)
tag=${1:-azimuth:$version}
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot

work=$(mktemp -d)
containers=()
cleanup() {
	for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT

git clone -q "$repo" "$work/src"

args=(--format docker --layers=false --build-arg "VERSION=$version" -t "$tag")
if [[ ${AZIMUTH_GO_IMAGE:-} == local ]]; then
	root=$work/builder
	mkdir -p "$root/usr/local" "$root/etc/ssl/certs" "$root/tmp" "$root/root" "$root/go"
	chmod 1777 "$root/tmp"
	cp -a "$(go env GOROOT)" "$root/usr/local/go"
	cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
	for b in sh git mkdir cp chmod env; do
		p=$(command -v "$b")
		mkdir -p "$root$(dirname "$p")"
		cp -L "$p" "$root$p"
		for lib in $(ldd "$p" | grep -o '/[^ ]*'); do
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
	done
	[[ -e $root/bin ]] || ln -s usr/bin "$root/bin"
	c=$(buildah from scratch)
	containers+=("$c")
	buildah copy "$c" "$root" / >/dev/null
	buildah config --env PATH=/usr/local/go/bin:/usr/bin:/bin --env GOPATH=/go \
		--env GOTOOLCHAIN=local --env HOME=/root "$c"
	buildah commit -q "$c" localhost/azimuth-go-builder:local >/dev/null
	args+=(--build-arg GO_IMAGE=localhost/azimuth-go-builder:local -v "$(go env GOMODCACHE):/go/pkg/mod")
fi
(cd "$work/src" && buildah bud "${args[@]}" .) >&2

# Smoke test: the image's command with a config mounted at /etc/azimuth,
# then the image's HEALTHCHECK, both as the image's user.
user=$(buildah inspect --type image --format '{{.Docker.Config.User}}' "$tag")
mkdir -m 755 "$work/etc"
cat >"$work/etc/azimuth.yaml" <<'YAML'
admin: { address: 127.0.0.1:0 }
shutdown: { grace: 1s, drain_delay: 100ms }
listeners:
  - { name: http, address: 127.0.0.1:0, routes: [ { pool: web } ] }
pools:
  - { name: web, backends: [ { address: 127.0.0.1:9 } ] }
YAML
chmod 644 "$work/etc/azimuth.yaml"
mount=(-v "$work/etc:/etc/azimuth:ro")
run=$(buildah from "$tag")
containers+=("$run")
mapfile -t cmd < <(buildah inspect --type image --format '{{range .Docker.Config.Entrypoint}}{{println .}}{{end}}{{range .Docker.Config.Cmd}}{{println .}}{{end}}' "$tag")
buildah run --user "$user" "${mount[@]}" "$run" -- "${cmd[@]}" 2>"$work/log" &
runner=$!
admin=
for _ in $(seq 100); do
	admin=$(grep -o '"msg":"admin listening","address":"[^"]*"' "$work/log" | sed 's/.*"address":"//; s/"$//' || true)
	[[ -n $admin ]] && break
	sleep 0.1
done
[[ -n $admin ]] || { echo "buildah.sh: the image's command did not start:" >&2; cat "$work/log" >&2; exit 1; }
mapfile -t hc < <(buildah inspect --type image --format '{{range .Docker.Config.Healthcheck.Test}}{{println .}}{{end}}' "$tag")
[[ ${hc[0]} == CMD ]] || { echo "buildah.sh: HEALTHCHECK ${hc[*]}: want exec form" >&2; exit 1; }
probe=$(buildah from "$tag")
containers+=("$probe")
# -admin: the test config binds port 0, so name the address it got.
buildah run --user "$user" "${mount[@]}" "$probe" -- "${hc[@]:1}" -admin "$admin"
# Stop the proxy itself, found among the descendants of our buildah run.
descendants() { local p; for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done; }
pid=
for p in $(descendants "$runner"); do
	if [[ $(cat "/proc/$p/comm" 2>/dev/null) == azimuth ]]; then pid=$p; fi
done
[[ -n $pid ]] || { echo "buildah.sh: no azimuth process under buildah run $runner" >&2; exit 1; }
kill -TERM "$pid"
wait "$runner"
grep -q '"msg":"stopped"' "$work/log" || { echo "buildah.sh: no clean stop after SIGTERM:" >&2; cat "$work/log" >&2; exit 1; }
echo "buildah.sh: built $tag; its command ran as $user, HEALTHCHECK passed, SIGTERM drained and stopped" >&2
