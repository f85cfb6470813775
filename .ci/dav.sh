# Sourced by .ci/test: starts the CalDAV servers the `caldav` tests run against, on loopback,
# from PyPI into a virtualenv: Radicale 3.9 (no auth: any user name logs in as itself; and a
# second one with an htpasswd file) and Xandikos 0.4. Exports their URLs; `stop_dav` stops them.
# The same virtualenv holds recurring-ical-events, the differential test's expander
# (CALSCOPE_PYTHON).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_http() { # url
  for _ in $(seq 1 100); do
    if python3 - "$1" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
PY
    sleep 0.1
  done
  echo "no answer from $1" >&2; return 1
}

start_dav() {
  local venv="${CALSCOPE_DAV_VENV:-$PWD/target/dav-venv}"
  if [ ! -x "$venv/bin/radicale" ] || [ ! -x "$venv/bin/xandikos" ] \
     || ! "$venv/bin/python" -c 'import recurring_ical_events' 2>/dev/null; then
    echo "installing Radicale, Xandikos and recurring-ical-events from PyPI into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "radicale==3.9.*" "xandikos==0.4.*" \
      "recurring-ical-events==3.8.2"
  fi
  # The independent expander of the differential test (tests/differential.rs).
  export CALSCOPE_PYTHON="$venv/bin/python"
  DAV_DIR=$(mktemp -d /tmp/calscope-dav.XXXXXX)
  local rp rap xp
  rp=$(free_port); rap=$(free_port); xp=$(free_port)
  printf 'alice:s3cret-pass\n' > "$DAV_DIR/htpasswd"
  "$venv/bin/radicale" --storage-filesystem-folder="$DAV_DIR/radicale" --server-hosts="127.0.0.1:$rp" \
    --auth-type none >"$DAV_DIR/radicale.log" 2>&1 &
  DAV_PIDS=($!)
  "$venv/bin/radicale" --storage-filesystem-folder="$DAV_DIR/radicale-auth" --server-hosts="127.0.0.1:$rap" \
    --auth-type htpasswd --auth-htpasswd-filename "$DAV_DIR/htpasswd" --auth-htpasswd-encryption plain \
    >"$DAV_DIR/radicale-auth.log" 2>&1 &
  DAV_PIDS+=($!)
  "$venv/bin/xandikos" serve -d "$DAV_DIR/xandikos" --defaults -l 127.0.0.1 -p "$xp" >"$DAV_DIR/xandikos.log" 2>&1 &
  DAV_PIDS+=($!)
  wait_http "http://127.0.0.1:$rp/" && wait_http "http://127.0.0.1:$rap/" && wait_http "http://127.0.0.1:$xp/"
  export CALSCOPE_RADICALE_URL="http://127.0.0.1:$rp/"
  export CALSCOPE_RADICALE_DIR="$DAV_DIR/radicale"
  export CALSCOPE_RADICALE_AUTH_URL="http://127.0.0.1:$rap/"
  export CALSCOPE_XANDIKOS_URL="http://127.0.0.1:$xp/"
  echo "Radicale $("$venv/bin/radicale" --version) on :$rp (and :$rap with htpasswd), Xandikos on :$xp"
}

stop_dav() {
  if [ -n "${DAV_DIR:-}" ]; then
    kill "${DAV_PIDS[@]}" 2>/dev/null || true
    wait "${DAV_PIDS[@]}" 2>/dev/null || true
    rm -rf "$DAV_DIR"
    DAV_DIR=
  fi
}
