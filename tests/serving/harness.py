#!/usr/bin/env python3
"""Plays the node for one object m2s wrote: downloads its model the way its stack does, serves it
with the MLServer the stack ships, and asks it for a prediction.

    python3 tests/serving/harness.py --target kserve|seldon-v1|seldon-v2 \\
        --object OBJECT.json|- --resources RESOURCES.json --work DIR \\
        [--runtime 1.3.5|1.5.0|1.7.1] [--kserve-install helm|kustomize] \\
        [--seldon-v2-preloaded SECRET ...] [--expect JSON] [--timeout SECONDS]

- OBJECT: the object as the API server returns it (`kubectl get ... -o json`).
- RESOURCES: the namespace's Secrets and ServiceAccounts as `kubectl get secret,serviceaccount
  -n NS -o json` prints them (a List); they are all the harness knows of credentials.
- DIR: a work directory (made empty first): the download, the model repository, logs, the request
  and the response stay there for reading.

Prints one JSON object on stdout and exits 0 when the model served, 1 when a stage failed, 2 when
the harness itself cannot run (missing tool, unreadable input):

    {"target", "stage": "served"|"download_failed"|"load_failed"|"infer_failed"|
              "wrong_prediction"|"setup_failed",
     "runtime": "mlserver 1.5.0 / mlflow 2.10.2", "downloader": "...", "uri": "...",
     "model_name": "...", "files": [...], "prediction": [...], "error": "...",
     "seconds": {"download": .., "load": .., "infer": .., "total": ..}, "work": DIR}

What runs, per target (sources: kserve/kserve tag v0.20.0 = 1fb78105, SeldonIO/seldon-core tags
v1.18.2 = 5e8a1698 and v2.10.2 = 8ca3c3c7, SeldonIO/MLServer tags 1.5.0 = 8a48f5b7 and
1.7.1 = 1d1f3ee4):

- kserve: credentials from the predictor's ServiceAccount's Secrets as KServe's credential builder
  turns them into the storage-initializer's environment; `Storage.download_files([storageUri],
  [model dir])` of kserve-storage; MLServer with the env of the `kserve-mlserver`
  ClusterServingRuntime and of the InferenceService defaulter, `mlserver start <model dir>`.
- seldon-v1 (`spec.protocol: v2`, `MLFLOW_SERVER`): Seldon's rclone storage initializer, i.e.
  `rclone copy <modelUri> <model dir>` with the image's env, the ServiceAccount's S3 env and every
  key of the `envSecretRefName` Secret as env; MLServer with the env Seldon's operator sets.
- seldon-v2: the agent's rclone (`rclone rcd`, `/sync/copy` with the `spec.secretName` Secret's
  one key as an rclone connection string, or remotes preloaded from Secrets); the agent's
  model-settings.json from `spec.requirements`; MLServer started as Seldon's ServerConfig does
  and the model loaded through the repository API as the agent does.

The runtimes, kserve-storage and rclone come from $M2S_SANDBOX_DIR/env (tests/sandbox/up.sh):
M2S_SANDBOX_MLSERVER_1_5_0, M2S_SANDBOX_MLSERVER_1_7_1, M2S_SANDBOX_KSERVE_STORAGE_PYTHON,
M2S_SANDBOX_RCLONE.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib

# Options main() sets: how long a download may take, and rclone's retries (see --stack-retries).
OPTS = {"download_timeout": 120, "fast_retries": True}
KINDS = {"kserve": "InferenceService", "seldon-v1": "SeldonDeployment", "seldon-v2": "Model"}
RUNTIMES = ("1.3.5", "1.5.0", "1.7.1")


class Failed(Exception):
    """A stage failed the way the stack would fail."""

    def __init__(self, stage, error, **extra):
        super().__init__(error)
        self.stage, self.error, self.extra = stage, error, extra


class Setup(Exception):
    """The harness cannot run (not the stack's failure)."""


# ------------------------------------------------------------------------------------------------
# Inputs


def load_json(path):
    try:
        if path == "-":
            return json.load(sys.stdin)
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise Setup(f"cannot read JSON from {path}: {e}")


class Namespace:
    """Secrets and ServiceAccounts as `kubectl get secret,serviceaccount -o json` lists them."""

    def __init__(self, doc):
        items = doc.get("items", [doc]) if isinstance(doc, dict) else doc
        self.secrets, self.service_accounts = {}, {}
        for it in items:
            kind, name = it.get("kind"), it.get("metadata", {}).get("name")
            if kind == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in (it.get("data") or {}).items()}
                # stringData is write-only on a real API server; accepted for hand-written input.
                data.update(it.get("stringData") or {})
                self.secrets[name] = {"data": data,
                                      "annotations": it["metadata"].get("annotations") or {}}
            elif kind == "ServiceAccount":
                self.service_accounts[name] = it

    def secret(self, name):
        return self.secrets.get(name)


