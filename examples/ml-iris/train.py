"""Train the example's model: logistic regression on scikit-learn's bundled iris data.

Run it to regenerate ``model.json`` (it is committed, so a push needs no training):

    python -m venv /tmp/train && /tmp/train/bin/pip install -r requirements.txt
    /tmp/train/bin/python train.py

The model is stored as plain numbers (coefficients, intercepts, class names),
not a pickle: loading it runs no code.
"""

import json
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

iris = load_iris()
train_x, test_x, train_y, test_y = train_test_split(
    iris.data, iris.target, test_size=0.25, random_state=0, stratify=iris.target
)
model = LogisticRegression(max_iter=1000).fit(train_x, train_y)
accuracy = model.score(test_x, test_y)
Path(__file__).with_name("model.json").write_text(
    json.dumps(
        {
            "features": list(iris.feature_names),
            "classes": [str(name) for name in iris.target_names],
            "coef": model.coef_.tolist(),
            "intercept": model.intercept_.tolist(),
            "test_accuracy": round(accuracy, 4),
        },
        indent=1,
    )
    + "\n"
)
print(f"model.json written; accuracy on the held-out quarter: {accuracy:.3f}")
