#!/usr/bin/env bash
# Builds the mes-edge .deb with dpkg-deb.
#
#   packaging/build-deb.sh [--binary PATH] [--out DIR]
#
# Without --binary it builds the release binary first (cargo build --release --locked
# --no-default-features --features opcua): the default features minus the demo. OPC UA is a
# production driver and goes in; the demo embeds an MQTT broker (rumqttd with its web stack and
# metrics exporter), which a line-side PC has no use for and which only widens what runs. The
# benchmark (bench/) embeds the runtime built with the same driver code. CI passes the
# debug binary the test run has already built, to test the package without a second, optimised
# build of everything; the package is the same but for that one file.
#
# Why dpkg-deb and not cargo-deb: cargo-deb is not on the machine and `cargo install` builds it
# and its ~100 crates from source (minutes on 2 cores, at every fresh CI run), while dpkg-deb
# comes with every Debian system. Our package is five files and three maintainer scripts;
# writing them out is as short as cargo-deb's metadata would be, and the scripts are ours to read.
#
# The package: /usr/bin/mes-edge, the unit /lib/systemd/system/mes-edge@.service, the user
# (sysusers.d) and the state directory /var/lib/mes-edge (tmpfiles.d), an example cell config
# /etc/mes-edge/example.toml (a conffile), the docs and every example config in
# /usr/share/doc/mes-edge.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BINARY=""
OUT="$ROOT/target/deb"
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) BINARY="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "usage: $0 [--binary PATH] [--out DIR]" >&2; exit 2 ;;
    esac
done

if [ -z "$BINARY" ]; then
    (cd "$ROOT" && cargo build --release --locked --no-default-features --features opcua --bin mes-edge)
    BINARY="$ROOT/target/release/mes-edge"
fi
[ -x "$BINARY" ] || { echo "build-deb: $BINARY is not an executable" >&2; exit 1; }

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
ARCH="$(dpkg --print-architecture)"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
PKG="$STAGE/mes-edge"

install -D -m 0755 "$BINARY" "$PKG/usr/bin/mes-edge"
# Debug symbols make a test build's binary ten times its size; the package carries none.
strip --strip-unneeded "$PKG/usr/bin/mes-edge"
install -D -m 0644 "$ROOT/systemd/mes-edge@.service" "$PKG/lib/systemd/system/mes-edge@.service"
install -D -m 0644 "$ROOT/packaging/sysusers.conf" "$PKG/usr/lib/sysusers.d/mes-edge.conf"
install -D -m 0644 "$ROOT/packaging/tmpfiles.conf" "$PKG/usr/lib/tmpfiles.d/mes-edge.conf"

# The example: the project's commented press config, with how to use it and the [health]
# defaults. The postinst makes it readable to the mes-edge group only (configs hold passwords).
install -d -m 0755 "$PKG/etc/mes-edge"
{
    cat <<'EOF'
# An example cell config. For a cell named press4:
#   cp /etc/mes-edge/example.toml /etc/mes-edge/press4.toml   (then edit it)
#   chgrp mes-edge /etc/mes-edge/press4.toml && chmod 0640 /etc/mes-edge/press4.toml
#   mes-edge check /etc/mes-edge/press4.toml
#   systemctl enable --now mes-edge@press4
# Operations (logs, health, metrics, reload): /usr/share/doc/mes-edge/OPERATIONS.md
# A commented example for each feature: /usr/share/doc/mes-edge/config/ (README.md lists them)

EOF
    cat "$ROOT/config/press-modbus-tcp.toml"
    cat <<'EOF'

# The health and metrics endpoint, with its defaults. Each cell on one PC needs its own port.
# [health]
# enabled = true
# listen = "127.0.0.1:9464"
# max_undelivered_age_s = 300   # /health answers 503 when the oldest undelivered event is older
EOF
} > "$PKG/etc/mes-edge/example.toml"
chmod 0644 "$PKG/etc/mes-edge/example.toml"

# The docs laid out as in the repository, so the README's links (docs/..., config/...,
# BENCHMARKS.md) and the docs' links to each other work where they are installed: every file
# the README links, every doc, and the example configs. OPERATIONS, EVENTS and COMMANDS keep
# their older paths beside the README (the unit's Documentation= names OPERATIONS.md there).
DOC="$PKG/usr/share/doc/mes-edge"
install -D -m 0644 "$ROOT/README.md" "$DOC/README.md"
install -D -m 0644 "$ROOT/BENCHMARKS.md" "$DOC/BENCHMARKS.md"
install -D -m 0644 -t "$DOC/docs" "$ROOT"/docs/*.md "$ROOT"/docs/*.png
install -D -m 0644 -t "$DOC/config" "$ROOT"/config/*.toml
for doc in OPERATIONS EVENTS COMMANDS; do
    ln -s "docs/$doc.md" "$DOC/$doc.md"
done
# A link in the README to a file the package does not carry is a mistake of this script.
missing="$(cd "$ROOT" && { grep -o '](\(docs\|config\)/[^)#]*\|](BENCHMARKS.md' README.md || true; } \
    | sed 's/^](//' | sort -u | while read -r f; do [ -e "$DOC/$f" ] || echo "$f"; done)"
[ -z "$missing" ] || { echo "build-deb: the README links files the package lacks: $missing" >&2; exit 1; }
cat > "$DOC/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mes-edge

Files: *
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF

# Shared-library dependencies as Debian computes them (libc6, libgcc-s1 with their versions).
SHLIBS="$(cd "$STAGE" && mkdir -p debian && printf 'Source: mes-edge\n\nPackage: mes-edge\nArchitecture: any\n' > debian/control \
    && dpkg-shlibdeps -O "$PKG/usr/bin/mes-edge" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
rm -rf "$STAGE/debian"
[ -n "$SHLIBS" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

install -d -m 0755 "$PKG/DEBIAN"
cat > "$PKG/DEBIAN/control" <<EOF
Package: mes-edge
Version: $VERSION
Architecture: $ARCH
Maintainer: mes-edge maintainers <mes-edge@users.noreply.github.com>
Section: net
Priority: optional
Depends: $SHLIBS, systemd (>= 247)
Installed-Size: $(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
Homepage: https://github.com/mes-edge/mes-edge
Description: MES edge runtime for one production cell
 Reads the cell's PLCs (Modbus TCP and RTU, OPC UA), turns their signals into production
 events (parts, scrap, machine states, device health), commits every event
 durably on the PC and delivers the events to MOM over MQTT. One TOML file
 per cell, one systemd instance per cell: mes-edge@CELL.service.
EOF
echo "/etc/mes-edge/example.toml" > "$PKG/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "$ROOT/packaging/debian/$script" "$PKG/DEBIAN/$script"
done
(cd "$PKG" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$PKG/DEBIAN/md5sums"

mkdir -p "$OUT"
DEB="$OUT/mes-edge_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
echo "$DEB"
