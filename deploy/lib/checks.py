#!/usr/bin/env python3
"""The Python half of deploy/check.sh (run that, not this). Needs PyYAML.

  checks.py parse DIR...               every YAML/JSON file under DIR parses (duplicate keys are
                                       errors); Helm templates are skipped (they are Go templates)
  checks.py manifests FILE...          Kubernetes manifests: apiVersion/kind/metadata.name, and
                                       the checks below on the kinds found
  checks.py helm CHART OUT VALUES...   lint + render the chart once per values file (the helm
                                       binary if on PATH, else the helm-python-sdk package), write
                                       OUT/<values>.yaml, then the manifest checks on it
  checks.py compose FILE               the compose demo: mounted files exist, dashboards do not
                                       hard-code the provisioned data source uid
  checks.py extract-rules OUT FILE...  write the spec of every PrometheusRule to OUT/ (for promtool)
  checks.py extract-configs OUT FILE...  write the exporter config.yaml of every ConfigMap to OUT/
  checks.py acl                        deploy/acl/ files hold only user lines, the 6.2/7.0 and relief
                                       users derive from users.acl, and every copy of an exporter
                                       user's rules in README.md, docs/ and deploy/ equals the file's

Manifest checks: a PrometheusRule's spec equals alerts/redis-clients.rules.yml; a dashboard
ConfigMap's JSON equals the dashboard of the same name in dashboards/; a Deployment's containers
probe /healthz and /readyz and run as non-root without privilege escalation, and its pod sets
enableServiceLinks: false; a StatefulSet gets the same checks, and its shard must be
ordinal/<replicas> with HOSTNAME from the pod name. A sidecar (the exporter in a pod with other
containers, e.g. Redis) must have no readinessProbe on /readyz: an exporter that cannot poll
(Redis full, a wrong password) would take the pod out of its Service. Every ServiceMonitor,
PodMonitor and ScrapeConfig sets job to the job the shipped rules select (the selector of
mixin/config.libsonnet) with a relabeling.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(ROOT, "alerts", "redis-clients.rules.yml")
DASHBOARDS = os.path.join(ROOT, "dashboards")
EXPORTER_IMAGE = "redis-clients-exporter"
MIXIN_CONFIG = os.path.join(ROOT, "mixin", "config.libsonnet")
ACL_DIR = os.path.join(ROOT, "deploy", "acl")

failures = []


def fail(msg):
    failures.append(msg)
    print("  FAIL " + msg, file=sys.stderr)


def rel(path):
    return os.path.relpath(path, ROOT)


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_docs(text):
    return [d for d in yaml.load_all(text, Loader=UniqueKeyLoader) if d is not None]


def _no_dup_pairs(pairs):
    keys = [k for k, _ in pairs]
    dups = {k for k in keys if keys.count(k) > 1}
    if dups:
        raise ValueError("duplicate key(s) %s" % sorted(dups))
    return dict(pairs)


def load_json(text):
    return json.loads(text, object_pairs_hook=_no_dup_pairs)


def is_helm_template(path):
    parts = rel(path).split(os.sep)
    return "templates" in parts and "helm" in parts


def cmd_parse(dirs):
    counts = {"yaml": 0, "json": 0}
    for d in dirs:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, d)):
            dirnames[:] = sorted(x for x in dirnames if x not in ("__pycache__", "node_modules"))
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if is_helm_template(path):
                    continue
                kind = None
                if name.endswith((".yml", ".yaml", ".yml.example", ".yaml.example")):
                    kind = "yaml"
                elif name.endswith(".json"):
                    kind = "json"
                if kind is None:
                    continue
                try:
                    with open(path, encoding="utf-8") as f:
                        text = f.read()
                    if kind == "yaml":
                        load_yaml_docs(text)
                    else:
                        load_json(text)
                    counts[kind] += 1
                except Exception as e:  # noqa: BLE001 - report any parse error
                    fail("%s: does not parse as %s: %s" % (rel(path), kind.upper(), e))
    print("  parsed %d YAML and %d JSON files under %s" % (counts["yaml"], counts["json"], ", ".join(dirs)))


def load_rules():
    with open(RULES, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_dashboards():
    out = {}
    for path in sorted(glob.glob(os.path.join(DASHBOARDS, "*.json"))):
        with open(path, encoding="utf-8") as f:
            out[os.path.basename(path)] = json.load(f)
    return out


def check_docs(docs, origin):
    """The manifest checks on a list of parsed Kubernetes objects."""
    rules = load_rules()
    dashboards = load_dashboards()
    kinds = {}
    for i, doc in enumerate(docs):
        where = "%s[%d]" % (origin, i)
        if not isinstance(doc, dict):
            fail("%s: not a mapping" % where)
            continue
        kind = doc.get("kind")
        name = (doc.get("metadata") or {}).get("name")
        if not doc.get("apiVersion") or not kind or not name:
            fail("%s: missing apiVersion, kind or metadata.name" % where)
            continue
        where = "%s %s/%s" % (origin, kind, name)
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "PrometheusRule":
            if doc.get("spec") != rules:
                fail("%s: spec differs from %s (run bash deploy/sync.sh)" % (where, rel(RULES)))
        elif kind == "ConfigMap":
            for key, value in (doc.get("data") or {}).items():
                if key.endswith(".json") and key in dashboards:
                    try:
                        if load_json(value) != dashboards[key]:
                            fail("%s: %s differs from dashboards/%s" % (where, key, key))
                    except ValueError as e:
                        fail("%s: %s is not JSON: %s" % (where, key, e))
                elif key == "config.yaml":
                    try:
                        cfg = load_yaml_docs(value)
                    except yaml.YAMLError as e:
                        fail("%s: config.yaml does not parse: %s" % (where, e))
                        continue
                    if not cfg or not isinstance(cfg[0], dict) or "password" in cfg[0]:
                        fail("%s: config.yaml must be a mapping without an inline password" % where)
        elif kind in ("ServiceMonitor", "PodMonitor"):
            key = "endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"
            eps = (doc.get("spec") or {}).get(key) or []
            if not eps or not all(ep.get("port") for ep in eps):
                fail("%s: every endpoint needs a named port" % where)
            if not (doc.get("spec") or {}).get("selector"):
                fail("%s: no selector" % where)
            for ep in eps:
                check_job(ep.get("relabelings"), "%s endpoint %s" % (where, ep.get("port")))
        elif kind == "ScrapeConfig":
            spec = doc.get("spec") or {}
            if doc.get("apiVersion") != "monitoring.coreos.com/v1alpha1":
                fail("%s: ScrapeConfig is monitoring.coreos.com/v1alpha1" % where)
            if spec.get("metricsPath") == "/scrape":
                rl = spec.get("relabelings") or []
                if not any(r.get("targetLabel") == "__param_target" for r in rl):
                    fail("%s: /scrape needs the target as __param_target" % where)
                if not any(r.get("targetLabel") == "__address__" and r.get("replacement") for r in rl):
                    fail("%s: /scrape needs __address__ set to the exporter" % where)
            if not spec.get("staticConfigs") and not any(k.endswith("SDConfigs") for k in spec):
                fail("%s: no targets (staticConfigs or a service discovery)" % where)
            check_job(spec.get("relabelings"), where)
        elif kind == "Deployment":
            check_deployment(doc, where)
        elif kind == "StatefulSet":
            check_deployment(doc, where)
            check_sharded(doc, where)
    return kinds


def expected_job():
    """The job the shipped rules select: `job="..."` of the mixin's selector."""
    with open(MIXIN_CONFIG, encoding="utf-8") as f:
        code = "\n".join(l for l in f.read().splitlines() if not l.lstrip().startswith("//"))
        m = re.search(r"redisClientsExporterSelector:\s*'job=\"([^\"]+)\"'", code)
    if not m:
        fail("%s: no redisClientsExporterSelector job=\"...\"" % rel(MIXIN_CONFIG))
        return None
    return m.group(1)


