#!/usr/bin/env bash
# Install the Debian packages SharpEyes needs for a target, only those missing.
#   demo: GStreamer's RTSP server (serves the sample clip as a live camera)
#   test: the demo's packages plus redis-server, chromium, PostgreSQL 15, iproute2 (the
#         ONVIF multicast-discovery test sets up a private network namespace with `ip`) and
#         a CJK font (the console tests render its zh-CN pages in chromium)
set -euo pipefail
target="${1:-demo}"
demo_pkgs=(python3 python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
           gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
test_pkgs=("${demo_pkgs[@]}" redis-server chromium postgresql-15 iproute2 fonts-wqy-microhei)
case "$target" in
  demo) wanted=("${demo_pkgs[@]}") ;;
  test) wanted=("${test_pkgs[@]}") ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0


if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
  echo "SharpEyes needs these Debian packages: ${missing[*]}" >&2
  echo "Install them as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
