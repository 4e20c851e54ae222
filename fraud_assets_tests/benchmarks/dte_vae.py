"""DTE's VAE baseline rebuilt in Keras, to show what its published figures measure.

The DTE paper's VAE ([DTE-U], [DTE-S] in the datasets' README) is PyOD 1.x's
Keras VAE as DTE's ``baselines/vae.py`` configures it: an input layer of d
units, encoder 4d → 2d → d (ReLU, dropout 0.2, an L2 activity penalty of 0.1),
a 2-unit latent drawn by reparameterisation, decoder 2 → d → 2d → 4d (ReLU,
dropout 0.2), a sigmoid output; loss d × MSE + |KL|; Adam, 100 epochs of
batches of 32 on 90 % of the rows (10 % held for validation); the score is the
Euclidean distance between a row and its reconstruction, a NaN score counted
as 0 as DTE's ``run.py`` does. Inputs are z-scored, as DTE's data generator
does.

It prints the VAE's ROC-AUC beside DTE's published figure and beside
``distance_from_mean`` (no model), and how much the reconstructions vary
across rows: a decoder whose output does not depend on its input ranks rows
by their distance from that one output.

    python fraud_assets_tests/benchmarks/dte_vae.py --protocol semi_supervised 6_cardio
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from fraud_assets.evaluation.public_benchmarks import (
    DATASETS,
    PUBLISHED,
    distance_from_mean,
    load_dataset,
    split,
)


def train_and_score(X_train: np.ndarray, X_test: np.ndarray, seed: int):
    """The VAE fitted on ``X_train``; (scores, reconstructions, latent means) of ``X_test``."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    d = X_train.shape[1]
    dense, dropout = keras.layers.Dense, keras.layers.Dropout
    first = dense(d, activation="relu")
    encoder = [dense(n, activation="relu") for n in (4 * d, 2 * d, d)]
    z_mean, z_log_var = dense(2), dense(2)
    decoder = [dense(n, activation="relu") for n in (2, d, 2 * d, 4 * d)]
    output = dense(d, activation="sigmoid")
    drop = dropout(0.2)

    def forward(x, training: bool):
        h, activity = first(x), 0.0
        for layer in encoder:
            h = layer(h)
            activity += 0.1 * tf.reduce_sum(tf.square(h)) / tf.cast(tf.shape(x)[0], tf.float32)
            h = drop(h, training=training)
        mean, log_var = z_mean(h), z_log_var(h)
        g = mean + tf.exp(0.5 * log_var) * tf.random.normal(tf.shape(mean))  # sampled, as PyOD
        for i, layer in enumerate(decoder):
            g = layer(g)
            g = drop(g, training=training) if i else g
        return output(g), mean, log_var, activity

    forward(X_train[:2], False)  # builds the layers
    weights = [
        w
        for layer in (first, *encoder, z_mean, z_log_var, *decoder, output)
        for w in layer.trainable_variables
    ]
    optimizer = keras.optimizers.Adam()

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            out, mean, log_var, activity = forward(batch, True)
            reconstruction = d * tf.reduce_mean(tf.square(batch - out), axis=1)
            kl = tf.abs(
                -0.5 * tf.reduce_sum(1 + log_var - tf.square(mean) - tf.exp(log_var), axis=1)
            )
            loss = tf.reduce_mean(reconstruction + kl) + activity
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))

    rng = np.random.default_rng(seed)
    rows = X_train[rng.permutation(len(X_train))][: len(X_train) - len(X_train) // 10]
    for _ in range(100):
        order = rng.permutation(len(rows))
        for start in range(0, len(rows), 32):
            step(rows[order[start : start + 32]])
    out, mean, _, _ = forward(X_test, False)
    out = out.numpy()
    scores = np.sqrt(np.square(X_test - out).sum(axis=1))
    return np.nan_to_num(scores, nan=0.0), out, mean.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=("semi_supervised", "dte_unsupervised"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from sklearn.metrics import roc_auc_score

    for name in args.datasets:
        X, y = load_dataset(name)
        X_train, X_test, _, y_test = split(X, y, args.protocol, args.seed)
        X_train, X_test = X_train.astype(np.float32), X_test.astype(np.float32)
        scores, out, mean = train_and_score(X_train, X_test, args.seed)
        published = PUBLISHED[name]
        figure = published.dte_s_vae if args.protocol == "semi_supervised" else published.dte_u_vae
        print(
            f"{name:<16} VAE {roc_auc_score(y_test, scores):.4f}  published {figure:.4f}  "
            f"distance from the mean {roc_auc_score(y_test, distance_from_mean(X_test)):.4f}  "
            f"spread of the reconstructions {out.std(axis=0).mean():.4f} "
            f"(of the inputs {X_test.std(axis=0).mean():.3f}), "
            f"of the latent means {mean.std(axis=0).max():.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
