#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Debian's Chromium (browser tests of the
# web calculator; Playwright drives /usr/bin/chromium, it never downloads a browser) and a
# Java 17+ runtime (Spark local-mode tests). Installs only what is missing; needs root or sudo.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ! command -v java >/dev/null 2>&1; then missing+=(openjdk-17-jre-headless); fi
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install_system_deps: need root to install: ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1
  fi
fi
echo "install_system_deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