def check_job(relabelings, where):
    """A relabeling sets job to the rules' job (the operator's default job never matches them:
    the Service's name, <namespace>/<PodMonitor>, scrapeConfig/<namespace>/<name>)."""
    want = expected_job()
    sets = [r for r in relabelings or [] if r.get("targetLabel") == "job"]
    if not sets:
        fail("%s: no relabeling sets job=%r (the job the shipped rules select)" % (where, want))
        return
    last = sets[-1]
    if last.get("sourceLabels") or last.get("action", "replace") != "replace" \
            or last.get("replacement") != want:
        fail("%s: the last relabeling of job must replace it with %r, got %r" % (where, want, last))


def check_sharded(doc, where):
    """A sharded StatefulSet: every replica takes its shard from its ordinal, of exactly
    `replicas` shards (a mismatch would leave targets unpolled or polled twice)."""
    spec = doc["spec"]
    if not spec.get("serviceName"):
        fail("%s: a StatefulSet needs serviceName (the headless Service)" % where)
    replicas = spec.get("replicas", 1)
    for c in spec["template"]["spec"].get("containers", []):
        if EXPORTER_IMAGE not in c.get("image", ""):
            continue
        env = {e.get("name"): e for e in c.get("env", [])}
        shard = (env.get("REDIS_CLIENTS_EXPORTER_SHARD") or {}).get("value")
        args = [a for a in c.get("args", []) if str(a).startswith("--shard")]
        if args:
            shard = str(args[-1]).split("=", 1)[-1]
        if shard != "ordinal/%s" % replicas:
            fail("%s: the shard must be ordinal/%s (replicas), got %r" % (where, replicas, shard))
        host = ((env.get("HOSTNAME") or {}).get("valueFrom") or {}).get("fieldRef") or {}
        if host.get("fieldPath") != "metadata.name":
            fail("%s: HOSTNAME must come from metadata.name (the ordinal is read from it)" % where)


