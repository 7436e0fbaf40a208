# Shared shell helpers for scripts/demo and scripts/bench: local registries on loopback.
# shellcheck shell=bash

# start_registry NAME [log] -> prints "ADDR" and records the pid in $WORK/NAME/pid; with "log",
# the registry writes an access log (one line per request) to $WORK/NAME/registry.log.
start_registry() {
  local name=$1 access=true port dir
  [ "${2:-}" = log ] && access=false
  dir="$WORK/$name"
  mkdir -p "$dir/storage"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: $access
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 1 200); do
    if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
      echo "127.0.0.1:$port"
      return 0
    fi
    sleep 0.05
  done
  echo "registry $name did not start; log:" >&2
  cat "$dir/registry.log" >&2
  return 1
}

stop_registries() {
  local f
  for f in "$WORK"/*/pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
