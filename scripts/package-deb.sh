#!/usr/bin/env bash
# Builds the Debian package of login-bridge with plain `dpkg-deb --build` (docs/package.md):
#   /usr/bin/login-bridge, the precompressed SPA in /usr/share/login-bridge/dist, the hardened
#   unit /usr/lib/systemd/system/login-bridge.service, /etc/login-bridge/{config.toml,secrets.env}
#   as conffiles, copyright and changelog in /usr/share/doc/login-bridge; maintainer scripts
#   from packaging/deb.
#
# usage: scripts/package-deb.sh [--profile P] [--binary F] [--version V] [--out D] [--compress Z]
#   --profile P   cargo profile the binary is built with (default: release, fat LTO)
#   --binary F    package this binary instead of building one
#   --version V   package version (default: the workspace version from Cargo.toml)
#   --out D       where the .deb goes (default: target/debian); its path is printed last
#   --compress Z  xz (default: what Debian's archive uses, ~1 min for the release binary on 2
#                 cores) or zstd (level 3, under a second; dpkg >= 1.21.18, Debian 12): the test uses it
# The SPA is taken from dist/ (scripts/build-ui.sh builds it, with its .br and .gz files); it is
# built first if dist/index.html is missing.
#
# dpkg-deb rather than cargo-deb: dpkg-deb is on every Debian machine, while cargo-deb would
# be compiled by `cargo install` first on every fresh CI machine (docs/package.md has both costs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

profile=release binary="" version="" out="" compress=xz
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --compress) compress=$2; shift 2 ;;
    *) echo "package-deb.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
target_dir=${CARGO_TARGET_DIR:-target}
out=${out:-$target_dir/debian}
[ -n "$version" ] || version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
started=$SECONDS

if [ -z "$binary" ]; then
  cargo build --locked -p login-bridge --bin login-bridge --profile "$profile"
  case "$profile" in dev) dir=debug ;; *) dir=$profile ;; esac
  binary=$target_dir/$dir/login-bridge
fi
[ -x "$binary" ] || { echo "package-deb.sh: no binary at $binary" >&2; exit 1; }
if [ ! -f dist/index.html ]; then
  scripts/build-ui.sh
fi
ls dist/*.wasm.br >/dev/null 2>&1 || {
  echo "package-deb.sh: dist/ has no precompressed files: build it with scripts/build-ui.sh" >&2; exit 1; }

umask 022
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
pkg=packaging/deb
install -D -m 0755 "$binary" "$root/usr/bin/login-bridge"
# Symbols and debug info are of no use on a server and are a third of the file.
strip --strip-debug "$root/usr/bin/login-bridge" 2>/dev/null || true
mkdir -p "$root/usr/share/login-bridge"
cp -r dist "$root/usr/share/login-bridge/dist"
install -D -m 0644 "$pkg/login-bridge.service" "$root/usr/lib/systemd/system/login-bridge.service"
install -D -m 0644 "$pkg/config.toml" "$root/etc/login-bridge/config.toml"
# Holds secrets once filled in: root only (systemd reads it as root for the unit).
install -D -m 0600 "$pkg/secrets.env" "$root/etc/login-bridge/secrets.env"
doc=$root/usr/share/doc/login-bridge
install -D -m 0644 "$pkg/copyright" "$doc/copyright"
install -m 0644 docs/package.md "$doc/package.md"
# Debian's changelog format, dated by the last commit so two builds of one commit are alike.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
date=$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
printf 'login-bridge (%s) unstable; urgency=medium\n\n  * Built from the login-bridge repository, commit %s.\n\n -- login-bridge maintainers <login-bridge@localhost>  %s\n' \
  "$version" "$commit" "$date" | gzip -9n > "$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"

mkdir -p "$root/DEBIAN"
install -m 0755 "$pkg/postinst" "$pkg/prerm" "$pkg/postrm" "$root/DEBIAN/"
printf '/etc/login-bridge/config.toml\n/etc/login-bridge/secrets.env\n' > "$root/DEBIAN/conffiles"
# The C libraries the binary links to, at the newest glibc symbol version it uses (what
# dpkg-shlibdeps would find, without needing a debian/ source tree).
glibc=$(objdump -T "$root/usr/bin/login-bridge" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
depends="libc6 (>= ${glibc:-2.36})"
ldd "$root/usr/bin/login-bridge" 2>/dev/null | grep -q 'libgcc_s' && depends="$depends, libgcc-s1"
(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
cat > "$root/DEBIAN/control" <<EOF
Package: login-bridge
Version: $version
Architecture: $arch
Maintainer: login-bridge maintainers <login-bridge@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Section: net
Priority: optional
Description: OIDC sign-in and API tokens for a single-page web UI
 login-bridge completes the OpenID Connect code flow for a single-page web UI,
 keeps the tokens in a server-side session and hands the UI a validated token;
 its API accepts JWTs of configured issuers, and it can mint tokens of its own.
 .
 Runs as a hardened systemd service (login-bridge.service); configure the
 provider in /etc/login-bridge/config.toml first.
EOF

mkdir -p "$out"
deb=$out/login-bridge_${version}_${arch}.deb
case "$compress" in
  xz) zflags=(-Zxz) ;;
  zstd) zflags=(-Zzstd -z3) ;;
  *) echo "package-deb.sh: --compress xz or zstd, not $compress" >&2; exit 2 ;;
esac
dpkg-deb --build --root-owner-group "${zflags[@]}" "$root" "$deb" >/dev/null
printf 'package-deb.sh: %s (%s KB) in %ss\n' "$deb" "$(du -k "$deb" | cut -f1)" "$((SECONDS - started))" >&2
echo "$deb"
