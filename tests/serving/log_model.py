#!/usr/bin/env python3
"""Logs and registers a scikit-learn model the way users do, against the sandbox's MLflow.

Run it with the sandbox's MLflow venv (`$M2S_SANDBOX_MLFLOW_PYTHON`, in `$M2S_SANDBOX_DIR/env`):

    $M2S_SANDBOX_MLFLOW_PYTHON tests/serving/log_model.py --name NAME [--format cloudpickle]
        [--variant N] [--missing-artifacts] [--alias ALIAS]

`mlflow.sklearn.log_model(..., input_example=..., registered_model_name=...)` on a model trained on
scikit-learn's bundled iris data (no download). Prints one JSON object:

    {"name", "version", "source", "run_id", "model_id", "artifact_location", "storage_uri",
     "format", "variant", "mlflow_version", "sklearn_version", "input_example", "prediction"}

- `source`: the model version's source as MLflow registered it (`models:/m-<id>` on MLflow 3.x,
  the run's artifact location on 2.x).
- `artifact_location`: where MLflow says the files are (`mlflow-artifacts:/<exp>/models/m-<id>/
  artifacts` behind the sandbox's proxy); `storage_uri`: the same place in the bucket
  (`$M2S_SANDBOX_STORAGE_ROOT/<exp>/models/m-<id>/artifacts`), what m2s should write.
- `prediction`: the fitted estimator's own `predict` on the input example: what serving it must
  answer.

Flags:
- `--format cloudpickle|pickle|skops|default`: `serialization_format`; `default` passes none, so
  MLflow's own default is used (skops on MLflow 3.17, cloudpickle on 2.x). skops on MLflow 2.x
  exits 2 (that line has no skops format).
- `--variant N`: trained differently (labels rotated by N), so versions predict differently on
  the same input example.
- `--missing-artifacts`: after registering, deletes the version's objects from the bucket (the
  registry still points there): a version whose artifacts are missing.
- `--alias ALIAS`: sets the alias on the new version (MLflow 2.3+).

Environment: MLFLOW_TRACKING_URI (default $M2S_SANDBOX_MLFLOW_URL); for --missing-artifacts and
`storage_uri`, M2S_SANDBOX_S3_ENDPOINT, M2S_SANDBOX_S3_BUCKET, M2S_SANDBOX_STORAGE_ROOT and the
sandbox's keys (M2S_SANDBOX_S3_ACCESS_KEY / _SECRET_KEY).
"""
import argparse
import json
import os
import sys
import warnings


def emit(obj):
    out = getattr(sys, "real_stdout", sys.stdout)
    out.write(json.dumps(obj) + "\n")
    out.flush()


