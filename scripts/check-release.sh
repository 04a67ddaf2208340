#!/usr/bin/env bash
# Checks the artifacts scripts/release.sh wrote, and with --install installs the .deb for real:
#
#   bash scripts/check-release.sh DIR             # checksums, .deb metadata and contents,
#                                                 # tarball contents and binary, SBOM
#   bash scripts/check-release.sh DIR --install   # then, as root on Debian: dpkg -i, the system
#                                                 # user, systemd-analyze verify of the installed
#                                                 # unit, the installed binary run as that user
#                                                 # with the installed configuration against a
#                                                 # real redis-server and scraped, dpkg -r, dpkg -P
#
# --install changes the machine (a package and a system user): CI runs it; on your own machine
# use a throwaway one. Needs dpkg-deb, tar, sha256sum, python3; --install also dpkg, redis-server.
set -euo pipefail
dir=${1:?usage: check-release.sh DIR [--install]}
install=0
[ "${2:-}" = --install ] && install=1
dir=$(cd "$dir" && pwd)
cd "$(dirname "$0")/.."
pkg=redis-clients-exporter
failures=0
fail() { echo "   FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "   ok: $*"; }

echo "== sha256sums"
(cd "$dir" && sha256sum -c sha256sums) || fail "sha256sum -c sha256sums"
deb=$(ls "$dir"/*.deb)
tarball=$(ls "$dir"/*.tar.gz)
sbom=$(ls "$dir"/*.cdx.json)
[ "$(wc -l <"$dir/sha256sums")" = 3 ] || fail "sha256sums must list the .deb, the tarball and the SBOM"

echo "== .deb: $(basename "$deb")"
field() { dpkg-deb --field "$deb" "$1"; }
[ "$(field Package)" = "$pkg" ] || fail "Package is $(field Package)"
[ "$(field Architecture)" = "$(dpkg --print-architecture 2>/dev/null || echo amd64)" ] || fail "Architecture $(field Architecture)"
grep -q 'libc6' <<<"$(field Depends)" || fail "Depends lacks libc6 (\$auto): $(field Depends)"
ok "$(field Package) $(field Version) $(field Architecture), Depends: $(field Depends)"
contents=$(dpkg-deb --contents "$deb" | awk '{print $NF}')
for f in ./usr/bin/$pkg ./etc/$pkg/config.toml "./lib/systemd/system/$pkg.service|./usr/lib/systemd/system/$pkg.service" \
    ./usr/share/$pkg/systemd/password.conf ./usr/share/$pkg/acl/users.acl ./usr/share/$pkg/alerts/redis-clients.rules.yml \
    ./usr/share/$pkg/dashboards/redis-connections-overview.json ./usr/share/doc/$pkg/copyright; do
    grep -qxE "${f//./\\.}" <<<"$contents" || fail ".deb lacks $f"
done
ctl=$(mktemp -d)
trap 'rm -rf "$ctl"' EXIT
dpkg-deb --control "$deb" "$ctl"
grep -qx "/etc/$pkg/config.toml" "$ctl/conffiles" || fail "config.toml is not a conffile"
grep -q 'useradd --system' "$ctl/postinst" || fail "postinst creates no system user"
grep -q 'deb-systemd-helper' "$ctl/postinst" || fail "postinst does not enable the unit"
ok "contents: binary, unit, conffile config.toml, system user and unit in postinst, shared files"

echo "== tarball: $(basename "$tarball")"
listing=$(tar -tzf "$tarball")
top=$(head -1 <<<"$listing" | cut -d/ -f1)
for f in bin/$pkg README.md deploy/systemd/$pkg.service deploy/systemd/config.toml deploy/acl/users.acl \
    alerts/redis-clients.rules.yml dashboards/redis-connections-overview.json deploy/helm/$pkg/Chart.yaml; do
    grep -qx "$top/$f" <<<"$listing" || fail "tarball lacks $top/$f"
done
tar -xzf "$tarball" -C "$ctl"
"$ctl/$top/bin/$pkg" --version >/dev/null || fail "the tarball's binary does not run"
ok "$top/: bin/$pkg ($("$ctl/$top/bin/$pkg" --version)), deploy/, alerts/, dashboards/"

echo "== SBOM: $(basename "$sbom")"
python3 - "$sbom" Cargo.lock <<'EOF' || fail "SBOM"
import json, sys, tomllib
bom = json.load(open(sys.argv[1]))
lock = {(p["name"], p["version"]) for p in tomllib.load(open(sys.argv[2], "rb"))["package"]}
assert bom.get("bomFormat") == "CycloneDX" and bom.get("specVersion") == "1.5", (bom.get("bomFormat"), bom.get("specVersion"))
assert bom["metadata"]["component"]["name"] == "redis-clients-exporter", bom["metadata"]["component"]
comps = {(c["name"], c["version"]) for c in bom.get("components", [])}
missing = [n for n in ("tokio", "axum", "hyper", "rustls", "ring", "clap") if not any(c[0] == n for c in comps)]
assert not missing, "SBOM lacks %s" % missing
stray = comps - lock
assert not stray, "SBOM components not in Cargo.lock: %s" % sorted(stray)[:5]
print("   ok: CycloneDX %s, %d components, every one at its Cargo.lock version" % (bom["specVersion"], len(comps)))
EOF

if [ "$install" = 1 ]; then
    echo "== dpkg -i $(basename "$deb")"
    [ "$(id -u)" = 0 ] || { fail "--install needs root"; exit 1; }
    if dpkg -s "$pkg" >/dev/null 2>&1; then fail "$pkg is already installed here: not touching it"; exit 1; fi
    work=$(mktemp -d)
    pids=()
    cleanup() {
        local p
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        dpkg -P "$pkg" >/dev/null 2>&1 || true
        rm -rf "$work" "$ctl"
    }
    trap cleanup EXIT
    dpkg -i "$deb"
    dpkg -s "$pkg" | grep -q '^Status: install ok installed' || fail "dpkg -s: not installed"
    getent passwd "$pkg" >/dev/null || fail "no system user $pkg"
    unit=""
    for u in /lib/systemd/system/$pkg.service /usr/lib/systemd/system/$pkg.service; do
        if [ -e "$u" ]; then unit=$u; break; fi
    done
    [ -n "$unit" ] || fail "no $pkg.service installed"
    if command -v systemd-analyze >/dev/null; then
        out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
        if grep -F "$pkg.service" <<<"$out"; then fail "systemd-analyze verify $unit: findings"; fi
    fi
    ok "installed: /usr/bin/$pkg, $unit, system user $(getent passwd "$pkg" | cut -d: -f1,3)"

    echo "== the installed binary, as user $pkg, with the installed configuration"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
        --logfile "$work/redis.log" &
    pids+=($!)
    eport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # The installed file with only the Redis port and the listen address changed, readable by
    # the system user.
    sed -e "s#redis://127.0.0.1:6379#redis://127.0.0.1:$port#" -e "s#^listen = .*#listen = \"127.0.0.1:$eport\"#" \
        "/etc/$pkg/config.toml" >"$work/config.toml"
    chmod 0755 "$work"
    chmod 0644 "$work/config.toml"
    setpriv --reuid="$pkg" --regid="$pkg" --init-groups -- "/usr/bin/$pkg" --config "$work/config.toml" \
        >"$work/exporter.log" 2>&1 &
    pids+=($!)
    up=""
    for _ in $(seq 100); do
        up=$(python3 - "http://127.0.0.1:$eport/metrics" <<'EOF' || true
import sys, urllib.request
try:
    text = urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()
except Exception:
    sys.exit(1)
print("\n".join(l for l in text.splitlines() if l.startswith("redis_up{")))
EOF
)
        grep -q 'redis_up{target="cache-main"} 1' <<<"$up" && break
        sleep 0.2
    done
    if grep -q 'redis_up{target="cache-main"} 1' <<<"$up"; then
        ok "scraped: $up"
    else
        fail "no redis_up 1 from the installed exporter ($up); log: $(tail -3 "$work/exporter.log")"
    fi
    user_of=$(ps -o user= -p "${pids[1]}" 2>/dev/null || true)
    [ "$user_of" = "$pkg" ] || fail "the exporter ran as '$user_of', not $pkg"
    kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true

    echo "== dpkg -r, dpkg -P"
    dpkg -r "$pkg"
    [ ! -e "/usr/bin/$pkg" ] || fail "dpkg -r left /usr/bin/$pkg"
    [ ! -e "$unit" ] || fail "dpkg -r left $unit"
    [ -e "/etc/$pkg/config.toml" ] || fail "dpkg -r removed the conffile (only purge may)"
    dpkg -P "$pkg"
    [ ! -e "/etc/$pkg/config.toml" ] || fail "dpkg -P left /etc/$pkg/config.toml"
    ok "removed (configuration kept), then purged (configuration gone)"
fi

if [ "$failures" -gt 0 ]; then
    echo "check-release: $failures failed" >&2
    exit 1
fi
echo "check-release: all passed"
