"""PyOD's own AutoEncoder on the public check's PyOD splits, beside the published figures.

The public-data check runs ``AutoencoderDetector`` in PyOD 2.0.1's AutoEncoder
configuration and judges it by PyOD's published figures. This runs PyOD 2.0.1's
AutoEncoder itself (PyTorch, its defaults, ``random_state`` the seed as the check
seeds ours) on exactly the same splits (``public_benchmarks.split``: 60/40,
z-scored), so a gap to a published figure can be told apart from a difference
between the two implementations.

PyOD and PyTorch are not the project's dependencies; the project's modules it
imports need only NumPy and scikit-learn:

    python -m venv /tmp/pyod && /tmp/pyod/bin/pip install torch==2.13.0 pyod==2.0.1 tqdm
    PYTHONPATH=. /tmp/pyod/bin/python fraud_assets_tests/benchmarks/pyod_reference.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fraud_assets.evaluation.public_benchmarks import DATASETS, PUBLISHED, load_dataset, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    from pyod.models.auto_encoder import AutoEncoder
    from sklearn.metrics import roc_auc_score

    for name in args.datasets:
        X, y = load_dataset(name)
        started, rocs = time.perf_counter(), []
        for seed in range(args.seeds):
            X_train, X_test, _, y_test = split(X, y, "pyod", seed)
            model = AutoEncoder(contamination=float(y.mean()), random_state=seed, verbose=0)
            model.fit(X_train)
            rocs.append(roc_auc_score(y_test, model.decision_function(X_test)))
        low, high = PUBLISHED[name].ae_range("pyod")
        print(
            f"{name:<16} PyOD AutoEncoder {np.mean(rocs):.3f}±{np.std(rocs):.3f} "
            f"(published {low:.3f}–{high:.3f}; {time.perf_counter() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
