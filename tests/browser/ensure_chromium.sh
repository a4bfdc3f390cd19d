#!/usr/bin/env bash
# The listening-test page is tested in Debian's headless Chromium. Install it when it is missing
# and we may (root, apt present); otherwise say so: the browser test then skips, or fails under CI.
set -u
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the browser test will not run" >&2
else
  echo "warning: chromium is not installed and cannot be installed here; the browser test will not run" >&2
fi
exit 0