# ------------------------------------------------------------------------------------------------
# Tools


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tool_env(extra):
    """A clean environment for a downloader: nothing of the caller's (no AWS_* of the sandbox
    leaks in), only what the stack's pod would have."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def rclone_retry_env():
    """rclone's defaults (3 retries, 10 low-level retries with backoff) make an unreachable
    endpoint fail after 3-5 minutes, in the pods as here; unless --stack-retries, one try each,
    so that a wrong endpoint fails in seconds. A reachable endpoint answers at the first try."""
    return {"RCLONE_RETRIES": "1", "RCLONE_LOW_LEVEL_RETRIES": "1"} if OPTS["fast_retries"] else {}


def runtime_venv(version):
    var = "M2S_SANDBOX_MLSERVER_" + version.replace(".", "_")
    cache = os.environ.get("M2S_SANDBOX_CACHE") or os.path.expanduser("~/.cache/m2s-sandbox")
    venv = os.environ.get(var) or os.path.join(cache, "serving", f"mlserver-{version}")
    if not venv or not os.path.exists(os.path.join(venv, "bin", "mlserver")):
        raise Setup(f"no MLServer {version} venv ({var}={venv!r}); run tests/sandbox/install.sh "
                    f"and source $M2S_SANDBOX_DIR/env")
    return venv


def runtime_for(target, obj, install):
    """The MLServer the stack would run for obj: the image the object names, else the stack's
    default (KServe v0.20.0: the kserve-mlserver ClusterServingRuntime's image, 1.5.0 from the
    Helm chart, charts/kserve-runtime-configs/values.yaml, 1.7.1 from the kustomize manifests,
    config/runtimes/kustomization.yaml; Seldon Core 1.18.2: predictor_servers MLFLOW_SERVER v2,
    seldonio/mlserver:1.3.5-mlflow; Seldon Core 2.10.2: the Server's image, seldonio/mlserver:1.7.1
    in k8s/helm-charts/seldon-core-v2-setup/values.yaml). Returns (version, why)."""
    image = None
    if target == "kserve":
        image = obj["spec"]["predictor"]["model"].get("image")
        default = ("1.5.0", "KServe v0.20.0 Helm chart's kserve-mlserver image") if install == "helm" \
            else ("1.7.1", "KServe v0.20.0 kustomize manifests' kserve-mlserver image")
    elif target == "seldon-v1":
        pred = obj["spec"]["predictors"][0]
        for cs in pred.get("componentSpecs") or []:
            for c in (cs.get("spec") or {}).get("containers") or []:
                if c.get("name") == pred["graph"]["name"] and c.get("image"):
                    image = c["image"]
        default = ("1.3.5", "Seldon Core 1.18.2's MLFLOW_SERVER v2 image seldonio/mlserver:1.3.5-mlflow")
    else:
        default = ("1.7.1", "Seldon Core 2.10.2's MLServer Server image")
    if not image:
        return default
    repo, _, tag = image.rpartition(":")
    if repo.split("/")[-1] == "mlserver":
        for v in RUNTIMES:
            if tag == v or tag.startswith(v + "-"):
                return v, f"the object's image {image}"
    raise Setup(f"the object names image {image!r}: the harness has MLServer {', '.join(RUNTIMES)} "
                f"only (seldonio/mlserver:<version>); --runtime picks one")


def runtime_label(venv):
    out = subprocess.run(
        [os.path.join(venv, "bin", "python"), "-c",
         "import importlib.metadata as m; print(m.version('mlserver'), m.version('mlflow'), "
         "m.version('scikit-learn'))"],
        capture_output=True, text=True)
    if out.returncode != 0:
        raise Setup(f"cannot read the versions in {venv}: {out.stderr.strip()[-300:]}")
    mlserver, mlflow, sklearn = out.stdout.split()
    return f"mlserver {mlserver} / mlflow {mlflow} / scikit-learn {sklearn}"


def listing(root):
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            files.append(os.path.relpath(os.path.join(d, n), root))
    return sorted(files)


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-n:]
    except OSError:
        return []


# ------------------------------------------------------------------------------------------------
# KServe v0.20.0


# The storageSecretNameAnnotation of inferenceservice-config: the kustomize manifests
# (config/configmap/inferenceservice.yaml) and the Helm chart (charts/kserve-resources/values.yaml
# kserve.storage.storageSecretNameAnnotation) name different annotations.
KSERVE_SECRET_ANNOTATION = {"kustomize": "serving.kserve.io/storageSecretName",
                            "helm": "serving.kserve.io/secretName"}


def kserve_s3_envs(secret):
    """pkg/credentials/s3/s3_secret.go BuildSecretEnvs + utils.go BuildS3EnvVars with the
    default credentials config (config/configmap/inferenceservice.yaml: s3AccessKeyIDName
    AWS_ACCESS_KEY_ID, s3SecretAccessKeyName AWS_SECRET_ACCESS_KEY, every other s3 value empty).
    The keys are secretKeyRefs: a missing key stops the pod (CreateContainerConfigError)."""
    data, ann = secret["data"], secret["annotations"]
    envs = {}
    for env, key in (("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
                     ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")):
        if key not in data:
            raise Failed("download_failed",
                         f"CreateContainerConfigError: couldn't find key {key} in Secret "
                         f"{secret['name']}")
        envs[env] = data[key]

    def value(annotation, data_key):  # utils.go getEnvValue: annotation, then secret data, then config ("")
        if annotation in ann:
            return ann[annotation]
        return data.get(data_key, "")

    endpoint = value("serving.kserve.io/s3-endpoint", "S3_ENDPOINT").strip()
    if endpoint:  # utils.go getEndpointConfiguration
        low = endpoint.lower()
        if low.startswith("https://"):
            use_https, host, url = "1", endpoint[8:], endpoint
        elif low.startswith("http://"):
            use_https, host, url = "0", endpoint[7:], endpoint
        else:
            use_https = value("serving.kserve.io/s3-usehttps", "S3_USE_HTTPS")
            host = endpoint
            url = ("http://" if use_https == "0" else "https://") + endpoint
        if use_https:
            envs["S3_USE_HTTPS"] = use_https
        envs["S3_ENDPOINT"] = host
        envs["AWS_ENDPOINT_URL"] = url
    for annotation, key, env in (
            ("serving.kserve.io/s3-verifyssl", "S3_VERIFY_SSL", "S3_VERIFY_SSL"),
            ("serving.kserve.io/s3-useanoncredential", "awsAnonymousCredential", "awsAnonymousCredential"),
            ("serving.kserve.io/s3-region", "AWS_DEFAULT_REGION", "AWS_DEFAULT_REGION"),
            ("serving.kserve.io/s3-usevirtualbucket", "S3_USER_VIRTUAL_BUCKET", "S3_USER_VIRTUAL_BUCKET"),
            ("serving.kserve.io/s3-useaccelerate", "S3_USE_ACCELERATE", "S3_USE_ACCELERATE"),
            ("serving.kserve.io/s3-cabundle", "AWS_CA_BUNDLE", "AWS_CA_BUNDLE")):
        v = value(annotation, key)
        if v:
            envs[env] = v
    return envs


def kserve_credentials(obj, ns, install):
    """pkg/credentials/service_account_credentials.go CreateSecretVolumeAndEnv, as
    pkg/webhook/admission/pod/storage_initializer_injector.go calls it for a storageUri without a
    storage spec: the predictor's serviceAccountName (else "default"); a ServiceAccount that is
    not found gives no credentials at all (logged, not an error); the Secret named by the
    storage-secret annotation of the InferenceService, else every Secret the ServiceAccount lists;
    a Secret with the S3 secret-key key gives the S3 env (later Secrets override earlier ones)."""
    notes = []
    sa_name = obj["spec"]["predictor"].get("serviceAccountName") or "default"
    sa = ns.service_accounts.get(sa_name)
    if sa is None:
        notes.append(f"ServiceAccount {sa_name} not found: no credentials (KServe logs and goes on)")
        return {}, notes
    if "eks.amazonaws.com/role-arn" in (sa["metadata"].get("annotations") or {}):
        notes.append("IRSA annotation on the ServiceAccount is not played here")
    annotation = KSERVE_SECRET_ANNOTATION[install]
    isvc_ann = obj["metadata"].get("annotations") or {}
    names = [isvc_ann[annotation]] if annotation in isvc_ann else \
        [ref["name"] for ref in sa.get("secrets") or []]
    envs = {}
    for name in names:
        secret = ns.secret(name)
        if secret is None:
            # mountSecretCredential returns the error: the webhook refuses the pod.
            raise Failed("download_failed", f'secrets "{name}" not found (KServe\'s pod webhook '
                         f"refuses the predictor pod)")
        secret = dict(secret, name=name)
        if "AWS_SECRET_ACCESS_KEY" in secret["data"]:
            envs.update(kserve_s3_envs(secret))
            notes.append(f"S3 credentials from Secret {name}")
        else:
            notes.append(f"Secret {name} has no AWS_SECRET_ACCESS_KEY: not S3 (GCS/Azure/HTTPS/HF not played)")
    return envs, notes


def kserve_download(obj, ns, model_dir, work, install):
    uri = obj["spec"]["predictor"]["model"].get("storageUri")
    if not uri:
        raise Failed("download_failed", "no spec.predictor.model.storageUri")
    envs, notes = kserve_credentials(obj, ns, install)
    py = os.environ.get("M2S_SANDBOX_KSERVE_STORAGE_PYTHON")
    if not py or not os.path.exists(py):
        raise Setup(f"no kserve-storage venv (M2S_SANDBOX_KSERVE_STORAGE_PYTHON={py!r})")
    # python/storage-initializer/scripts/initializer-entrypoint (v0.20.0): Storage.download_files
    # over the (uri, dest) argument pairs; any exception exits 1.
    script = ("import sys\n"
              "from kserve_storage import Storage\n"
              "from kserve_storage.logging import configure_logging\n"
              "configure_logging()\n"
              "Storage.download_files([sys.argv[1]], [sys.argv[2]])\n")
    env = tool_env(dict(envs, HOME=work))
    log = os.path.join(work, "download.log")
    with open(log, "w") as f:
        f.write(f"# env names: {sorted(envs)}\n")
        f.flush()
        r = subprocess.run([py, "-c", script, uri, model_dir], env=env, stdout=f,
                           stderr=subprocess.STDOUT, timeout=OPTS["download_timeout"])
    if r.returncode != 0:
        raise Failed("download_failed", last_error(log) or f"storage-initializer exited {r.returncode}",
                     notes=notes)
    return uri, "kserve-storage " + kserve_storage_version(py), notes


def kserve_storage_version(py):
    r = subprocess.run([py, "-c", "import importlib.metadata as m; print(m.version('kserve-storage'))"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "?"


def kserve_serve_env(obj, model_dir):
    """config/runtimes/kserve-mlserver.yaml (and the Helm chart's copy, which adds MODELS_DIR)
    plus pkg/apis/serving/v1beta1/inference_service_defaults.go SetMlServerDefaults: with a
    storageUri, MLSERVER_MODEL_NAME is the InferenceService's name and MLSERVER_MODEL_URI
    /mnt/models; the modelClass label of modelFormat mlflow is mlserver_mlflow.MLflowRuntime.
    The image's CMD is `mlserver start $MLSERVER_MODELS_DIR` (/mnt/models)."""
    name = obj["metadata"]["name"]
    model = obj["spec"]["predictor"]["model"]
    fmt = (model.get("modelFormat") or {}).get("name")
    classes = {"mlflow": "mlserver_mlflow.MLflowRuntime", "xgboost": "mlserver_xgboost.XGBoostModel",
               "lightgbm": "mlserver_lightgbm.LightGBMModel"}
    env = {"MLSERVER_MODEL_IMPLEMENTATION": classes.get(fmt, "mlserver_sklearn.SKLearnModel"),
           "MLSERVER_MODEL_NAME": name, "MLSERVER_MODEL_URI": model_dir, "MODELS_DIR": model_dir}
    for e in model.get("env") or []:  # the predictor's own env comes after the defaults
        if "value" in e:
            env[e["name"]] = e["value"]
    return env, name


# ------------------------------------------------------------------------------------------------
# Seldon Core 1.18 (protocol v2)


def seldon_v1_download(obj, ns, model_dir, work):
    """operator/controllers/model_initializer_injector.go InjectModelInitializer: an init
    container of seldonio/rclone-storage-initializer (components/rclone-storage-initializer/
    Dockerfile: ENTRYPOINT ["rclone", "copy"], env RCLONE_CONFIG_GS_TYPE, RCLONE_CONFIG_GS_ANONYMOUS,
    RCLONE_VERBOSE=1) with args [modelUri, /mnt/models], the ServiceAccount's S3 env
    (operator/controllers/resources/credentials) and envFrom the envSecretRefName Secret
    (seldondeployment_prepackaged_servers.go extractEnvSecretRefName: the graph's, else the
    operator's default, empty here)."""
    pred = obj["spec"]["predictors"][0]
    graph = pred["graph"]
    uri = graph.get("modelUri")
    if not uri:
        raise Failed("download_failed", "no graph.modelUri")
    notes = []
    env = {"RCLONE_CONFIG_GS_TYPE": "google cloud storage", "RCLONE_CONFIG_GS_ANONYMOUS": "true",
           "RCLONE_VERBOSE": "1"}
    # container env: the ServiceAccount's S3 secret (keys awsAccessKeyID/awsSecretAccessKey in
    # operator/config/manager/configmap.yaml credentials), annotations for the endpoint.
    pod_spec = (pred.get("componentSpecs") or [{}])[0].get("spec") or {}
    sa_name = graph.get("serviceAccountName") or pod_spec.get("serviceAccountName") or "default"
    sa = ns.service_accounts.get(sa_name)
    container_env = {}
    for ref in (sa or {}).get("secrets") or []:
        s = ns.secret(ref["name"])
        if s and "awsSecretAccessKey" in s["data"]:
            container_env["AWS_ACCESS_KEY_ID"] = s["data"].get("awsAccessKeyID", "")
            container_env["AWS_SECRET_ACCESS_KEY"] = s["data"]["awsSecretAccessKey"]
            ann = s["annotations"]
            ep = ann.get("machinelearning.seldon.io/s3-endpoint") or ann.get("serving.kubeflow.org/s3-endpoint")
            if ep:
                https = ann.get("machinelearning.seldon.io/s3-usehttps") or ann.get("serving.kubeflow.org/s3-usehttps")
                container_env["S3_ENDPOINT"] = ep
                container_env["AWS_ENDPOINT_URL"] = ("http://" if https == "0" else "https://") + ep
                if https is not None:
                    container_env["S3_USE_HTTPS"] = https
            notes.append(f"ServiceAccount {sa_name}: S3 env from Secret {ref['name']}")
    secret_name = graph.get("envSecretRefName")
    if secret_name:
        s = ns.secret(secret_name)
        if s is None:
            # envFrom of a missing Secret: the pod stays in CreateContainerConfigError.
            raise Failed("download_failed", f'CreateContainerConfigError: secret "{secret_name}" not found')
        env.update(s["data"])  # envFrom the Secret
        notes.append(f"envFrom Secret {secret_name}: {sorted(s['data'])}")
    else:
        notes.append("no envSecretRefName: rclone has only the image's remotes")
    env.update(container_env)  # `env` wins over `envFrom` in a container
    return rclone_copy(uri, model_dir, work, env, "seldon-v1", notes)


def rclone_bin():
    rc = os.environ.get("M2S_SANDBOX_RCLONE") or shutil.which("rclone")
    if not rc or not os.path.exists(rc):
        raise Setup("no rclone (M2S_SANDBOX_RCLONE); run tests/sandbox/install.sh")
    return rc


def rclone_version(rc):
    r = subprocess.run([rc, "version"], capture_output=True, text=True)
    return (r.stdout.split("\n")[0].split() + ["?", "?"])[1]


def rclone_copy(uri, model_dir, work, env, target, notes):
    rc = rclone_bin()
    log = os.path.join(work, "download.log")
    conf = os.path.join(work, "rclone.conf")
    open(conf, "w").close()  # the image has no config file: only env remotes
    env = tool_env(dict(env, HOME=work, RCLONE_CONFIG=conf, **rclone_retry_env()))
    with open(log, "w") as f:
        f.write(f"# env names: {sorted(env)}\n")
        f.flush()
        r = subprocess.run([rc, "copy", uri, model_dir], env=env, stdout=f,
                           stderr=subprocess.STDOUT, timeout=OPTS["download_timeout"])
    if r.returncode != 0:
        raise Failed("download_failed", last_error(log) or f"rclone exited {r.returncode}", notes=notes)
    # rclone exits 0 having copied nothing when the prefix does not exist; the init container
    # then succeeds and the server finds an empty /mnt/models. Refused here, as the empty model
    # directory cannot load (the server would report it at load time).
    if not listing(model_dir):
        raise Failed("download_failed", f"rclone copy {uri} exited 0 but copied no file "
                     f"(nothing under that prefix)", notes=notes)
    return uri, "rclone " + rclone_version(rc), notes


def seldon_v1_serve_env(obj, model_dir):
    """operator/controllers/mlserver.go getMLServerEnvVars / getMLServerModelImplementation for
    MLFLOW_SERVER with protocol v2; the image comes from predictor_servers (operator/config/
    manager/configmap.yaml, helm values: MLFLOW_SERVER v2 = seldonio/mlserver:1.3.5-mlflow)."""
    pred = obj["spec"]["predictors"][0]
    graph = pred["graph"]
    env = {"MLSERVER_MODEL_IMPLEMENTATION": "mlserver_mlflow.MLflowRuntime",
           "MLSERVER_MODEL_NAME": graph["name"], "MLSERVER_MODEL_VERSION": "v1",
           "MLSERVER_MODEL_URI": model_dir,
           "TEMPO_RUNTIME_OPTIONS": json.dumps({"k8s_options": {
               "defaultRuntime": "tempo.seldon.SeldonKubernetesRuntime",
               "namespace": obj["metadata"].get("namespace", "default")}})}
    for cs in pred.get("componentSpecs") or []:
        for c in (cs.get("spec") or {}).get("containers") or []:
            if c.get("name") == graph["name"]:
                for e in c.get("env") or []:  # mergeMLServerContainer: the user's env wins
                    if "value" in e:
                        env[e["name"]] = e["value"]
    return env, graph["name"]


# ------------------------------------------------------------------------------------------------
# Seldon Core 2.10.2


def parse_rclone_config(raw):
    """scheduler/pkg/agent/rclone/rclone.go parseRcloneConfig: JSON, else YAML, of
    {name, type, parameters}; name, type and parameters are required."""
    try:
        cfg = json.loads(raw)
    except ValueError:
        cfg = yaml_load(raw)
    if not isinstance(cfg, dict) or not all(cfg.get(k) for k in ("name", "type", "parameters")):
        raise Failed("download_failed", "rclone config in the Secret lacks name, type or parameters "
                     "(Key: 'RcloneConfigCreate.Name' Error:Field validation ... failed on the 'required' tag)")
    # RcloneConfigCreate.Parameters is a map[string]string. A JSON boolean or number there fails
    # json.Unmarshal, and the fallback yaml.v2 (v2.4.0 decode.go: a resolved scalar into a string
    # takes its text) accepts it as the scalar's text; null, lists and maps fail both.
    params = {}
    for k, v in cfg["parameters"].items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (int, float)):
            v = str(v)
        elif not isinstance(v, str):
            raise Failed("download_failed", f"Failed to unmarshall config as json or yaml: "
                         f"parameter {k} is {type(v).__name__}, not a string")
        params[k] = v
    cfg["parameters"] = params
    return cfg


