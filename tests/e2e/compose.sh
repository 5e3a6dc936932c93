#!/bin/sh
# compose.yaml and Dockerfile cannot rot unseen: Debian's docker-compose validates the
# file (no Docker engine needed), every stage is a service of the one image with its
# health check on its own port and the right start order, configuration is environment
# only, and the Dockerfile builds with the same steps as CI (tools/deps.sh, make).
set -u
bin=${EVPIPE_BIN:-build/evpipe}
command -v docker-compose >/dev/null 2>&1 || { echo "FAIL: docker-compose missing (sh tools/deps.sh)" >&2; exit 1; }
cfg=$(mktemp /tmp/evpipe_compose.XXXXXX)
trap 'rm -f "$cfg"' EXIT
docker-compose -f compose.yaml config >"$cfg" || { echo "FAIL: docker-compose config" >&2; exit 1; }
# Stages the binary has must read the variables compose sets.
stages=
for s in ingest metrics funnels exports reports; do
    if "$bin" --help | grep -q "^  $s "; then
        help=$("$bin" "$s" --help)
        for v in DATABASE_URL KAFKA_BROKERS EVPIPE_METRICS_PORT; do
            echo "$help" | grep -q "env $v\]" || { echo "FAIL: evpipe $s does not read $v" >&2; exit 1; }
        done
        if [ "$s" = exports ]; then
            echo "$help" | grep -q "env EVPIPE_UPLOAD_URL\]" || { echo "FAIL: evpipe exports does not read EVPIPE_UPLOAD_URL" >&2; exit 1; }
        fi
        stages="$stages $s"
    fi
done
python3 - "$cfg" <<'PY' || exit 1
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
sv = cfg["services"]
errors = []
def need(cond, what):
    if not cond:
        errors.append(what)
ports = {"ingest": 9101, "metrics": 9102, "funnels": 9103, "exports": 9104, "reports": 9105}
k = sv.get("kafka", {})
need(k.get("image", "").startswith("apache/kafka:"), "kafka: official apache/kafka image")
need("controller" in str(k.get("environment", {}).get("KAFKA_PROCESS_ROLES", "")), "kafka: KRaft (controller role)")
need("healthcheck" in k and "healthcheck" in sv.get("postgres", {}), "kafka and postgres health checks")
m = sv.get("migrate", {})
need(m.get("command") == ["migrate", "up"] and m.get("restart") == "no", "migrate: one-shot evpipe migrate up")
need(m.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy", "migrate after healthy postgres")
for stage, port in ports.items():
    s = sv.get(stage)
    if s is None:
        errors.append(stage + ": no service")
        continue
    need(s.get("image") == "evpipe:latest", stage + ": the one image")
    need(s.get("command") == [stage], stage + ": command is the stage alone (configuration by environment)")
    env = s.get("environment", {})
    for v in ("DATABASE_URL", "KAFKA_BROKERS"):
        need(v in env, stage + ": " + v)
    need(str(env.get("EVPIPE_METRICS_PORT")) == str(port), stage + ": EVPIPE_METRICS_PORT %d" % port)
    test = " ".join(s.get("healthcheck", {}).get("test", []))
    need("/dev/tcp/127.0.0.1/%d" % port in test and "/healthz" in test, stage + ": /healthz health check on %d" % port)
    dep = s.get("depends_on", {})
    need(dep.get("migrate", {}).get("condition") == "service_completed_successfully", stage + ": after the migrator")
    need(dep.get("kafka", {}).get("condition") == "service_healthy", stage + ": after a healthy kafka")
e = sv.get("exports", {})
need(e.get("environment", {}).get("EVPIPE_UPLOAD_URL", "").startswith("http://uploads:"), "exports: upload URL to the uploads service")
need(e.get("depends_on", {}).get("uploads", {}).get("condition") == "service_healthy", "exports after healthy uploads")
u = sv.get("uploads", {})
need(u.get("image", "").startswith("nginx:") and "healthcheck" in u, "uploads: nginx with a health check")
conf = open("deploy/nginx-webdav.conf").read()
need("dav_methods PUT" in conf, "uploads: WebDAV PUT enabled")
lg = sv.get("loadgen", {})
need(lg.get("profiles") == ["load"], "loadgen behind the 'load' profile")
if errors:
    for x in errors:
        print("FAIL: compose: " + x, file=sys.stderr)
    sys.exit(1)
PY
# The Dockerfile's build stage runs CI's steps.
grep -q '^sh tools/deps.sh' .ci/run && grep -q '^make ' .ci/run || { echo "FAIL: .ci/run no longer runs tools/deps.sh and make" >&2; exit 1; }
build_stage=$(sed -n '1,/^FROM .* AS build/d; /^FROM /q; p' Dockerfile)
echo "$build_stage" | grep -q '^RUN sh tools/deps.sh' || { echo "FAIL: Dockerfile does not install with tools/deps.sh" >&2; exit 1; }
echo "$build_stage" | grep -q '^RUN make ' || { echo "FAIL: Dockerfile does not build with make" >&2; exit 1; }
if echo "$build_stage" | grep -q 'apt-get install'; then
    echo "FAIL: Dockerfile build stage installs packages besides tools/deps.sh" >&2; exit 1
fi
grep -q '^COPY --from=build /src/build/evpipe ' Dockerfile || { echo "FAIL: runtime image does not take the built binary" >&2; exit 1; }
echo "compose: ok (stages in this binary:$stages)"
