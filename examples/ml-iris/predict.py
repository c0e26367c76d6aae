"""Iris species from four measurements, with a scikit-learn model.

numpy and scikit-learn are imported, and the model loaded, once per template:
every warm instance is forked from it and shares those pages.
"""

import json
import os
import time
from pathlib import Path

started = time.perf_counter()
import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from edge import Response  # noqa: E402

SPEC = json.loads(Path(__file__).with_name("model.json").read_text())
MODEL = LogisticRegression()
MODEL.coef_ = np.array(SPEC["coef"])
MODEL.intercept_ = np.array(SPEC["intercept"])
MODEL.classes_ = np.arange(len(SPEC["classes"]))
IMPORT_MS = round((time.perf_counter() - started) * 1000, 1)


def handle(request):
    if request.method == "GET" and "x" not in request.query:
        return {
            "model": "LogisticRegression on iris",
            "features": SPEC["features"],
            "classes": SPEC["classes"],
            "test_accuracy": SPEC["test_accuracy"],
            "import_ms": IMPORT_MS,
            "numpy": np.__version__,
        }
    try:
        if request.method == "GET":  # ?x=5.1,3.5,1.4,0.2
            rows = np.array(request.query["x"].split(","), dtype=float).reshape(-1, 4)
        else:
            rows = np.array(request.json()["features"], dtype=float).reshape(-1, 4)
    except (ValueError, KeyError, TypeError):
        return Response(
            {"error": 'send ?x=5.1,3.5,1.4,0.2 or {"features": [[5.1, 3.5, 1.4, 0.2], ...]}'},
            status=400,
        )
    probabilities = MODEL.predict_proba(rows)
    return Response(
        {
            "species": [SPEC["classes"][i] for i in probabilities.argmax(axis=1)],
            "probabilities": probabilities.round(4).tolist(),
        },
        headers={"x-instance-pid": str(os.getpid())},
    )