def yaml_load(raw):
    try:
        import yaml  # noqa: PLC0415
        return yaml.safe_load(raw)
    except ImportError:
        pass
    # The runtime venvs have PyYAML (MLflow needs it).
    py = os.path.join(runtime_venv("1.7.1"), "bin", "python")
    r = subprocess.run([py, "-c", "import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
                       input=raw, capture_output=True, text=True)
    if r.returncode != 0:
        raise Failed("download_failed", "Failed to unmarshall config as json or yaml")
    return json.loads(r.stdout)


def connection_string(uri, cfg):
    """rclone.go createUriWithConfig: the URI's remote name must be the config's name; it is
    replaced by `:type,key=value,...` (values with ':' or ',' quoted)."""
    idx = uri.find(":")
    if idx <= 0:
        raise Failed("download_failed", f"Failed to find : in {uri} for rclone name match")
    remote = uri[:idx]
    if cfg["name"] != remote:
        raise Failed("download_failed", f"name from URI ({remote}) does not match secret "
                     f"({cfg['name']}); are you using the right storage config?")
    parts = [":" + cfg["type"]]
    for k, v in cfg["parameters"].items():
        v = str(v)
        if any(ch in v for ch in ":,"):
            v = '"' + v.replace('"', '""') + '"'
        parts.append(f"{k}={v}")
    return uri.replace(remote, ",".join(parts), 1)


def rc_call(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=OPTS["download_timeout"]) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            detail = json.loads(e.read()).get("error", "")
        except ValueError:
            detail = ""
        raise Failed("download_failed", f"rclone {path}: {detail or e}")
    except (urllib.error.URLError, OSError) as e:  # refused before rcd listens, or timed out
        raise Failed("download_failed", f"rclone {path}: {e}")


def seldon_v2_download(obj, ns, work, preloaded):
    """scheduler/pkg/agent/agent_svc_manager.go getArtifactConfig: spec.secretName → the
    Secret's only key (k8s/secrets.go GetSecretConfig: exactly one key, else "Secret does not
    have 1 key"); rclone/rclone.go Copy: `/sync/copy` to the rclone server (ServerConfig
    mlserver: `rclone rcd --rc-no-auth --config=/rclone/rclone.conf`) with srcFs the connection
    string (or the URI as is, for a remote preloaded from the agent's config secrets) and
    createEmptySrcDirs; then "Even if we had success from rclone the src may be empty": no
    destination directory → "Failed to download from <uri> any files"."""
    spec = obj["spec"]
    uri = spec.get("storageUri")
    if not uri:
        raise Failed("download_failed", "no spec.storageUri")
    name = obj["metadata"]["name"]
    notes = []
    rc = rclone_bin()
    config = None
    if spec.get("secretName"):
        s = ns.secret(spec["secretName"])
        if s is None:
            raise Failed("download_failed", f'secrets "{spec["secretName"]}" not found')
        if len(s["data"]) != 1:
            raise Failed("download_failed", f"Secret does not have 1 key {spec['secretName']}")
        config = parse_rclone_config(next(iter(s["data"].values())))
        notes.append(f"rclone config from Secret {spec['secretName']} (remote {config['name']})")
    conf = os.path.join(work, "rclone.conf")
    open(conf, "w").close()
    port = free_port()
    log = os.path.join(work, "download.log")
    logf = open(log, "w")
    proc = subprocess.Popen([rc, "rcd", "--rc-no-auth", f"--config={conf}",
                             f"--rc-addr=127.0.0.1:{port}", "-v"],
                            env=tool_env(dict(HOME=work, **rclone_retry_env())), stdout=logf,
                            stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 20
        while True:
            try:
                rc_call(port, "rc/noop", {"foo": "bar"})  # RCloneClient.Ready
                break
            except (Failed, urllib.error.URLError, OSError):
                if time.time() > deadline or proc.poll() is not None:
                    raise Setup(f"rclone rcd did not start (log {log})")
                time.sleep(0.2)
        # rclone_config.go loadRcloneSecretsConfiguration: the agent's preloaded remotes.
        for secret_name in preloaded:
            s = ns.secret(secret_name)
            if s is None or len(s["data"]) != 1:
                raise Failed("download_failed", f"Secret does not have 1 key {secret_name}")
            cfg = parse_rclone_config(next(iter(s["data"].values())))
            rc_call(port, "config/create", {"name": cfg["name"], "type": cfg["type"],
                                            "parameters": cfg["parameters"], "opt": cfg.get("opt") or {}})
            notes.append(f"preloaded remote {cfg['name']} from Secret {secret_name}")
        src = connection_string(uri, config) if config else uri
        # CreateRcloneModelHash: <model>-<uri> hashed; the agent's model name is versioned.
        versioned = f"{name}_1"
        dst = os.path.join(work, "rclone", str(zlib.crc32(f"{versioned}-{uri}".encode())))
        rc_call(port, "sync/copy", {"srcFs": src, "dstFs": dst, "createEmptySrcDirs": True})
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        logf.close()
    if not os.path.exists(dst):
        raise Failed("download_failed", f"Failed to download from {uri} any files", notes=notes)
    return uri, dst, "rclone " + rclone_version(rc), notes


def seldon_v2_repository(obj, downloaded, repo):
    """scheduler/pkg/agent/repository/model_repository.go DownloadModelVersion and
    mlserver/mlserver.go: the version folder is the top level when it has no model-settings.json
    (FindModelVersionFolder); it is copied to <repo>/<model>_1/1; without a model-settings.json
    one is made from the first requirement the agent knows (mlserver/settings.go
    getModelSettings: "mlflow" → implementation mlserver_mlflow.MLflowRuntime, uri "./"; none
    known → "Can't create model-settings from requirements"); then name and version are set."""
    versioned = f"{obj['metadata']['name']}_1"
    # An MLflow artifact directory has no model-settings.json and no numbered version folders:
    # FindModelVersionFolder returns the top level.
    dest = os.path.join(repo, versioned, "1")
    shutil.copytree(downloaded, dest)
    settings_path = os.path.join(dest, "model-settings.json")
    if not os.path.exists(settings_path):
        known = {"mlflow": {"implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": "./"}}}
        order = ["alibi-detect", "alibi-explain", "lightgbm", "mlflow", "python", "sklearn", "xgboost"]
        reqs = obj["spec"].get("requirements") or []
        chosen = next((r for r in reqs if r in order), None)
        if chosen is None:
            raise Failed("load_failed", f"Can't create model-settings from requirements {reqs}")
        if chosen not in known:
            raise Failed("load_failed", f"requirement {chosen!r} comes before mlflow in {reqs}: the "
                         f"agent writes that runtime's model-settings, not MLflow's")
        settings = dict(known[chosen])
        with open(settings_path, "w") as f:
            json.dump(settings, f)
    with open(settings_path) as f:
        settings = json.load(f)
    settings["name"] = versioned
    settings.setdefault("parameters", {})["version"] = "1"
    with open(settings_path, "w") as f:
        json.dump(settings, f)
    return versioned


# ------------------------------------------------------------------------------------------------
# MLServer


def last_error(log):
    """The downloader's error: the last line that says so, with rclone's "caused by:" line."""
    lines = [l for l in tail(log, 200) if l.strip()]
    keys = ("Error", "error", "Exception", "Failed", "failed", "ERROR")
    for i in range(len(lines) - 1, -1, -1):
        l = lines[i]
        if any(k in l for k in keys) and not l.lstrip().startswith(("Traceback", "caused by")):
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return (l.strip() + (" " + nxt if nxt.startswith("caused by") else ""))[-600:]
    return lines[-1].strip()[-600:] if lines else ""


class MLServer:
    def __init__(self, venv, env, models_dir, work):
        self.venv, self.work = venv, work
        self.http, self.grpc, self.metrics = free_port(), free_port(), free_port()
        self.log = os.path.join(work, "mlserver.log")
        env = dict(env)
        env.update({"MLSERVER_HTTP_PORT": str(self.http), "MLSERVER_GRPC_PORT": str(self.grpc),
                    "MLSERVER_METRICS_PORT": str(self.metrics), "MLSERVER_HOST": "127.0.0.1"})
        full = tool_env({"HOME": work, "PATH": os.path.join(venv, "bin") + ":/usr/bin:/bin",
                         "VIRTUAL_ENV": venv})
        full.update(env)
        self.env = env
        self.logf = open(self.log, "w")
        self.logf.write(f"# mlserver start {models_dir}\n# env: {json.dumps(env, sort_keys=True)}\n")
        self.logf.flush()
        # The image's CMD: `mlserver start $MLSERVER_MODELS_DIR` (MLServer Dockerfile).
        self.proc = subprocess.Popen([os.path.join(venv, "bin", "mlserver"), "start", models_dir],
                                     env=full, cwd=work, stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.http}{path}"

    def request(self, method, path, body=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url(path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else {})
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, {"error": raw.decode(errors="replace")}

    def wait(self, path, timeout):
        """Waits for path to answer 200; False when the server exited or time ran out."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, _ = self.request("GET", path, timeout=3)
                if status == 200:
                    return True
            except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
                pass
            time.sleep(0.3)
        return False

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self.logf.close()

    def load_error(self):
        """The model's load error as MLServer logged it: the first exception line of a traceback
        (e.g. "mlflow.exceptions.MlflowException: Unrecognized serialization format: skops"); the
        server's own shutdown after a failed start logs more, later, that is not the cause."""
        import re

        lines = tail(self.log, 2000)
        pattern = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit))(: |$)")
        for l in lines:
            if pattern.match(l.strip()):
                return l.strip()[-600:]
        for l in lines:
            if " ERROR " in l or "[ERROR]" in l or "- ERROR -" in l:
                return l.strip()[-600:]
        return (lines[-1].strip() if lines else "no log")[-600:]


