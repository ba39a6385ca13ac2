#!/usr/bin/env bash
# The real browser the console's end-to-end tests drive: Debian's chromium and its
# matching chromedriver, from apt (nothing downloads a browser at test time).
# Skipped when /usr/bin/chromium is already there. Needs root (or sudo) and apt.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "no apt-get: install chromium and chromedriver yourself for the console's browser tests" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing chromium + chromium-driver with apt (browser tests)..." >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
