"""LeNet-5 (20/50/500, the Caffe layout) on Fashion-MNIST, for the retraining benchmark of docs/performance.md.

    /usr/bin/python3 bench/retrain/lenet5.py [OUT_DIR]     (default bench/models/out/retrain, gitignored)

Writes, from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist):
  train-x.npy/train-y.npy   the first 50,000 training images (float32 [N,1,28,28] in [0,1], int64 labels)
  val-x.npy/val-y.npy       the last 10,000 training images (validation for the pruning budget)
  test-x.npy/test-y.npy     the 10,000 test images
  lenet5.onnx               LeNet-5 trained briefly (2 epochs, batch 64, Adam 1e-3, seed 0), opset 13, symbolic batch
and prints PyTorch's training speed on this machine: images/s (and images per CPU second) of batch-64 Adam steps
with 1 and 2 threads
(the same network, loss and batch size the C# trainer runs).

Needs Debian's python3-torch and python3-onnx.
"""
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

SRC = "/usr/share/datasets/fashion-mnist"


def idx(name):
    with gzip.open(os.path.join(SRC, name)) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


def train(net, x, y, epochs):
    """Adam 1e-3, batch 64, reshuffled each epoch (the caller seeds torch); returns the net in eval mode."""
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss = nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        perm = torch.randperm(len(xs))
        for b in range(0, len(xs), 64):
            i = perm[b:b + 64]
            opt.zero_grad()
            loss(net(xs[i]), ys[i]).backward()
            opt.step()
    return net.eval()


def export(net, tx, ty, path):
    """Writes the net as ONNX (opset 13, symbolic batch); returns its test accuracy."""
    with torch.no_grad():
        acc = (net(torch.from_numpy(tx)).argmax(1).numpy() == ty).mean()
    torch.onnx.export(net, torch.zeros(1, 1, 28, 28), path, opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return acc


def speed(x, y, threads, batches=300):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    net = lenet5()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss = nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    def run(n):
        for b in range(n):
            i = (b * 64) % (len(xs) - 64)
            opt.zero_grad()
            loss(net(xs[i:i + 64]), ys[i:i + 64]).backward()
            opt.step()
    run(20)
    t, cpu = time.perf_counter(), time.process_time()
    run(batches)
    return batches * 64 / (time.perf_counter() - t), batches * 64 / (time.process_time() - cpu)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "models", "out", "retrain")
    os.makedirs(out, exist_ok=True)
    x = (idx("train-images-idx3-ubyte.gz").astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    y = idx("train-labels-idx1-ubyte.gz").astype(np.int64)
    tx = (idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    ty = idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    for name, a in [("train-x", x[:50000]), ("train-y", y[:50000]), ("val-x", x[50000:]), ("val-y", y[50000:]), ("test-x", tx), ("test-y", ty)]:
        np.save(os.path.join(out, name + ".npy"), np.ascontiguousarray(a))
    model = os.path.join(out, "lenet5.onnx")
    if not os.path.exists(model):
        torch.manual_seed(0)
        torch.set_num_threads(2)
        net = train(lenet5(), x[:50000], y[:50000], 2)
        print(f"trained LeNet-5: test accuracy {export(net, tx, ty, model):.4f}")
    print(f"wrote {out}")
    if "--no-speed" not in sys.argv:
        for threads in (1, 2, 1, 2, 1, 2):
            wall, cpu = speed(x[:50000], y[:50000], threads)
            print(f"pytorch {torch.__version__} LeNet-5 batch 64 Adam, {threads} thread(s): {wall:.0f} images/s, {cpu:.0f} images per CPU second (load {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