# MLflow schema types → V2 datatypes (mlserver/codecs + mlserver_mlflow/metadata.py).
V2_TYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32",
            "boolean": "BOOL", "string": "BYTES", "binary": "BYTES", "datetime": "BYTES"}


def read_mlmodel_signature(model_dir):
    """The input columns' types from MLmodel's signature (its `inputs` is a JSON string)."""
    path = os.path.join(model_dir, "MLmodel")
    types = {}
    try:
        text = open(path).read()
    except OSError:
        return types
    marker = "  inputs: '"
    i = text.find(marker)
    if i < 0:
        return types
    j = i + len(marker)
    buf = []
    # A YAML single-quoted scalar: '' is a quote; it may be folded over lines.
    while j < len(text):
        ch = text[j]
        if ch == "'":
            if text[j + 1:j + 2] == "'":
                buf.append("'")
                j += 2
                continue
            break
        buf.append(ch)
        j += 1
    raw = " ".join(part.strip() for part in "".join(buf).split("\n"))
    try:
        for col in json.loads(raw):
            if "name" in col:
                types[col["name"]] = col.get("type")
    except ValueError:
        pass
    return types


def v2_request(model_dir):
    """One input per column of the model's input example, shape [n], the signature's datatype."""
    path = os.path.join(model_dir, "input_example.json")
    try:
        example = json.load(open(path))
    except (OSError, ValueError) as e:
        raise Failed("infer_failed", f"no input example in the model ({path}): {e}")
    if isinstance(example, dict) and "dataframe_split" in example:
        example = example["dataframe_split"]
    if not (isinstance(example, dict) and "columns" in example and "data" in example):
        raise Failed("infer_failed", "input_example.json is not a DataFrame in split orient")
    types = read_mlmodel_signature(model_dir)
    inputs = []
    for i, col in enumerate(example["columns"]):
        data = [row[i] for row in example["data"]]
        dt = V2_TYPES.get(types.get(col))
        if dt is None:
            dt = "FP64" if any(isinstance(v, float) for v in data) else \
                "BOOL" if all(isinstance(v, bool) for v in data) else \
                "INT64" if all(isinstance(v, int) for v in data) else "BYTES"
        inputs.append({"name": str(col), "shape": [len(data)], "datatype": dt, "data": data})
    return {"inputs": inputs}


