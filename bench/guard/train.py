"""Small Fashion-MNIST models for the accuracy-guard evaluation (docs/performance.md, "The accuracy guard on unseen models").

    /usr/bin/python3 bench/guard/train.py [OUT_DIR]     (default bench/guard/out, gitignored)

Writes, from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist):
  calib-x.npy                  training images 50,000-50,999 (calibration; no model trains on them)
  val-x.npy / val-y.npy        training images 51,000-52,999 (validation for the pruning budget)
  val8k-x.npy / val8k-y.npy    training images 51,000-58,999 (a larger validation set, for comparison)
  test-x.npy / test-y.npy      the 10,000 test images
  models/NAME.onnx             20 models, opset 13, symbolic batch: MLPs of several widths and depths, LeNet-5-like
                               and small conv nets, each with its own seed; t01-t08 for tuning, h01-h12 held out
Models train on images 0-49,999, Adam 1e-3, batch 64, 2 or 3 epochs (seconds to a few minutes each on one thread).
Arguments after OUT_DIR name the models to train (default: all); a model whose .onnx exists is skipped.

Needs Debian's python3-torch and python3-onnx.
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "retrain"))
from lenet5 import export, idx, train  # noqa: E402  (the same data files, optimiser and export)


def mlp(*widths):
    layers, prev = [nn.Flatten()], 784
    for w in widths:
        layers += [nn.Linear(prev, w), nn.ReLU()]
        prev = w
    return nn.Sequential(*layers, nn.Linear(prev, 10))


def lenet(c1, c2, fc):
    return nn.Sequential(
        nn.Conv2d(1, c1, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(c2 * 16, fc), nn.ReLU(), nn.Linear(fc, 10))


def convnet(c1, c2):
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c2 * 9, 10))


# name: (network, seed, epochs). Tuning models first; the held-out ones are only run at the end.
MODELS = {
    "t01": (lambda: mlp(300, 100), 1, 3),
    "t02": (lambda: mlp(128), 2, 3),
    "t03": (lambda: mlp(512, 256), 3, 3),
    "t04": (lambda: mlp(1024), 4, 2),
    "t05": (lambda: lenet(6, 16, 120), 5, 2),
    "t06": (lambda: lenet(20, 50, 200), 6, 2),
    "t07": (lambda: convnet(8, 16), 7, 2),
    "t08": (lambda: mlp(256, 256, 128), 8, 3),
    "h01": (lambda: mlp(300, 100), 11, 3),
    "h02": (lambda: mlp(200), 12, 3),
    "h03": (lambda: mlp(400, 200), 13, 3),
    "h04": (lambda: mlp(800), 14, 2),
    "h05": (lambda: mlp(256, 128, 64), 15, 3),
    "h06": (lambda: mlp(96, 96), 16, 3),
    "h07": (lambda: mlp(1024, 512), 17, 2),
    "h08": (lambda: lenet(6, 16, 120), 18, 2),
    "h09": (lambda: lenet(10, 20, 100), 19, 2),
    "h10": (lambda: lenet(16, 32, 150), 20, 2),
    "h11": (lambda: convnet(8, 16), 21, 2),
    "h12": (lambda: convnet(12, 24), 22, 2),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "out")
    only = set(sys.argv[2:])
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    torch.set_num_threads(1)
    x = (idx("train-images-idx3-ubyte.gz").astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    y = idx("train-labels-idx1-ubyte.gz").astype(np.int64)
    tx = (idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    ty = idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    for name, a in [("calib-x", x[50000:51000]), ("val-x", x[51000:53000]), ("val-y", y[51000:53000]),
                    ("val8k-x", x[51000:59000]), ("val8k-y", y[51000:59000]), ("test-x", tx), ("test-y", ty)]:
        if not os.path.exists(os.path.join(out, name + ".npy")):
            np.save(os.path.join(out, name + ".npy"), np.ascontiguousarray(a))
    for name, (make, seed, epochs) in MODELS.items():
        path = os.path.join(out, "models", name + ".onnx")
        if (only and name not in only) or os.path.exists(path):
            continue
        torch.manual_seed(seed)
        net = make()
        n = 50000
        start = time.perf_counter()
        acc = export(train(net, x[:n], y[:n], epochs), tx, ty, path)
        print(f"{name}: seed {seed}, {epochs} epochs on {n} images in {time.perf_counter() - start:.0f} s, test accuracy {acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
