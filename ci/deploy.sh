#!/usr/bin/env bash
# Validates, compiles, submits and follows the deploy pipeline; the one script behind the GitHub Action, the
# example workflow and cloudbuild.yaml.
#
#   ci/deploy.sh CONFIG
#
# Environment (all optional but the target's):
#   VSP_LOCAL=1              run on localvertex on this machine instead of Vertex AI
#   VSP_PROJECT, VSP_LOCATION, VSP_PIPELINE_ROOT, VSP_SERVICE_ACCOUNT, VSP_NETWORK   where the run goes
#   VSP_COMPONENT_IMAGE      registry path of the steps' image (required for Vertex AI)
#   VSP_DATA_DIR             localvertex's state folder (local runs)
#   VSP_OUT                  where the compiled pipeline and the run's result go (default: build/ci)
#   GITHUB_STEP_SUMMARY, GITHUB_OUTPUT   written when set: the smoke-test report; model_version, endpoint, run
#
# Exit codes, as vsp's: 0 the run succeeded, 1 it failed (a failed smoke test included), 2 the input was wrong.
set -uo pipefail

config="${1:?usage: ci/deploy.sh CONFIG}"
out="${VSP_OUT:-build/ci}"
vsp="${VSP:-vsp}"
mkdir -p "$out"

target=()
if [[ "${VSP_LOCAL:-}" == 1 ]]; then
  target+=(--local)
  [[ -n "${VSP_DATA_DIR:-}" ]] && target+=(--data-dir "$VSP_DATA_DIR")
fi
[[ -n "${VSP_PROJECT:-}" ]] && target+=(--project "$VSP_PROJECT")
[[ -n "${VSP_LOCATION:-}" ]] && target+=(--location "$VSP_LOCATION")
[[ -n "${VSP_PIPELINE_ROOT:-}" ]] && target+=(--pipeline-root "$VSP_PIPELINE_ROOT")
[[ -n "${VSP_SERVICE_ACCOUNT:-}" ]] && target+=(--service-account "$VSP_SERVICE_ACCOUNT")
[[ -n "${VSP_NETWORK:-}" ]] && target+=(--network "$VSP_NETWORK")
image=()
[[ -n "${VSP_COMPONENT_IMAGE:-}" ]] && image+=(--component-image "$VSP_COMPONENT_IMAGE")

echo "::group::validate" >&2
"$vsp" validate "$config" || exit $?
echo "::endgroup::" >&2

"$vsp" compile "${image[@]}" --output-dir "$out" >&2 || exit $?

"$vsp" run --config "$config" --template "$out/vertex-serving-deploy.yaml" "${target[@]}" --wait --json \
  > "$out/result.json"
code=$?
[[ -s "$out/result.json" ]] || exit "$code"

python3 - "$out/result.json" <<'PY'
import json, os, sys

result = json.load(open(sys.argv[1]))
print(f"run {result['run']}: {result['state']}", file=sys.stderr)
if os.environ.get("GITHUB_OUTPUT"):
    with open(os.environ["GITHUB_OUTPUT"], "a") as f:
        for key in ("run", "model_version", "endpoint"):
            f.write(f"{key}={result.get(key) or ''}\n")
if os.environ.get("GITHUB_STEP_SUMMARY"):
    tasks = "\n".join(f"| {t['name']} | {t['state']} | {t['seconds'] or ''} |" for t in result["tasks"])
    with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
        f.write(f"## Deploy run `{result['run'].rsplit('/', 1)[-1]}`: {result['state'].removeprefix('PIPELINE_STATE_')}\n\n")
        if result.get("error"):
            f.write(f"> {result['error']}\n\n")
        f.write(f"| step | state | seconds |\n|---|---|---|\n{tasks}\n\n")
        f.write((result.get("report") or "No smoke-test report: the run ended before the smoke test.") + "\n")
PY
[[ $? == 0 ]] || exit 1  # the run's result could not be read: CI must not pass without its outputs
exit "$code"
