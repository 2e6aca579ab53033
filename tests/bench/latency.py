#!/usr/bin/env python3
"""Promotion latency of `m2s webhook` at the 1,200-model bench registry (with
M2S_BENCH_SCALE=12000, `make bench BENCH=latency SCALE=12000`: at the 12,000-model one).

Run alone with `make bench BENCH=latency` (or `python3 tests/bench/latency.py` with the sandbox's
env sourced); `make bench` runs it after its own measurements. Python standard library only;
it reuses bench.py's seed (1,200 models, `champion` on v1 of every even-numbered one), clients
and audit-log reader.

  1. a new namespace; the release binary's `m2s webhook` on a free loopback port (its start-up
     full sync deploys the registry's ~3,000 objects), registered in MLflow with
     `m2s webhook register`;
  2. 20 alias moves: `champion` of 10 models to v2 and back to v1, one at a time, each timed
     from the MLflow REST call returning to a watch on the object seeing the new version;
  3. requests per event from m2s's own log line of each scoped sync (`mlflow_requests`,
     `kube_requests`), cross-checked with the API server's audit log (m2s's user agent, the
     namespace, between the move and the next);
  4. for comparison, one one-shot `m2s sync` (what a CronJob run does) on the same namespace.

Prints a table and PASS/FAIL for: median <= 1 s, p95 <= 2 s, <= 4 MLflow and <= 4 Kubernetes
requests per event. Exits 1 when one fails. M2S_BENCH_LATENCY_MOVES (default 20) sets the count;
M2S_BENCH_PREFLIGHT=false runs the receiver without preflight (default: with it, but without at
SCALE=12000, whose copied versions have no MLmodel files).
"""

import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the seed, clients and audit reader)

MOVES = int(os.environ.get("M2S_BENCH_LATENCY_MOVES", "20"))
SECRET = "m2s-bench-latency-" + os.urandom(8).hex()
SYNC_LINE = re.compile(r'msg="sync finished" kind=model model=(\S+) .*?mlflow_requests=(\d+) '
                       r'kube_requests=(\d+) kube_writes=(\d+)')
