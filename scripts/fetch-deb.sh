#!/usr/bin/env bash
# Fetches Debian packages of any suite from the system's own Debian archive and unpacks them
# into a private directory, without touching the system's sources or installing anything:
#   scripts/fetch-deb.sh SUITE DEST PACKAGE...     e.g. sid /var/cache/youki-shim/runc-sid runc
# SUITE is a Debian suite (bookworm, trixie, sid, ...). Each PACKAGE's .deb is unpacked
# (dpkg -x) into DEST; the .debs are not kept.
#
# The archive's URI is read from the system's apt sources (no archive host is named here):
# the entry whose suite is the system's main suite (VERSION_CODENAME of /etc/os-release, not
# -security or -updates), from the deb822 files (/etc/apt/sources.list.d/*.sources) or the
# one-line ones (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list). `--print-uri` only
# prints that URI.
set -euo pipefail

die() {
    echo "fetch-deb: $*" >&2
    exit 1
}

# The URI of the system's main Debian suite.
archive_uri() {
    local codename
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null | tr -d '"' | head -n 1)
    [ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release: cannot tell the system's Debian suite"
    local f uri=""
    # deb822: stanzas separated by blank lines; fields Types, URIs, Suites, Enabled.
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk -v suite="$codename" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uris != "" && found == "") {
                    split(uris, u, " "); found = u[1]
                }
                types = ""; suites = ""; uris = ""; enabled = ""
            }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            {
                line = $0; sub(/^[^:]*:[[:space:]]*/, "", line); gsub(/[[:space:]]+/, " ", line)
                key = tolower($1)
                if (key == "types:") types = line
                else if (key == "suites:") suites = line
                else if (key == "uris:") uris = line
                else if (key == "enabled:") enabled = tolower(line)
            }
            END { flush(); print found }' "$f")
        [ -z "$uri" ] || break
    done
    if [ -z "$uri" ]; then
        # One-line format: deb [options] URI SUITE COMPONENT...
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            uri=$(awk -v suite="$codename" '
                /^[[:space:]]*deb[[:space:]]/ {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) { print $i; exit }
                }' "$f")
            [ -z "$uri" ] || break
        done
    fi
    [ -n "$uri" ] || die "no apt source for the suite $codename in /etc/apt/sources.list or /etc/apt/sources.list.d/ (*.sources, *.list)"
    echo "${uri%/}"
}

if [ "${1:-}" = "--print-uri" ]; then
    archive_uri
    exit 0
fi

suite=${1:?usage: fetch-deb.sh SUITE DEST PACKAGE... (or --print-uri)}
dest=${2:?usage: fetch-deb.sh SUITE DEST PACKAGE...}
shift 2
[ "$#" -gt 0 ] || die "usage: fetch-deb.sh SUITE DEST PACKAGE..."
command -v apt-get >/dev/null || die "apt-get not found (this script needs Debian's apt)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian's dpkg)"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "$keyring missing: install Debian's debian-archive-keyring"

uri=$(archive_uri)
work=$(mktemp -d /tmp/fetch-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$dest"
echo "deb [signed-by=$keyring] $uri $suite main" > "$work/sources.list"
apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=-"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o "APT::Get::List-Cleanup=0"
    # The download goes to a root-only temp dir, which apt's _apt user cannot write.
    -o "APT::Sandbox::User=root"
    -q
)
apt-get "${apt_opts[@]}" update >&2 || die "apt-get update of $suite from $uri failed"
(cd "$work" && apt-get "${apt_opts[@]}" download "$@" >&2) || die "apt-get download $* ($suite) failed"
for p in "$@"; do
    deb=$(find "$work" -maxdepth 1 -name "${p}_*.deb" | head -n 1)
    [ -n "$deb" ] || die "no .deb of $p downloaded"
    dpkg-deb -x "$deb" "$dest"
done
