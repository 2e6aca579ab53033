#!/usr/bin/env bash
# Stops the sandbox's servers (MLflow, the S3 stand-in, kube-apiserver, etcd). Logs and data stay in
# $M2S_SANDBOX_DIR for debugging until the next `up.sh`.
source "$(dirname "$0")/lib.sh"
quiet=0; [[ "${1:-}" == "--quiet" ]] && quiet=1
stopped=()
for name in mlflow s3 kube-apiserver etcd; do
  pidfile="$M2S_SANDBOX_DIR/$name.pid"
  if pid_alive "$pidfile"; then
    pid="$(cat "$pidfile")"
    # The servers run in their own session (setsid): stop the whole group, e.g. MLflow's workers.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    stopped+=("$name")
  fi
  rm -f "$pidfile"
done
rm -f "$M2S_SANDBOX_DIR/env"
if ((!quiet)); then
  if ((${#stopped[@]})); then log "stopped: ${stopped[*]} (logs kept in $M2S_SANDBOX_DIR/logs)"; else log "nothing was running"; fi
fi