def check_deployment(doc, where):
    spec = doc["spec"]["template"]["spec"]
    pod_sc = spec.get("securityContext") or {}
    # Service links put REDIS_CLIENTS_EXPORTER_SERVICE_HOST and the like into the environment.
    if spec.get("enableServiceLinks") is not False:
        fail("%s: enableServiceLinks must be false (service-link variables look like configuration)"
             % where)
    found = False
    containers = spec.get("containers", [])
    sidecar = any(EXPORTER_IMAGE not in c.get("image", "") for c in containers)
    for c in containers:
        if EXPORTER_IMAGE not in c.get("image", ""):
            continue
        found = True
        cw = "%s container %s" % (where, c.get("name"))
        live = ((c.get("livenessProbe") or {}).get("httpGet") or {}).get("path")
        if live != "/healthz":
            fail("%s: livenessProbe must GET /healthz (got %r)" % (cw, live))
        ready = ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path")
        if sidecar:
            # Beside Redis, the exporter's readiness is the pod's: /readyz (503 until a poll
            # succeeds) would take Redis out of its Service when it is full or the password wrong.
            if c.get("readinessProbe") is not None and ready != "/healthz":
                fail("%s: a sidecar must have no readinessProbe (or one on /healthz), got %r: an "
                     "exporter that cannot poll would take the Redis pod out of its Service"
                     % (cw, c.get("readinessProbe")))
        elif ready != "/readyz":
            fail("%s: readinessProbe must GET /readyz (got %r)" % (cw, ready))
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            fail("%s: allowPrivilegeEscalation must be false" % cw)
        if sc.get("readOnlyRootFilesystem") is not True:
            fail("%s: readOnlyRootFilesystem must be true" % cw)
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            fail("%s: capabilities must drop ALL" % cw)
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            fail("%s: runAsNonRoot must be set" % cw)
        ports = {p.get("containerPort") for p in c.get("ports", [])}
        if 9816 not in ports:
            fail("%s: containerPort 9816 missing" % cw)
        for env in c.get("env", []):
            if env.get("name") == "REDIS_CLIENTS_EXPORTER_PASSWORD" and "value" in env:
                fail("%s: password given as a plain env value; use a Secret" % cw)
    if not found:
        fail("%s: no container runs the %s image" % (where, EXPORTER_IMAGE))


