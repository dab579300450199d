#!/usr/bin/env bash
#
# scripts/validate-k8s.sh [OVERLAY_DIR...] — check the Kubernetes manifests
# without a cluster.
#
# For every overlay under deploy/k8s/overlays (or the ones named):
#   1. render it with `kubectl kustomize` (kustomize is built into kubectl);
#   2. validate every rendered object against the Kubernetes OpenAPI schemas,
#      strictly (unknown fields are errors), with the PyPI package
#      kubernetes-validate, which ships the schemas: no network at check
#      time. The schemas are those of K8S_VERSION (default 1.30, the oldest
#      Kubernetes the manifests claim to support). Custom resources are not in
#      those schemas: CloudNativePG's Cluster gets a structural check here,
#      any other custom kind fails until this script learns it;
#   3. cross-references no schema can see: Service, PDB and NetworkPolicy
#      selectors match pods; Service target ports, probe ports and Ingress
#      backends exist; every ConfigMap/Secret reference resolves in the
#      render (or is a Secret the overlay lists in external-secrets.txt as
#      created out of band); in-cluster URLs in the configuration name a
#      Service and one of its ports; $(VAR) references name an earlier
#      variable; every workload has probes, resources and the restricted
#      security context; every role has the settings it needs and listens
#      on its container ports; the NetworkPolicies let each role (and each
#      Job) out to, and into, every Service its configuration calls, and open
#      only ports the pods listen on; the database lists agree (compose, dev init
#      script, CloudNativePG bootstrap); NATS' JetStream store fits its
#      volume and its cluster routes name exactly its pods.
# kubernetes-validate is installed from PyPI into .stack/venv on first use
# (the virtualenv scripts/validate-compose.sh uses).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_PREFIX=k8s
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

K8S_DIR="$ROOT/deploy/k8s"
K8S_VERSION="${K8S_VERSION:-1.30.0}"
KUBERNETES_VALIDATE="kubernetes-validate==1.37.0"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
VENV="$STACK_DIR/venv"
PY="$VENV/bin/python"

# kubectl renders the overlays with its built-in kustomize, which must be v5
# (kubectl 1.27 or newer): the overlays use `labels:` and `replicas:`.
need_kubectl() {
    log "$1 It renders the overlays (kustomize is built in); install kubectl 1.27 or newer, then run this again:"
    log "  - the machine image's kubectl (package \`kubectl\`, as on the project's machines), or"
    log "  - the Kubernetes apt repository: https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/ (package kubectl), or"
    log "  - Debian's \`kubernetes-client\` where it is new enough (Debian 12 ships 1.20, too old: its kustomize is v2)."
    exit 1
}
have kubectl || need_kubectl "kubectl is missing."
kustomize_major=$(kubectl version --client -o json 2>/dev/null |
    sed -n 's/.*"kustomizeVersion": *"v\([0-9]*\).*/\1/p')
[ "${kustomize_major:-0}" -ge 5 ] ||
    need_kubectl "kubectl's built-in kustomize is ${kustomize_major:+v$kustomize_major, }not v5."

if ! "$PY" -c 'import kubernetes_validate, yaml' 2>/dev/null ||
    [ "$("$PY" -c 'import kubernetes_validate; print(kubernetes_validate.__version__)')" != "${KUBERNETES_VALIDATE#*==}" ]; then
    have python3 || apt_install python3 python3-venv
    if [ ! -x "$VENV/bin/pip" ]; then
        rm -rf "$VENV"
        log "creating a Python virtualenv in $VENV"
        python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    fi
    log "installing $KUBERNETES_VALIDATE into $VENV (PyPI)"
    "$PY" -m pip install --quiet --disable-pip-version-check "$KUBERNETES_VALIDATE" </dev/null ||
        die "pip install $KUBERNETES_VALIDATE failed"
fi

