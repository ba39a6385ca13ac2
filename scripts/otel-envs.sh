#!/usr/bin/env bash
# One virtual environment per OpenTelemetry GenAI instrumentation library, for the
# conformance suite (tests/e2e/otel): their pins conflict (openlit wants openai<3, the
# deprecated openai-v2 wants opentelemetry-util-genai 0.4b0, traceloop-sdk does not
# resolve as a whole), so each gets its own venv under .otel-envs/NAME and the tests
# run the instrumented client in a subprocess of it.
#   scripts/otel-envs.sh [NAME...]    default: all; prints nothing when already built
# Re-running with nothing changed is a no-op (a stamp holds the requirement lines).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
root=".otel-envs"
# Shared by every env: the client and the SDK with its OTLP/HTTP exporter.
base=(openai httpx opentelemetry-sdk opentelemetry-exporter-otlp-proto-http)

requirements() {
  case "$1" in
    # With OpenLLMetry's own OpenAI instrumentation beside it (another module name), for
    # the test of two instrumentations on one client.
    genai-openai) echo "opentelemetry-instrumentation-genai-openai==1.3b0 opentelemetry-instrumentation-openai" ;;
    # util-genai 1.x removed a module that 2.4b0 imports.
    openai-v2) echo "opentelemetry-instrumentation-openai-v2==2.4b0 opentelemetry-util-genai==0.4b0" ;;
    # The SDK's own dependencies minus the other vendors' instrumentations (one of
    # them pins a semconv-ai that is not published); traceloop-sdk goes in --no-deps.
    traceloop) echo "opentelemetry-instrumentation-openai opentelemetry-semantic-conventions-ai>=0.5.1,<0.6 \
opentelemetry-exporter-otlp-proto-grpc aiohttp colorama cuid deprecated jinja2 tenacity pydantic \
opentelemetry-instrumentation-logging opentelemetry-instrumentation-requests \
opentelemetry-instrumentation-threading opentelemetry-instrumentation-urllib3" ;;
    openlit) echo "openlit==1.45.0 openai<3" ;;
    openinference) echo "openinference-instrumentation-openai==0.1.66" ;;
    *) echo "unknown instrumentation env: $1" >&2; return 1 ;;
  esac
}

build() {
  local name="$1" env="$root/$1" reqs want
  reqs="$(requirements "$name")"
  want="$(echo "${base[*]} $reqs" | sha256sum | cut -d' ' -f1)"
  if [ -f "$env/.stamp" ] && [ "$(cat "$env/.stamp")" = "$want" ]; then
    return 0
  fi
  echo "building $env..." >&2
  rm -rf "$env"
  "$python" -m venv "$env"
  local pip=("$env/bin/python" -m pip install --quiet --disable-pip-version-check)
  # shellcheck disable=SC2086  # the requirement lines are word lists
  "${pip[@]}" "${base[@]}" $reqs
  if [ "$name" = traceloop ]; then
    "${pip[@]}" --no-deps "traceloop-sdk==0.62.4"
  fi
  echo "$want" > "$env/.stamp"
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(genai-openai openai-v2 traceloop openlit openinference)
mkdir -p "$root"
# In parallel: each build waits mostly on downloads (about a minute each, one at a time).
pids=()
for name in "${names[@]}"; do
  requirements "$name" > /dev/null
  build "$name" > "$root/$name.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "building $root/${names[$i]} failed:" >&2
    tail -20 "$root/${names[$i]}.log" >&2
    failed=1
  fi
done
exit "$failed"