def load_manifest_files(files):
    out = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            out.append((path, load_yaml_docs(f.read())))
    return out


def cmd_manifests(files):
    total = {}
    for path, docs in load_manifest_files(files):
        for k, v in check_docs(docs, rel(path)).items():
            total[k] = total.get(k, 0) + v
    print("  checked %s in %d files" % (", ".join("%d %s" % (v, k) for k, v in sorted(total.items())),
                                        len(files)))


def helm_render(chart, values_file, release="demo", namespace="monitoring"):
    """Returns (lint messages, rendered text) using the helm binary or helm-python-sdk."""
    helm = shutil.which("helm")
    if helm:
        lint = subprocess.run([helm, "lint", "--strict", chart, "-f", values_file],
                              capture_output=True, text=True)
        if lint.returncode != 0:
            fail("helm lint --strict %s -f %s:\n%s%s" % (rel(chart), rel(values_file), lint.stdout, lint.stderr))
        tpl = subprocess.run([helm, "template", release, chart, "-n", namespace, "-f", values_file],
                             capture_output=True, text=True)
        if tpl.returncode != 0:
            fail("helm template %s -f %s:\n%s" % (rel(chart), rel(values_file), tpl.stderr))
        return "helm " + subprocess.run([helm, "version", "--short"], capture_output=True,
                                        text=True).stdout.strip(), tpl.stdout
    import helm_python  # the Helm v4 Go SDK through ctypes, from PyPI: helm-python-sdk

    with open(values_file, encoding="utf-8") as f:
        values = yaml.safe_load(f) or {}
    report = helm_python.lint(chart, values=values, strict=True)
    # severities as in Helm's lint support package: 0 unknown, 1 info, 2 warning, 3 error
    for m in report.get("messages", []):
        if m.get("severity", 0) >= 2:
            fail("helm lint --strict %s -f %s: %s: %s" % (rel(chart), rel(values_file), m.get("path"), m.get("error")))
    for e in report.get("errors") or []:
        fail("helm lint %s -f %s: %s" % (rel(chart), rel(values_file), e))
    try:
        with helm_python.Chart.load(chart) as c:
            c.validate_schema(values)
            rendered = c.render(values, name=release, namespace=namespace)
    except helm_python.HelmError as e:
        fail("helm template %s -f %s: %s" % (rel(chart), rel(values_file), e))
        rendered = {}
    text = ""
    for name in sorted(rendered):
        if name.endswith("NOTES.txt") or not rendered[name].strip():
            continue
        text += "---\n# Source: %s\n%s\n" % (name, rendered[name])
    return ("helm-python-sdk %s (Helm SDK %s)"
            % (helm_python.helm_c_version(), helm_python.helm_sdk_version())), text


