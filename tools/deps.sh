#!/usr/bin/env bash
# deps.sh installs the Debian packages behind the commands the tests run,
# when a command is missing, so that `make test` (which runs it first)
# works on a fresh machine with only Go and make, as the README says:
#
#   chromium          renders the admin status page (cmd/azimuth)
#   systemd-analyze   checks the systemd unit (packaging/), from systemd
#   haproxy, curl     send the PROXY protocol to azimuth (cmd/azimuth)
#
# With every command present it does nothing and needs no privilege.
# Otherwise it runs apt-get update, then apt-get install, as root or
# through sudo (asking for a password only on a terminal), and fails with
# what to do when it cannot. Arguments name other commands to ensure the
# same way instead (.ci/run passes make, on an image without it).
set -euo pipefail

# package names the Debian package that provides a command.
package() {
	case "$1" in
	systemd-analyze) echo systemd ;;
	*) echo "$1" ;;
	esac
}

fail() {
	echo "tools/deps.sh: $*" >&2
	exit 1
}

commands=("$@")
[ ${#commands[@]} -gt 0 ] || commands=(chromium systemd-analyze haproxy curl)
missing=()
need=()
for c in "${commands[@]}"; do
	# Debian puts haproxy in /usr/sbin, which a user's PATH may lack.
	if ! command -v "$c" >/dev/null && [ ! -x "/usr/sbin/$c" ]; then
		missing+=("$c")
		need+=("$(package "$c")")
	fi
done
[ ${#need[@]} -gt 0 ] || exit 0

what="the tests run ${missing[*]}, not found on PATH"
by_hand="install the Debian packages ${need[*]} yourself (apt-get install ${need[*]}), or their equivalents, and run again"
command -v apt-get >/dev/null ||
	fail "$what, and there is no apt-get here to install them with: $by_hand"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null; then
		fail "$what; installing them needs root, and there is no sudo: run as root, or $by_hand"
	elif sudo -n true 2>/dev/null; then
		as_root=(sudo -n)
	elif [ -t 0 ]; then
		as_root=(sudo) # asks for the password
	else
		fail "$what; installing them needs root, and sudo wants a password with no terminal to ask for it on: run as root, or $by_hand"
	fi
fi

echo "tools/deps.sh: installing ${need[*]} for ${missing[*]}" >&2
${as_root[@]+"${as_root[@]}"} apt-get update -qq ||
	fail "apt-get update failed: $by_hand"
${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" ||
	fail "apt-get install ${need[*]} failed: $by_hand"
for c in "${missing[@]}"; do
	command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || fail "installed $(package "$c") but $c is still not on PATH ($PATH)"
done
