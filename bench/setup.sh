#!/usr/bin/env bash
# Idempotent setup for the Tollway benchmark harness.
#  - Debian packages: nginx (fast upstream) and wrk (load generator)
#  - bench/.venv          : server/client candidates for the bare pass-through
#                           (uvicorn[standard] = uvloop+httptools, granian, httpx, aiohttp, orjson)
#  - bench/.venv-litellm  : the LiteLLM proxy, isolated from everything else
# Re-running it only installs what is missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
# The version behind the figures in docs/benchmarks.md; override to try another.
LITELLM_SPEC="${LITELLM_SPEC:-litellm[proxy]==1.106.2}"

log() { printf '[bench/setup] %s\n' "$*"; }

# ---- Debian packages -------------------------------------------------------
need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v wrk   >/dev/null 2>&1 || need_apt+=(wrk)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  log "apt-get install ${need_apt[*]}"
  # Keep the packaged nginx service from starting on port 80: the bench runs
  # its own nginx with a generated config on a loopback port.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  if [ "$created_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
else
  log "nginx and wrk already installed"
fi

# ---- candidates venv -------------------------------------------------------
# A stamp of what was installed makes re-runs no-ops until the pins change.
want="$(sha256sum "$HERE/requirements-candidates.txt" | cut -d' ' -f1)"
if [ ! -x "$HERE/.venv/bin/python" ]; then
  log "creating bench/.venv"
  "$PY" -m venv "$HERE/.venv"
fi
if [ "$(cat "$HERE/.venv/.bench-installed" 2>/dev/null)" != "$want" ]; then
  log "installing candidates into bench/.venv"
  "$HERE/.venv/bin/pip" install -q -r "$HERE/requirements-candidates.txt"
  echo "$want" > "$HERE/.venv/.bench-installed"
else
  log "bench/.venv ready"
fi

# ---- LiteLLM proxy venv ----------------------------------------------------
if [ ! -x "$HERE/.venv-litellm/bin/python" ]; then
  log "creating bench/.venv-litellm"
  "$PY" -m venv "$HERE/.venv-litellm"
fi
if [ "$(cat "$HERE/.venv-litellm/.bench-installed" 2>/dev/null)" != "$LITELLM_SPEC" ]; then
  log "installing $LITELLM_SPEC into bench/.venv-litellm (takes a few minutes)"
  "$HERE/.venv-litellm/bin/pip" install -q "$LITELLM_SPEC"
  echo "$LITELLM_SPEC" > "$HERE/.venv-litellm/.bench-installed"
else
  log "bench/.venv-litellm ready ($LITELLM_SPEC)"
fi

log "done. Tollway itself comes from the repo's .venv (make venv)."