def cmd_helm(chart, out, values_files):
    chart = os.path.abspath(chart)
    os.makedirs(out, exist_ok=True)
    for vf in values_files:
        tool, text = helm_render(chart, os.path.abspath(vf))
        base = os.path.splitext(os.path.basename(vf))[0]
        dest = os.path.join(out, base + ".yaml")
        with open(dest, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            docs = load_yaml_docs(text)
        except yaml.YAMLError as e:
            fail("helm render with %s is not valid YAML: %s" % (rel(vf), e))
            continue
        kinds = check_docs(docs, "chart[%s]" % base)
        print("  %s: lint --strict and render with %s: %s"
              % (tool, rel(vf), ", ".join("%d %s" % (v, k) for k, v in sorted(kinds.items()))))
        if base.startswith("full"):
            want = {"Deployment", "Service", "ConfigMap", "ServiceMonitor", "PrometheusRule"}
            missing = want - set(kinds)
            if missing:
                fail("chart[%s]: expected kinds missing: %s" % (base, sorted(missing)))
            dash_cms = sum(1 for d in docs if d.get("kind") == "ConfigMap"
                           and ((d.get("metadata") or {}).get("labels") or {}).get("grafana_dashboard") == "1")
            if dash_cms != len(load_dashboards()):
                fail("chart[%s]: %d dashboard ConfigMaps labelled grafana_dashboard=1, want %d"
                     % (base, dash_cms, len(load_dashboards())))


def cmd_compose(path):
    compose_dir = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as f:
        doc = load_yaml_docs(f.read())[0]
    mounts = 0
    for name, svc in (doc.get("services") or {}).items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith((".", "/")):
                mounts += 1
                if not os.path.exists(os.path.normpath(os.path.join(compose_dir, src))):
                    fail("%s: service %s mounts %s, which does not exist" % (rel(path), name, src))
    for name, sec in (doc.get("secrets") or {}).items():
        if not os.path.exists(os.path.join(compose_dir, sec.get("file", ""))):
            fail("%s: secret %s file missing" % (rel(path), name))
    wanted = {"redis", "exporter", "prometheus", "alertmanager", "grafana"}
    missing = wanted - set(doc.get("services") or {})
    if missing:
        fail("%s: services missing: %s" % (rel(path), sorted(missing)))
    # Dashboards choose the data source through their `datasource` variable: none may name the
    # uid the demo provisions.
    uids = []
    for ds_file in glob.glob(os.path.join(compose_dir, "grafana", "provisioning", "datasources", "*.y*ml")):
        with open(ds_file, encoding="utf-8") as f:
            for ds in (load_yaml_docs(f.read())[0].get("datasources") or []):
                uids.append(ds.get("uid"))
    if not uids or not all(uids):
        fail("grafana datasources must be provisioned with an explicit uid")
    for path_ in sorted(glob.glob(os.path.join(DASHBOARDS, "*.json"))):
        with open(path_, encoding="utf-8") as f:
            text = f.read()
        for uid in uids:
            if uid and uid in text:
                fail("%s hard-codes the data source uid %s" % (rel(path_), uid))
        if "${datasource}" not in text:
            fail("%s does not use the ${datasource} variable" % rel(path_))
    print("  %s: %d services, %d host mounts exist, dashboards use ${datasource} (uids %s not hard-coded)"
          % (rel(path), len(doc.get("services") or {}), mounts, ", ".join(u for u in uids if u)))


def iter_docs(files):
    for path in files:
        with open(path, encoding="utf-8") as f:
            for doc in load_yaml_docs(f.read()):
                if isinstance(doc, dict):
                    yield path, doc


def cmd_extract_rules(out, files):
    os.makedirs(out, exist_ok=True)
    n = 0
    for path, doc in iter_docs(files):
        if doc.get("kind") == "PrometheusRule":
            n += 1
            dest = os.path.join(out, "%d-%s.rules.yml" % (n, doc["metadata"]["name"]))
            with open(dest, "w", encoding="utf-8") as f:
                yaml.safe_dump(doc["spec"], f, sort_keys=False)
            print(dest)


def cmd_extract_configs(out, files):
    os.makedirs(out, exist_ok=True)
    n = 0
    for path, doc in iter_docs(files):
        if doc.get("kind") == "ConfigMap" and "config.yaml" in (doc.get("data") or {}):
            n += 1
            dest = os.path.join(out, "%d-%s.yaml" % (n, doc["metadata"]["name"]))
            with open(dest, "w", encoding="utf-8") as f:
                f.write(doc["data"]["config.yaml"])
            print(dest)


ACL_USER_LINE = re.compile(r"(?:ACL SETUSER|--user|^\s*user)\s+(exporter(?:-relief)?)\s+(.*)$")


def acl_rules(words):
    """The rules of an ACL line without its password (`>...`, `#<sha256>`) and quotes."""
    out = []
    for w in words:
        w = w.strip("\"'`")
        if w and not w.startswith((">", "#", "<")):
            out.append(w)
    return out


def read_acl_file(name):
    path = os.path.join(ACL_DIR, name)
    users = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            words = line.split()
            # Redis refuses to start on any other line (a comment included).
            if words[0] != "user" or len(words) < 3:
                fail("%s:%d: not a `user NAME rules` line (Redis would not start): %s"
                     % (rel(path), n, line.strip()))
                continue
            users[words[1]] = words[2:]
    return users


def cmd_acl():
    new = read_acl_file("users.acl")
    old = read_acl_file("users-redis-6.2-7.0.acl")
    sentinel = read_acl_file("sentinel.acl")
    if set(new) != {"exporter", "exporter-relief"} or set(old) != set(new):
        fail("deploy/acl: users.acl and users-redis-6.2-7.0.acl must define exporter and exporter-relief")
        return
    only72 = {"+client|no-touch", "+client|setinfo"}
    relief_extra = ["+client|kill", "+config|set"]
    for user in new:
        want_old = [r for r in new[user] if r not in only72]
        if old[user] != want_old:
            fail("deploy/acl/users-redis-6.2-7.0.acl: %s must be users.acl's line without %s:\n  %s\n  got %s"
                 % (user, sorted(only72), " ".join(want_old), " ".join(old[user])))
    for users, name in ((new, "users.acl"), (old, "users-redis-6.2-7.0.acl")):
        base = [r for r in acl_rules(users["exporter"])]
        relief = [r for r in acl_rules(users["exporter-relief"])]
        if base[:1] != ["reset"] or relief[:1] != ["reset"]:
            fail("deploy/acl/%s: each user starts with reset (no leftover rights)" % name)
        if "on" not in base or "off" not in relief:
            fail("deploy/acl/%s: exporter is on, exporter-relief off until relief is set up" % name)
        if [r for r in relief if r != "off"] != [r for r in base if r != "on"] + relief_extra:
            fail("deploy/acl/%s: exporter-relief must be exporter's rules plus %s" % (name, relief_extra))
        for r in base + relief:
            if r in ("nopass", "allcommands", "allkeys", "allchannels") or r.startswith(("+@", "~", "&", "%")):
                fail("deploy/acl/%s: %r is not least privilege" % (name, r))
    if set(sentinel) != {"exporter"}:
        fail("deploy/acl/sentinel.acl: one user, exporter")
    # Every copy of a user's rules elsewhere (README, docs, the Kubernetes and compose examples,
    # chart comments) is users.acl's.
    canonical = {u: acl_rules(r) for u, r in new.items()}
    copies = 0
    files = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "deploy")):
        dirnames[:] = [d for d in dirnames if d != "acl"]
        files += [os.path.join(dirpath, f) for f in sorted(filenames)]
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        # A folded command line (compose) is one line once its continuation lines are joined.
        text = re.sub(r"\n\s+(\+)", r" \1", text)
        for n, line in enumerate(text.splitlines(), 1):
            m = ACL_USER_LINE.search(line)
            if not m:
                continue
            # A password read by the shell (compose: ">$$(cat /run/secrets/...)") is one word.
            rules = acl_rules(re.sub(r'"?>\$+\([^)]*\)"?', "", m.group(2)).split())
            if not any(r.startswith("+") for r in rules):
                continue  # prose such as `ACL SETUSER exporter-relief on`
            copies += 1
            if rules != canonical[m.group(1)]:
                fail("%s:%d: %s's ACL rules differ from deploy/acl/users.acl:\n  want %s\n  got  %s"
                     % (rel(path), n, m.group(1), " ".join(canonical[m.group(1)]), " ".join(rules)))
    print("  deploy/acl: users.acl, users-redis-6.2-7.0.acl (= users.acl without %s), sentinel.acl; "
          "%d copies elsewhere match users.acl" % (", ".join(sorted(only72)), copies))


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "parse":
        cmd_parse(args)
    elif cmd == "manifests":
        cmd_manifests(args)
    elif cmd == "helm":
        cmd_helm(args[0], args[1], args[2:])
    elif cmd == "compose":
        cmd_compose(args[0])
    elif cmd == "extract-rules":
        cmd_extract_rules(args[0], args[1:])
    elif cmd == "extract-configs":
        cmd_extract_configs(args[0], args[1:])
    elif cmd == "acl":
        cmd_acl()
    else:
        print("unknown command %s\n%s" % (cmd, __doc__), file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