def serve(target, obj, model_dir, work, venv, timeout, started):
    if target == "kserve":
        env, model_name = kserve_serve_env(obj, model_dir)
        server = MLServer(venv, env, model_dir, work)
        ready_path = f"/v2/models/{model_name}/ready"
    elif target == "seldon-v1":
        env, model_name = seldon_v1_serve_env(obj, model_dir)
        server = MLServer(venv, env, model_dir, work)
        ready_path = f"/v2/models/{model_name}/ready"
    else:
        repo = os.path.join(work, "models")
        os.makedirs(repo, exist_ok=True)
        model_name = seldon_v2_repository(obj, model_dir, repo)
        # operator/config/serverconfigs/mlserver.yaml: the mlserver container's env.
        env = {"MLSERVER_MODELS_DIR": repo, "MLSERVER_PARALLEL_WORKERS": "1",
               "MLSERVER_LOAD_MODELS_AT_STARTUP": "false",
               "MLSERVER_GRPC_MAX_MESSAGE_LENGTH": "1048576000", "MLSERVER_DEBUG": "false"}
        server = MLServer(venv, env, repo, work)
        ready_path = None
    try:
        t0 = time.time()
        if ready_path is None:
            # The agent loads through MLServer's repository API (gRPC RepositoryModelLoad in
            # scheduler/pkg/agent/client.go); the HTTP route is the same call.
            if not server.wait("/v2/health/live", timeout):
                raise Failed("load_failed", "MLServer did not start: " + server.load_error())
            status, body = server.request("POST", f"/v2/repository/models/{model_name}/load",
                                          {}, timeout=timeout)
            if status != 200:
                raise Failed("load_failed", (body.get("error") if isinstance(body, dict) else None)
                             or server.load_error())
        elif not server.wait(ready_path, timeout):
            raise Failed("load_failed", server.load_error())
        load_s = time.time() - t0
        t1 = time.time()
        request = v2_request(model_dir if target != "seldon-v2" else
                             os.path.join(work, "models", model_name, "1"))
        with open(os.path.join(work, "request.json"), "w") as f:
            json.dump(request, f)
        status, body = server.request("POST", f"/v2/models/{model_name}/infer", request, timeout=timeout)
        with open(os.path.join(work, "response.json"), "w") as f:
            json.dump(body, f)
        if status != 200:
            raise Failed("infer_failed", f"HTTP {status}: {body.get('error', body)}")
        outputs = body.get("outputs") or []
        if not outputs:
            raise Failed("infer_failed", f"no outputs in {body}")
        prediction = outputs[0].get("data")
        return model_name, prediction, {"load": round(load_s, 2), "infer": round(time.time() - t1, 2)}
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--target", required=True, choices=sorted(KINDS))
    ap.add_argument("--object", required=True)
    ap.add_argument("--resources", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runtime", choices=RUNTIMES,
                    help="MLServer to serve with (default: the object's seldonio/mlserver image, else "
                         "the stack's default: kserve 1.5.0 (helm) / 1.7.1 (kustomize), seldon-v1 "
                         "1.3.5, seldon-v2 1.7.1)")
    ap.add_argument("--kserve-install", choices=["helm", "kustomize"], default="helm",
                    help="KServe v0.20.0 as its Helm chart (mlserver 1.5.0) or its kustomize "
                         "manifests (mlserver 1.7.1) install it")
    ap.add_argument("--seldon-v2-preloaded", nargs="*", default=[],
                    help="Secrets the Seldon 2 agent preloads as rclone remotes")
    ap.add_argument("--expect", help="JSON list the prediction must equal")
    ap.add_argument("--timeout", type=float, default=180, help="seconds for the model to load and answer")
    ap.add_argument("--download-timeout", type=float, default=120)
    ap.add_argument("--stack-retries", action="store_true",
                    help="rclone with its default retries, as in the pods (a wrong endpoint then "
                         "takes minutes to fail)")
    args = ap.parse_args()
    OPTS.update(download_timeout=args.download_timeout, fast_retries=not args.stack_retries)

    started = time.time()
    result = {"target": args.target, "stage": None, "work": os.path.abspath(args.work)}
    seconds = {}
    try:
        obj = load_json(args.object)
        ns = Namespace(load_json(args.resources))
        if obj.get("kind") != KINDS[args.target]:
            raise Setup(f"--target {args.target} wants a {KINDS[args.target]}, got {obj.get('kind')}")
        if args.runtime:
            version, why = args.runtime, "--runtime"
        else:
            version, why = runtime_for(args.target, obj, args.kserve_install)
        venv = runtime_venv(version)
        result["runtime"] = runtime_label(venv)
        result["runtime_from"] = why
        if args.target == "seldon-v1":
            protocol = obj["spec"].get("protocol", "seldon")
            if protocol != "v2":
                raise Setup(f"spec.protocol is {protocol!r}: Seldon runs seldonio/mlflowserver "
                            f"(the seldon protocol), which the harness does not play; set protocol v2")
            impl = obj["spec"]["predictors"][0]["graph"].get("implementation")
            if impl != "MLFLOW_SERVER":
                raise Setup(f"graph implementation {impl!r}: the harness plays MLFLOW_SERVER")
        shutil.rmtree(args.work, ignore_errors=True)
        os.makedirs(args.work)
        work = os.path.abspath(args.work)
        model_dir = os.path.join(work, "mnt-models")

        t0 = time.time()
        if args.target == "kserve":
            uri, downloader, notes = kserve_download(obj, ns, model_dir, work, args.kserve_install)
            served_dir = model_dir
        elif args.target == "seldon-v1":
            uri, downloader, notes = seldon_v1_download(obj, ns, model_dir, work)
            served_dir = model_dir
        else:
            uri, served_dir, downloader, notes = seldon_v2_download(obj, ns, work, args.seldon_v2_preloaded)
        seconds["download"] = round(time.time() - t0, 2)
        result.update(uri=uri, downloader=downloader, notes=notes, files=listing(served_dir))

        model_name, prediction, times = serve(args.target, obj, served_dir, work, venv,
                                              args.timeout, started)
        seconds.update(times)
        result.update(model_name=model_name, prediction=prediction)
        if args.expect is not None and prediction != json.loads(args.expect):
            raise Failed("wrong_prediction", f"prediction {prediction} != expected {args.expect}")
        result["stage"] = "served"
        code = 0
    except Failed as f:
        result.update(stage=f.stage, error=f.error, **f.extra)
        code = 1
    except Setup as e:
        result.update(stage="setup_failed", error=str(e))
        code = 2
    except subprocess.TimeoutExpired as e:
        result.update(stage="download_failed", error=f"timed out: {e}")
        code = 1
    except Exception as e:  # noqa: BLE001 - a harness bug, said as such
        import traceback

        result.update(stage="setup_failed", error=f"harness error: {e!r}",
                      traceback=traceback.format_exc().splitlines()[-6:])
        code = 2
    seconds["total"] = round(time.time() - started, 2)
    result["seconds"] = seconds
    print(json.dumps(result))
    sys.exit(code)


if __name__ == "__main__":
    main()