if [ $# -gt 0 ]; then
    overlays=("$@")
else
    overlays=("$K8S_DIR"/overlays/*/)
fi
[ ${#overlays[@]} -gt 0 ] && [ -d "${overlays[0]}" ] || die "no overlays under $K8S_DIR/overlays"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

args=()
for dir in "${overlays[@]}"; do
    dir="${dir%/}"
    name=$(basename "$dir")
    [ -f "$dir/kustomization.yaml" ] || die "$dir has no kustomization.yaml"
    log "kubectl kustomize ${dir#"$ROOT"/}"
    kubectl kustomize "$dir" >"$work/$name.yaml" || die "kustomize could not render $dir"
    args+=("$name" "$work/$name.yaml" "$dir")
done

log "schemas: kubernetes-validate $("$PY" -c 'import kubernetes_validate; print(kubernetes_validate.__version__)'), Kubernetes $K8S_VERSION (strict)"
"$PY" - "$K8S_VERSION" "$ROOT" "${args[@]}" <<'PY'
import base64
import os
import re
import sys

import kubernetes_validate
import yaml

k8s_version, root = sys.argv[1], sys.argv[2]
triples = [sys.argv[i:i + 3] for i in range(3, len(sys.argv), 3)]

# The roles: the ports their containers must expose (by name), the settings
# each must receive, which listen address belongs to which port, and the
# settings naming what each role calls (the NetworkPolicies must allow those).
ROLES = {
    "gateway": {
        "ports": {"http", "metrics"},
        "env": {"GATEWAY_HTTP_ADDR", "GATEWAY_DATABASE_URL", "CATALOG_URL", "SEATING_URL",
                "PAYMENTS_URL", "ANALYTICS_URL", "PUBLIC_BASE_URL", "NATS_URL",
                "TRUST_FORWARDED_FOR"},
        "listen": {"GATEWAY_HTTP_ADDR": "http"},
        "calls": {"CATALOG_URL", "SEATING_URL", "PAYMENTS_URL", "ANALYTICS_URL",
                  "GATEWAY_DATABASE_URL", "NATS_URL"},
    },
    "catalog": {
        "ports": {"grpc", "metrics"},
        "env": {"CATALOG_GRPC_ADDR", "CATALOG_DATABASE_URL"},
        "listen": {"CATALOG_GRPC_ADDR": "grpc"},
        "calls": {"CATALOG_DATABASE_URL"},
    },
    "seating": {
        "ports": {"grpc", "metrics"},
        "env": {"SEATING_GRPC_ADDR", "SEATING_DATABASE_URL", "SEATING_CATALOG_URL", "NATS_URL"},
        "listen": {"SEATING_GRPC_ADDR": "grpc"},
        "calls": {"SEATING_CATALOG_URL", "SEATING_DATABASE_URL", "NATS_URL"},
    },
    "payments": {
        "ports": {"grpc", "http", "metrics"},
        "env": {"PAYMENTS_GRPC_ADDR", "PAYMENTS_HTTP_ADDR", "PAYMENTS_DATABASE_URL",
                "PAYMENTS_CATALOG_URL", "PAYMENTS_SEATING_URL", "STRIPE_SECRET_KEY",
                "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE", "PUBLIC_BASE_URL",
                "PAYMENTS_PUBLIC_URL", "NATS_URL"},
        "listen": {"PAYMENTS_GRPC_ADDR": "grpc", "PAYMENTS_HTTP_ADDR": "http"},
        "calls": {"PAYMENTS_CATALOG_URL", "PAYMENTS_SEATING_URL", "PAYMENTS_DATABASE_URL", "NATS_URL"},
    },
    "notifier": {
        "ports": {"metrics"},
        "env": {"NOTIFIER_DATABASE_URL", "SMTP_URL", "MAIL_FROM", "NATS_URL"},
        "listen": {},
        "calls": {"NOTIFIER_DATABASE_URL", "NATS_URL", "SMTP_URL"},
    },
    "analytics": {
        "ports": {"grpc", "metrics"},
        "env": {"ANALYTICS_GRPC_ADDR", "ANALYTICS_DATABASE_URL", "NATS_URL"},
        "listen": {"ANALYTICS_GRPC_ADDR": "grpc"},
        "calls": {"ANALYTICS_DATABASE_URL", "NATS_URL"},
    },
}
COMMON_ENV = {"METRICS_ADDR", "LOG_FORMAT", "RUST_LOG", "OTEL_SERVICE_NAME"}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def databases_in_sql(text):
    return set(re.findall(r"CREATE DATABASE\s+([A-Za-z0-9_]+)", text, re.I))


compose_dbs = databases_in_sql(open(os.path.join(root, "deploy/compose/init-databases.sql")).read())
failed = False

for overlay, rendered, overlay_dir in triples:
    errors = []

    def err(msg):
        if msg not in errors:
            errors.append(msg)

    objs = [o for o in yaml.safe_load_all(open(rendered)) if o]

    def ident(o):
        return f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}"

    # ---- 1. schemas --------------------------------------------------------
    validated, custom = 0, []
    for o in objs:
        group = o.get("apiVersion", "").split("/")[0] if "/" in o.get("apiVersion", "") else ""
        if group == "postgresql.cnpg.io":
            custom.append(o)
            continue
        try:
            kubernetes_validate.validate(o, k8s_version, strict=True)
            validated += 1
        except kubernetes_validate.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(top)"
            err(f"{ident(o)}: schema: at {where}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            err(f"{ident(o)}: no Kubernetes {k8s_version} schema for {o.get('apiVersion')} {o.get('kind')} "
                "(a custom resource? teach scripts/validate-k8s.sh to check it)")

    # CloudNativePG Cluster: the fields we rely on, with their types.
    cnpg_clusters = []
    for o in custom:
        if o["apiVersion"] != "postgresql.cnpg.io/v1" or o["kind"] != "Cluster":
            err(f"{ident(o)}: {o['apiVersion']} {o['kind']} has no check here")
            continue
        spec = o.get("spec") or {}
        known = {"instances", "imageName", "primaryUpdateStrategy", "inheritedMetadata", "bootstrap",
                 "postgresql", "storage", "resources", "affinity", "backup", "monitoring",
                 "walStorage", "description", "enableSuperuserAccess", "superuserSecret",
                 "minSyncReplicas", "maxSyncReplicas", "topologySpreadConstraints"}
        for k in spec:
            if k not in known:
                err(f"{ident(o)}: spec.{k} is not a field this check knows (typo?)")
        if not isinstance(spec.get("instances"), int) or spec["instances"] < 1:
            err(f"{ident(o)}: spec.instances must be a positive integer")
        if not str((spec.get("storage") or {}).get("size", "")):
            err(f"{ident(o)}: spec.storage.size is required")
        initdb = ((spec.get("bootstrap") or {}).get("initdb")) or {}
        if not initdb.get("owner") or not initdb.get("database"):
            err(f"{ident(o)}: spec.bootstrap.initdb needs database and owner")
        sql = "\n".join(initdb.get("postInitSQL") or [])
        if databases_in_sql(sql) != compose_dbs:
            err(f"{ident(o)}: bootstrap creates {sorted(databases_in_sql(sql))}, "
                f"deploy/compose/init-databases.sql {sorted(compose_dbs)}")
        owned = set(re.findall(r"ALTER DATABASE\s+(\w+)\s+OWNER TO\s+(\w+)",
                               "\n".join(initdb.get("postInitApplicationSQL") or []), re.I))
        if owned != {(db, initdb.get("owner")) for db in compose_dbs}:
            err(f"{ident(o)}: postInitApplicationSQL must hand every service database to "
                f"{initdb.get('owner')} (has {sorted(owned)})")
        cnpg_clusters.append(o)
        print(f"k8s: {overlay}: {ident(o)}: custom resource (postgresql.cnpg.io/v1), "
              "structural check only — install the CloudNativePG CRDs before applying")

    # ---- 2. cross-references ----------------------------------------------
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    configmaps = by_kind.get("ConfigMap", {})
    secrets = set(by_kind.get("Secret", {}))
    services = dict(by_kind.get("Service", {}))
    external = set()
    ext_file = os.path.join(overlay_dir, "external-secrets.txt")
    if os.path.exists(ext_file):
        for line in open(ext_file):
            line = line.split("#")[0].strip()
            if line:
                external.add(line)
        if secrets:
            err(f"secrets are created out of band here (external-secrets.txt), yet the render holds "
                f"{sorted(secrets)}")

    # Pods: workload templates, plus the instances and Services CloudNativePG makes.
    pods = []  # (owner id, labels, podspec)
    for o in objs:
        if o["kind"] in WORKLOADS:
            tpl = o["spec"]["template"]
            pods.append((ident(o), (tpl.get("metadata") or {}).get("labels") or {}, tpl["spec"]))
    for c in cnpg_clusters:
        name = c["metadata"]["name"]
        labels = dict(((c["spec"].get("inheritedMetadata") or {}).get("labels")) or {})
        labels["cnpg.io/cluster"] = name
        # An instance listens on 5432 (PostgreSQL), 8000 (status, for the
        # operator) and 9187 (metrics).
        pods.append((ident(c), labels, {"containers": [{"name": "postgres", "ports": [
            {"name": "postgresql", "containerPort": 5432}, {"name": "status", "containerPort": 8000},
            {"name": "metrics", "containerPort": 9187}]}]}))
        secrets |= {f"{name}-app", f"{name}-superuser"}
        for suffix in ("rw", "ro", "r"):
            services[f"{name}-{suffix}"] = {"kind": "Service", "metadata": {"name": f"{name}-{suffix}"},
                                           "spec": {"selector": {"cnpg.io/cluster": name},
                                                    "ports": [{"name": "postgres", "port": 5432,
                                                               "targetPort": 5432}]}}

    def selector_matches(sel, labels):
        for k, v in (sel.get("matchLabels") or {}).items():
            if labels.get(k) != v:
                return False
        for e in sel.get("matchExpressions") or []:
            has, val = e["key"] in labels, labels.get(e["key"])
            op = e["operator"]
            if op == "In" and val not in e.get("values", []):
                return False
            if op == "NotIn" and has and val in e.get("values", []):
                return False
            if op == "Exists" and not has:
                return False
            if op == "DoesNotExist" and has:
                return False
        return True

    def pods_for(sel, plain=False):
        if plain:
            sel = {"matchLabels": sel}
        return [p for p in pods if selector_matches(sel, p[1])]

    def container_ports(podspec):
        out = {}
        for c in podspec.get("containers", []) + podspec.get("initContainers", []):
            for p in c.get("ports") or []:
                out[p.get("name") or str(p["containerPort"])] = p["containerPort"]
                out[str(p["containerPort"])] = p["containerPort"]
        return out

    # Services: selector → pods, targetPort → a container port on each.
    for name, s in services.items():
        sel = (s.get("spec") or {}).get("selector")
        if not sel:
            continue
        matched = pods_for(sel, plain=True)
        if not matched:
            err(f"Service/{name}: selector {sel} matches no pod in the render")
        for port in s["spec"].get("ports", []):
            tp = str(port.get("targetPort", port["port"]))
            for owner, _, spec in matched:
                if tp not in container_ports(spec):
                    err(f"Service/{name}: targetPort {tp} is not a container port of {owner}")

    def service_port(svc, port):
        for p in (services[svc].get("spec") or {}).get("ports", []):
            if str(port) in (p.get("name"), str(p["port"])):
                return True
        return False

    # Ingress: backends and TLS secrets.
    for name, ing in by_kind.get("Ingress", {}).items():
        for rule in ing["spec"].get("rules", []):
            for path in (rule.get("http") or {}).get("paths", []):
                b = path["backend"].get("service") or {}
                svc, port = b.get("name"), b.get("port", {}).get("name") or b.get("port", {}).get("number")
                if svc not in services:
                    err(f"Ingress/{name}: {path['path']} → Service {svc}, which is not in the render")
                elif not service_port(svc, port):
                    err(f"Ingress/{name}: {path['path']} → {svc}:{port}, which that Service does not have")
        for tls in ing["spec"].get("tls") or []:
            if tls.get("secretName") and tls["secretName"] not in secrets | external:
                err(f"Ingress/{name}: TLS Secret {tls['secretName']} is neither rendered nor listed in external-secrets.txt")

    # HPA → Deployment; a Deployment under an HPA leaves replicas to it.
    deployments = by_kind.get("Deployment", {})
    for name, h in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = h["spec"]["scaleTargetRef"]
        target = by_kind.get(ref["kind"], {}).get(ref["name"])
        if target is None:
            err(f"HorizontalPodAutoscaler/{name}: scales {ref['kind']}/{ref['name']}, which is not in the render")
        elif "replicas" in target["spec"]:
            err(f"{ref['kind']}/{ref['name']}: sets spec.replicas but HorizontalPodAutoscaler/{name} owns the count")
        if h["spec"].get("minReplicas", 1) > h["spec"]["maxReplicas"]:
            err(f"HorizontalPodAutoscaler/{name}: minReplicas > maxReplicas")

    for name, pdb in by_kind.get("PodDisruptionBudget", {}).items():
        if not pods_for(pdb["spec"]["selector"]):
            err(f"PodDisruptionBudget/{name}: selector matches no pod")

    # NetworkPolicies: a default deny exists; every selector names real pods.
    policies = by_kind.get("NetworkPolicy", {})
    if not any(p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies.values()):
        err("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)")
    def check_ports(policy, rule, targets, direction):
        # The ports a rule opens must be ports the pods on the far end listen on.
        for port in rule.get("ports") or []:
            if "port" not in port:
                continue
            for owner, _, spec in targets:
                if str(port["port"]) not in container_ports(spec):
                    err(f"NetworkPolicy/{policy}: {direction} port {port['port']} is not a port of {owner}")

    for name, p in policies.items():
        sel = p["spec"].get("podSelector")
        if sel and not pods_for(sel):
            err(f"NetworkPolicy/{name}: podSelector matches no pod")
        for rule in p["spec"].get("ingress") or []:
            if sel:
                check_ports(name, rule, pods_for(sel), "ingress")
        for rule in (p["spec"].get("ingress") or []) + (p["spec"].get("egress") or []):
            for peer in (rule.get("from") or []) + (rule.get("to") or []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    peers = pods_for(peer["podSelector"])
                    if not peers:
                        err(f"NetworkPolicy/{name}: peer {peer['podSelector']} matches no pod in the namespace")
                    if rule in (p["spec"].get("egress") or []):
                        check_ports(name, rule, peers, "egress")
    for owner, labels, _ in pods:
        if not any(p["spec"].get("podSelector") and selector_matches(p["spec"]["podSelector"], labels)
                   for p in policies.values()):
            err(f"{owner}: no NetworkPolicy but the default deny selects its pods (it can reach nothing)")

    # What the NetworkPolicies let through between two pods of the namespace.
    def port_matches(rule_port, number, dst_spec):
        names = {n for n, v in container_ports(dst_spec).items() if v == number}
        return str(rule_port) == str(number) or str(rule_port) in names

    def policy_allows(direction, subject, peer, number, peer_spec):
        # subject: the pod the policy selects; peer: the pod on the other end.
        types = {"egress": "Egress", "ingress": "Ingress"}[direction]
        applying = [p for p in policies.values()
                    if types in p["spec"].get("policyTypes", ["Ingress"])
                    and selector_matches(p["spec"].get("podSelector") or {}, subject[1])]
        if not applying:
            return True
        for p in applying:
            for rule in p["spec"].get(direction) or []:
                peers = rule.get("to" if direction == "egress" else "from")
                ok_peer = peers is None or any(
                    "podSelector" in x and "namespaceSelector" not in x
                    and selector_matches(x["podSelector"], peer[1]) for x in peers)
                ports = rule.get("ports")
                ok_port = not ports or any(port_matches(x.get("port"), number, peer_spec if direction == "egress"
                                                        else subject[2]) for x in ports if "port" in x)
                if ok_peer and ok_port:
                    return True
        return False

    def check_call(src, var, url):
        m = url_re.match(url)
        if not m or m.group(1) not in services:
            return
        host, port = m.group(1), int(m.group(2))
        svc = services[host]
        sp = next((x for x in svc["spec"].get("ports", []) if x["port"] == port), None)
        if sp is None:
            return  # reported by the URL check
        for dst in pods_for(svc["spec"].get("selector") or {"matchLabels": {"none": "none"}}, plain=True):
            tp = sp.get("targetPort", port)
            number = container_ports(dst[2]).get(str(tp))
            if number is None:
                continue
            if not policy_allows("egress", src, dst, number, dst[2]):
                err(f"{src[0]}: calls {var} ({host}:{port}) but no NetworkPolicy lets it out to {dst[0]} port {number}")
            if not policy_allows("ingress", dst, src, number, dst[2]):
                err(f"{src[0]}: calls {var} ({host}:{port}) but no NetworkPolicy lets it into {dst[0]} port {number}")

    # Workloads: references, probes, resources, security, settings.
    def resolve_ref(owner, kind, name, key=None, optional=False):
        if optional:
            return
        if kind == "ConfigMap":
            if name not in configmaps:
                err(f"{owner}: ConfigMap {name} is not in the render")
            elif key is not None and key not in (configmaps[name].get("data") or {}):
                err(f"{owner}: ConfigMap {name} has no key {key}")
        else:
            if name not in secrets | external:
                err(f"{owner}: Secret {name} is neither rendered nor listed in external-secrets.txt")
            elif key is not None and name in by_kind.get("Secret", {}):
                s = by_kind["Secret"][name]
                if key not in (s.get("data") or {}) and key not in (s.get("stringData") or {}):
                    err(f"{owner}: Secret {name} has no key {key}")

    url_re = re.compile(r"^[a-z]+://(?:[^@/]*@)?([a-z0-9-]+):(\d+)(?:/(\w+))?")
    db_names_used = set()
    for o in objs:
        if o["kind"] not in WORKLOADS:
            continue
        owner = ident(o)
        spec = o["spec"]["template"]["spec"]
        psc = spec.get("securityContext") or {}
        for vol in spec.get("volumes") or []:
            if "configMap" in vol:
                resolve_ref(owner, "ConfigMap", vol["configMap"]["name"], optional=vol["configMap"].get("optional"))
            if "secret" in vol:
                resolve_ref(owner, "Secret", vol["secret"]["secretName"], optional=vol["secret"].get("optional"))
        role = None
        for c in spec.get("containers", []):
            if c.get("args") and c["args"][0] in ROLES and c.get("name") == "bookmyseat":
                role = c["args"][0]
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            cid = f"{owner} container {c['name']}"
            is_init = c in spec.get("initContainers", [])
            env_names = set()
            for ef in c.get("envFrom") or []:
                if "configMapRef" in ef:
                    ref = ef["configMapRef"]
                    resolve_ref(cid, "ConfigMap", ref["name"], optional=ref.get("optional"))
                    env_names |= set((configmaps.get(ref["name"], {}).get("data") or {}))
                if "secretRef" in ef:
                    resolve_ref(cid, "Secret", ef["secretRef"]["name"], optional=ef["secretRef"].get("optional"))
            values, source = {}, {}
            for ef in c.get("envFrom") or []:
                if "configMapRef" in ef:
                    data = configmaps.get(ef["configMapRef"]["name"], {}).get("data") or {}
                    values.update(data)
                    source.update({k: f"ConfigMap/{ef['configMapRef']['name']}" for k in data})
            for e in c.get("env") or []:
                vf = e.get("valueFrom") or {}
                if "configMapKeyRef" in vf:
                    r = vf["configMapKeyRef"]
                    resolve_ref(cid, "ConfigMap", r["name"], r["key"], r.get("optional"))
                if "secretKeyRef" in vf:
                    r = vf["secretKeyRef"]
                    resolve_ref(cid, "Secret", r["name"], r["key"], r.get("optional"))
                    # A rendered (dev) Secret's value takes part in the URL checks.
                    data = (by_kind.get("Secret", {}).get(r["name"]) or {}).get("data") or {}
                    if r["key"] in data:
                        values[e["name"]] = base64.b64decode(data[r["key"]]).decode("utf-8", "replace")
                        source[e["name"]] = f"Secret/{r['name']}"
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value", "")):
                    if ref not in env_names:
                        err(f"{cid}: {e['name']} uses $({ref}), which is not defined before it")
                env_names.add(e["name"])
                if "value" in e:
                    values[e["name"]] = e["value"]
                    source[e["name"]] = cid
            # In-cluster URLs name a Service and one of its ports.
            for var, val in values.items():
                m = url_re.match(val)
                if not m or "." in m.group(1):
                    continue
                host, port, db = m.groups()
                if host in services:
                    if not service_port(host, port):
                        err(f"{source[var]}: {var} points at {host}:{port}; Service {host} has no port {port}")
                elif host not in ("localhost",):
                    err(f"{source[var]}: {var} points at {host}:{port}, which is no Service in the render")
                if var.endswith("_DATABASE_URL") and db:
                    db_names_used.add(db)
            # The jobs reach every database they are given.
            if (c.get("args") or [""])[0] in ("migrate", "seed"):
                src = (owner, (o["spec"]["template"].get("metadata") or {}).get("labels") or {}, spec)
                for var in sorted(v for v in values if v.endswith("_DATABASE_URL")):
                    check_call(src, var, values[var])
            # Security context (container or pod level).
            sc = c.get("securityContext") or {}
            if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot"))):
                err(f"{cid}: runAsNonRoot is not true")
            if sc.get("readOnlyRootFilesystem") is not True:
                err(f"{cid}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                err(f"{cid}: allowPrivilegeEscalation is not false")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                err(f"{cid}: capabilities do not drop ALL")
            if ((sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")) != "RuntimeDefault":
                err(f"{cid}: seccompProfile is not RuntimeDefault")
            # Resources.
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(part) or {}):
                        err(f"{cid}: no {part}.{r}")
            # Probes on long-running containers.
            if o["kind"] != "Job" and not is_init:
                ports = container_ports({"containers": [c]})
                wanted = ("livenessProbe", "readinessProbe") + (("startupProbe",) if role else ())
                for probe in wanted:
                    p = c.get(probe)
                    if not p:
                        err(f"{cid}: no {probe}")
                        continue
                    for how in ("httpGet", "tcpSocket", "grpc"):
                        if how in p and str(p[how]["port"]) not in ports:
                            err(f"{cid}: {probe} uses port {p[how]['port']}, which the container does not expose")
            # A role gets the ports and settings it needs.
            if role and c["name"] == "bookmyseat" and not is_init:
                need = ROLES[role]
                have = {p.get("name") for p in c.get("ports") or []}
                for p in sorted(need["ports"] - have):
                    err(f"{cid}: role {role} needs a container port named {p}")
                for v in sorted((need["env"] | COMMON_ENV) - env_names):
                    err(f"{cid}: role {role} is not given {v}")
                src = (owner, (o["spec"]["template"].get("metadata") or {}).get("labels") or {}, spec)
                for var in sorted(need["calls"]):
                    check_call(src, var, values.get(var, ""))
                for var, pname in need["listen"].items():
                    addr = values.get(var, "")
                    port = addr.rsplit(":", 1)[-1]
                    cport = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}.get(pname)
                    if not addr.startswith("0.0.0.0:") or str(cport) != port:
                        err(f"{cid}: {var}={addr!r} should be 0.0.0.0:{cport} (the {pname} port)")
                if values.get("METRICS_ADDR", "").rsplit(":", 1)[-1] != str(
                        {p.get("name"): p["containerPort"] for p in c.get("ports") or []}.get("metrics")):
                    err(f"{cid}: METRICS_ADDR does not listen on the metrics port")
                ann = (o["spec"]["template"].get("metadata") or {}).get("annotations") or {}
                if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != "9090":
                    err(f"{cid}: pod lacks the prometheus.io/scrape and prometheus.io/port annotations")
        if o["kind"] != "Job" and role and not spec.get("terminationGracePeriodSeconds"):
            err(f"{owner}: no terminationGracePeriodSeconds")

    # NATS: JetStream fits its volume; the routes name exactly the StatefulSet's pods.
    def size_bytes(text, nats=False):
        # NATS counts KB/MB/GB in 1024s; Kubernetes quantities use 1000 for
        # K/M/G and 1024 for Ki/Mi/Gi.
        m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(i?)B?\s*", str(text), re.I)
        if not m:
            return 0
        power = " KMGT".index(m.group(2).upper() or " ")
        return int(m.group(1)) * (1024 if nats or m.group(3) else 1000) ** power

    for name, sts in by_kind.get("StatefulSet", {}).items():
        spec = sts["spec"]["template"]["spec"]
        if not any(c.get("image", "").startswith("nats:") for c in spec.get("containers", [])):
            continue
        cms = [v["configMap"]["name"] for v in spec.get("volumes") or [] if "configMap" in v]
        conf = "\n".join(t for cm in cms for t in (configmaps.get(cm, {}).get("data") or {}).values())
        replicas = sts["spec"].get("replicas", 1)
        store = re.search(r"max_file_store:\s*([0-9]+\s*[A-Za-z]*)", conf)
        vct = {v["metadata"]["name"]: v for v in sts["spec"].get("volumeClaimTemplates") or []}
        volume = (((vct.get("data") or {}).get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
        if not store:
            err(f"StatefulSet/{name}: nats.conf sets no jetstream max_file_store")
        elif volume and size_bytes(store.group(1), nats=True) > size_bytes(volume):
            err(f"StatefulSet/{name}: JetStream may store {store.group(1)}, its volume holds {volume}")
        routes = sorted(int(i) for i in re.findall(rf"nats://{re.escape(name)}-(\d+)\.", conf))
        if replicas > 1 and routes != list(range(replicas)):
            err(f"StatefulSet/{name}: {replicas} replicas, but the cluster routes name pods {routes}")
        if replicas == 1 and routes:
            err(f"StatefulSet/{name}: one replica, yet nats.conf routes to a cluster (it would wait for peers)")
        # The migrate Job gives every event stream NATS_STREAM_REPLICAS copies.
        for cm_name, cm in configmaps.items():
            wanted = (cm.get("data") or {}).get("NATS_STREAM_REPLICAS")
            if wanted is None:
                continue
            if not str(wanted).isdigit() or not 1 <= int(wanted) <= replicas:
                err(f"ConfigMap/{cm_name}: NATS_STREAM_REPLICAS={wanted}, but NATS runs {replicas} node(s)")
            elif replicas >= 3 and int(wanted) < 3:
                err(f"ConfigMap/{cm_name}: NATS_STREAM_REPLICAS={wanted} on {replicas} NATS nodes: "
                    "losing one node's volume would lose events (use 3)")

    # Databases: what the URLs name exists in the bootstrap lists.
    unknown = db_names_used - compose_dbs
    if unknown:
        err(f"database URLs name {sorted(unknown)}, which deploy/compose/init-databases.sql does not create")
    for name, cm in configmaps.items():
        for key, text in (cm.get("data") or {}).items():
            if key.endswith(".sql") and databases_in_sql(text) and databases_in_sql(text) != compose_dbs:
                err(f"ConfigMap/{name} {key} creates {sorted(databases_in_sql(text))}, "
                    f"deploy/compose/init-databases.sql {sorted(compose_dbs)}")

    # The simulated checkout is reachable only where payments may run without a Stripe key.
    pay = deployments.get("payments")
    if pay:
        key_optional = any(e["name"] == "STRIPE_SECRET_KEY" and ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("optional")
                           for c in pay["spec"]["template"]["spec"]["containers"] for e in c.get("env") or [])
        for name, ing in by_kind.get("Ingress", {}).items():
            for rule in ing["spec"].get("rules", []):
                for path in (rule.get("http") or {}).get("paths", []):
                    if path["path"].startswith("/simulated-checkout") and not key_optional:
                        err(f"Ingress/{name}: routes {path['path']} although payments requires a Stripe key")

    if errors:
        failed = True
        for e in errors:
            print(f"k8s: error: {overlay}: {e}", file=sys.stderr)
        print(f"k8s: {overlay}: {len(errors)} problem(s)", file=sys.stderr)
    else:
        kinds = sorted({o['kind'] for o in objs})
        print(f"k8s: {overlay}: {len(objs)} objects ({validated} schema-valid, {len(custom)} custom), "
              f"cross-references ok — {', '.join(kinds)}")

sys.exit(1 if failed else 0)
PY
log "every overlay is valid"