def fail(msg, code=1):
    emit({"error": msg})
    print(f"log_model.py: {msg}", file=sys.stderr)
    sys.exit(code)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True, help="registered model name")
    ap.add_argument("--experiment", default="m2s-serving", help="experiment name")
    ap.add_argument("--format", default="cloudpickle",
                    choices=["cloudpickle", "pickle", "skops", "default"])
    ap.add_argument("--variant", type=int, default=0)
    ap.add_argument("--missing-artifacts", action="store_true")
    ap.add_argument("--alias", default=None)
    args = ap.parse_args()

    warnings.filterwarnings("ignore")
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("M2S_SANDBOX_MLFLOW_URL")
    if not tracking:
        fail("set MLFLOW_TRACKING_URI or M2S_SANDBOX_MLFLOW_URL (source $M2S_SANDBOX_DIR/env)")

    import mlflow
    import mlflow.sklearn
    import numpy as np
    import sklearn
    from mlflow import MlflowClient
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow_major = int(mlflow.__version__.split(".")[0])
    if args.format == "skops" and mlflow_major < 3:
        fail(f"MLflow {mlflow.__version__} has no skops serialization format (MLflow 3.x only)", 2)

    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment(args.experiment)

    # The iris data ship with scikit-learn; column names as a user would write them.
    iris = load_iris(as_frame=True)
    X = iris.data.copy()
    X.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    # A variant learns rotated labels: the same rows then predict other classes.
    y = (iris.target + args.variant) % 3
    model = LogisticRegression(max_iter=1000, random_state=0).fit(X, y)
    # One row of each class, as DataFrame: what users pass as input_example.
    example = X.iloc[[0, 60, 120]].reset_index(drop=True)
    prediction = model.predict(example).tolist()

    kwargs = {"input_example": example, "registered_model_name": args.name}
    if args.format != "default":
        kwargs["serialization_format"] = args.format
    # MLflow 3 names the model with `name` (artifact_path is deprecated there).
    if mlflow_major >= 3:
        kwargs["name"] = "model"
    else:
        kwargs["artifact_path"] = "model"
    with mlflow.start_run() as run:
        mlflow.log_param("variant", args.variant)
        info = mlflow.sklearn.log_model(model, **kwargs)

    client = MlflowClient()
    version = str(info.registered_model_version)
    mv = client.get_model_version(args.name, version)
    model_id = getattr(info, "model_id", None)
    if model_id:
        # MLflow 3: the logged model keeps its own artifact location (<exp>/models/m-<id>/artifacts).
        artifact_location = client.get_logged_model(model_id).artifact_location
    else:
        # MLflow 2: under the run's artifact root.
        artifact_location = run.info.artifact_uri.rstrip("/") + "/model"

    storage_uri = None
    root = os.environ.get("M2S_SANDBOX_STORAGE_ROOT")
    if root and artifact_location.startswith("mlflow-artifacts:"):
        rel = artifact_location[len("mlflow-artifacts:"):].lstrip("/")
        storage_uri = root.rstrip("/") + "/" + rel

    if args.alias:
        client.set_registered_model_alias(args.name, args.alias, version)

    flavor_format = None
    try:
        from mlflow.models import Model
        from mlflow.artifacts import download_artifacts  # noqa: F401

        mlmodel = Model.load(info.model_uri)
        flavor_format = mlmodel.flavors.get("sklearn", {}).get("serialization_format")
    except Exception:  # noqa: BLE001 - informative only
        pass

    if args.missing_artifacts:
        if not storage_uri:
            fail("--missing-artifacts needs M2S_SANDBOX_STORAGE_ROOT and an mlflow-artifacts: location")
        delete_objects(storage_uri)

    emit({
        "name": args.name,
        "version": version,
        "source": mv.source,
        "run_id": run.info.run_id,
        "model_id": model_id,
        "artifact_location": artifact_location,
        "storage_uri": storage_uri,
        "format": flavor_format or args.format,
        "variant": args.variant,
        "missing_artifacts": args.missing_artifacts,
        "mlflow_version": mlflow.__version__,
        "sklearn_version": sklearn.__version__,
        "input_example": json.loads(example.to_json(orient="split", index=False)),
        "prediction": np.asarray(prediction).tolist(),
    })


def delete_objects(storage_uri):
    """Deletes every object under storage_uri (s3://bucket/prefix) from the sandbox's bucket."""
    import boto3

    bucket, _, prefix = storage_uri[len("s3://"):].partition("/")
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["M2S_SANDBOX_S3_ENDPOINT"],
        aws_access_key_id=os.environ.get("M2S_SANDBOX_S3_ACCESS_KEY", "m2s-sandbox"),
        aws_secret_access_key=os.environ.get("M2S_SANDBOX_S3_SECRET_KEY", "m2s-sandbox-secret"),
        region_name="us-east-1",
    )
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        keys += [{"Key": o["Key"]} for o in page.get("Contents", [])]
    if not keys:
        fail(f"no objects under {storage_uri} to delete")
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[i:i + 1000]})


if __name__ == "__main__":
    # MLflow prints run links to stdout: keep stdout for the one JSON line.
    import contextlib

    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        sys.real_stdout = real_stdout
        main()