log = bench.log


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """The release binary's `m2s webhook`, its stderr collected."""

    def __init__(self, b, ns, env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines = []
        self.proc = subprocess.Popen(
            [bench.BINARY, "webhook", "--listen", f"127.0.0.1:{self.port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def get(self, path):
        import urllib.request
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return r.status, r.read().decode()
        except OSError:
            return 0, ""

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit("m2s webhook exited:\n" + "\n".join(self.lines[-20:]))
            if self.get("/readyz")[0] == 200:
                return
            time.sleep(0.2)
        sys.exit("m2s webhook not ready in time:\n" + "\n".join(self.lines[-20:]))

    def model_syncs(self):
        return [m.groups() for m in map(SYNC_LINE.search, self.lines) if m]

    def peak_rss_mb(self):
        """The receiver's peak resident memory so far (VmHWM)."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def watch_until(kube, ns, name, resource_version, version, result):
    """Watches object `name` from `resource_version` until it serves `version`; puts the
    monotonic time it was seen in result["seen"]. result["open"] is set once the watch runs."""
    q = urllib.parse.urlencode({"watch": "1", "fieldSelector": f"metadata.name={name}",
                                "resourceVersion": resource_version, "timeoutSeconds": "60"})
    conn = kube.http._conn()
    conn.request("GET", f"{bench.Kube.base(ns)}?{q}", headers=dict(kube.http.headers))
    resp = conn.getresponse()
    result["open"].set()
    try:
        while True:
            line = resp.readline()
            if not line:
                return
            ev = json.loads(line)
            if ev.get("type") == "ERROR":
                result["error"] = ev.get("object", {}).get("message", str(ev))
                return
            ann = ev.get("object", {}).get("metadata", {}).get("annotations", {})
            if ann.get("m2s.io/model-version") == version:
                result["seen"] = time.monotonic()
                return
    finally:
        kube.http.local.conn = None  # the watch connection is not reused
        conn.close()


def percentile(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def run(ml=None):
    """Measures and prints; True when every target passes."""
    b = bench.Bench()
    ml = ml or b.ml
    bench.seed(ml)
    if bench.SCALE:
        bench.seed_large(bench.sandbox_dir())
    # The 1,200 models (PREFIX-a-…, PREFIX-b-…), or with SCALE also their copies PREFIXx1-….
    name_like = bench.PREFIX if bench.SCALE else f"{bench.PREFIX}-"
    ns = b.namespace("latency")
    # The copies of SCALE have no MLmodel files (rows copied inside MLflow's database):
    # preflight would refuse them all at start-up; without SCALE each event's sync preflights
    # (M2S_BENCH_PREFLIGHT=false: not, to compare).
    preflight = os.environ.get("M2S_BENCH_PREFLIGHT") or ("false" if bench.SCALE else "true")
    env = b.m2s_env(ns, name_like, M2S_RESYNC_INTERVAL="3600", M2S_WEBHOOK_SECRET=SECRET,
                    RUST_LOG="m2s=info", M2S_PREFLIGHT=preflight)
    log(f"latency: preflight {'on' if preflight == 'true' else 'off'} (M2S_PREFLIGHT={preflight})")
    log(f"latency: m2s webhook in {ns}; its start-up full sync deploys the "
        f"{bench.SCALE or 1200}-model registry")
    started = time.monotonic()
    receiver = Receiver(b, ns, env)
    webhook_id = None
    kube = bench.Kube(b.kubeconfig)
    kube.http.headers["User-Agent"] = "m2s-bench"
    try:
        receiver.wait_ready(600)
        log(f"  ready after {time.monotonic() - started:.1f}s")
        out = subprocess.run([bench.BINARY, "webhook", "register", "--url",
                              f"{receiver.url}/webhook"], env=env, capture_output=True,
                             text=True, check=True).stdout
        webhook_id = re.search(r"\(id ([^)]+)\)", out).group(1)
        time.sleep(1.5)  # MLflow caches each event's subscribers (MLFLOW_WEBHOOK_CACHE_TTL)
        objects, _ = kube.list_all(ns)
        champions = {o["metadata"]["annotations"]["m2s.io/model-name"]: o for o in objects
                     if o["metadata"]["annotations"].get("m2s.io/alias") == "champion"}
        models = [f"{bench.PREFIX}-b-{i:04d}" for i in range(0, bench.GROUP_SIZE, 2)]
        models = [m for m in models if m in champions][: (MOVES + 1) // 2]
        # Away from the version each serves now and back (a run cut short can leave one on v2).
        served = {m: champions[m]["metadata"]["annotations"]["m2s.io/model-version"]
                  for m in models}
        moves = [(m, v) for m in models
                 for v in ("2" if served[m] == "1" else "1", served[m])][:MOVES]
        results = []
        for model, version in moves:
            results.append(move(b, ml, kube, receiver, ns, champions[model], model, version))
            r = results[-1]
            log(f"  {model} champion -> v{version}: {r['latency'] * 1000:.0f} ms, MLflow "
                f"{r['mlflow']}, Kubernetes {r['kube']} (audit {r['audit']}, "
                f"{r['audit_writes']} write)")
        # What a CronJob run does on the same namespace, for comparison.
        t = time.monotonic()
        subprocess.run([bench.BINARY, "sync"], env=env, capture_output=True, check=True)
        oneshot = time.monotonic() - t
        rss = receiver.peak_rss_mb()
    finally:
        if webhook_id:
            ml.http.request("DELETE", f"/api/2.0/mlflow/webhooks/{webhook_id}")
        code = receiver.stop()
        log(f"  m2s webhook stopped (exit {code})")
        kube.delete_all(ns)
    return report(results, oneshot, objects, rss)


def move(b, ml, kube, receiver, ns, obj, model, version):
    name = obj["metadata"]["name"]
    # Watch from the collection's current resourceVersion, not the object's: after the start-up
    # sync's 30,000 writes an object's own version is older than the API server's watch cache
    # keeps, and a watch from it ends at once with 410 Gone.
    q = urllib.parse.urlencode({"fieldSelector": f"metadata.name={name}"})
    current = kube.http.request("GET", f"{bench.Kube.base(ns)}?{q}")
    done = len(receiver.model_syncs())
    result = {"open": threading.Event()}
    watcher = threading.Thread(target=watch_until, args=(
        bench.Kube(b.kubeconfig), ns, name, current["metadata"]["resourceVersion"], version,
        result))
    watcher.start()
    result["open"].wait(10)
    b.audit.start()
    ml.post("registered-models/alias", {"name": model, "alias": "champion", "version": version})
    t0 = time.monotonic()
    watcher.join(60)
    if "seen" not in result:
        sys.exit(f"{name} did not serve v{version} within 60 s"
                 f"{' (watch: ' + result['error'] + ')' if 'error' in result else ''}:\n"
                 + "\n".join(receiver.lines[-20:]))
    # Wait for the sync's log line (written right after its last write).
    deadline = time.monotonic() + 10
    while len(receiver.model_syncs()) <= done and time.monotonic() < deadline:
        time.sleep(0.02)
    ours = [s for s in receiver.model_syncs()[done:] if s[0] == model]
    if len(ours) != 1:
        sys.exit(f"expected one sync of {model}, got {receiver.model_syncs()[done:]}")
    # The sync's requests: not the receiver's Lease renewals (a GET and an update every few
    # seconds, M2S_LEADER_ELECTION), which land in the same namespace whenever they fall due.
    audit = bench.Audit.summary([e for e in b.audit.events(ns)
                                 if e.get("userAgent", "").startswith("m2s/")
                                 and e.get("objectRef", {}).get("resource") != "leases"])
    return {"latency": result["seen"] - t0, "mlflow": int(ours[0][1]), "kube": int(ours[0][2]),
            "writes": int(ours[0][3]), "audit": audit["requests"],
            "audit_writes": audit["writes"]}


def report(results, oneshot, objects, rss):
    lat = [r["latency"] for r in results]
    med, p95 = statistics.median(lat), percentile(lat, 95)
    ml_max = max(r["mlflow"] for r in results)
    kube_max = max(max(r["kube"], r["audit"]) for r in results)
    agree = all(r["kube"] == r["audit"] for r in results)
    print(f"\nPromotion latency of `m2s webhook` ({len(objects)} objects, {len(results)} alias "
          f"moves, from the MLflow REST call returning to a watch seeing the new version):")
    print(f"  median {med * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, min {min(lat) * 1000:.0f} ms, "
          f"max {max(lat) * 1000:.0f} ms")
    print(f"  all: {', '.join(f'{x * 1000:.0f}' for x in lat)} ms")
    print(f"  requests per event: MLflow {sorted({r['mlflow'] for r in results})}, Kubernetes "
          f"{sorted({r['kube'] for r in results})} (audit log "
          f"{sorted({r['audit'] for r in results})}, writes "
          f"{sorted({r['audit_writes'] for r in results})}; agree: {agree})")
    print(f"  peak RSS of the receiver (its start-up full sync included): {rss:.1f} MB")
    print(f"  a one-shot `m2s sync` (a CronJob run) of the same registry: {oneshot:.2f} s, after "
          f"waiting for its schedule (up to 60 s with \"* * * * *\") and a pod start")
    targets = [
        ("median <= 1 s", med <= 1.0, f"{med * 1000:.0f} ms"),
        ("p95 <= 2 s", p95 <= 2.0, f"{p95 * 1000:.0f} ms"),
        ("<= 4 MLflow requests per event", ml_max <= 4, str(ml_max)),
        ("<= 4 Kubernetes requests per event (m2s's count and the audit log's)",
         kube_max <= 4 and agree, f"{kube_max} (agree: {agree})"),
    ]
    print("\nLatency targets:")
    for name, passed, value in targets:
        print(f"  {'PASS' if passed else 'FAIL'}  {name}: {value}")
    return all(p for _, p, _ in targets)


if __name__ == "__main__":
    if not os.path.exists(bench.BINARY):
        sys.exit(f"{bench.BINARY} is missing: run `make release` first")
    sys.exit(0 if run() else 1)
