"""Benchmark models for `convsweep`'s neighbour, `models`: common classification architectures with random
weights (speed does not depend on the values), exported by PyTorch with a symbolic batch.

    /usr/bin/python3 bench/models/make_models.py OUT_DIR [MODEL ...]

Needs Debian's python3-torch, python3-torchvision and python3-onnx.
"""
import os
import sys

import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn
import torchvision


def lenet5_caffe():
    # The Caffe LeNet: 20 and 50 5x5 filters, 500 hidden units.
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


def convnet_quick():
    # cifar10_quick's layout on a 28x28 grey image: 5x5 convs of 32/32/64 channels on 28/13/6 maps.
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.MaxPool2d(3, 2), nn.ReLU(),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2), nn.Flatten(),
        nn.Linear(64 * 2 * 2, 64), nn.Linear(64, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = None if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return torch.relu(y + (x if self.skip is None else self.skip(x)))


def small_resnet():
    # 16/32 channels, 3x3, one stride-2 block, on 28x28 grey images.
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        Block(16, 16, 1), Block(16, 32, 2), Block(32, 32, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def resnet18_cifar():
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


MODELS = {
    "lenet5-caffe": (lenet5_caffe, (1, 28, 28)),
    "convnet-quick": (convnet_quick, (1, 28, 28)),
    "small-resnet": (small_resnet, (1, 28, 28)),
    "resnet18-cifar": (resnet18_cifar, (3, 32, 32)),
    "resnet18": (lambda: torchvision.models.resnet18(), (3, 224, 224)),
    "mobilenetv2": (lambda: torchvision.models.mobilenet_v2(), (3, 224, 224)),
    "squeezenet1.1": (lambda: torchvision.models.squeezenet1_1(), (3, 224, 224)),
    # The zoo of issue 16, exported at opset 17 (HardSwish, Split with a split input, shape subgraphs).
    "shufflenetv2-x0.5": (lambda: torchvision.models.shufflenet_v2_x0_5(), (3, 224, 224), 17),
    "mobilenetv3-small": (lambda: torchvision.models.mobilenet_v3_small(), (3, 224, 224), 17),
    "efficientnet-b0": (lambda: torchvision.models.efficientnet_b0(), (3, 224, 224), 17),
    "regnet-y-400mf": (lambda: torchvision.models.regnet_y_400mf(), (3, 224, 224), 17),
    "densenet121": (lambda: torchvision.models.densenet121(), (3, 224, 224), 17),
    "googlenet": (lambda: torchvision.models.googlenet(aux_logits=False, init_weights=True), (3, 224, 224), 17),
    "vgg11": (lambda: torchvision.models.vgg11(), (3, 224, 224), 17),
    "alexnet": (lambda: torchvision.models.alexnet(), (3, 224, 224), 17),
}


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    only = set(sys.argv[2:])
    for name, (make, shape, *opset) in MODELS.items():
        if only and name not in only:
            continue
        model = make().eval()
        # Non-trivial BatchNorm statistics, so folding is exercised as in a trained network.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None:
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        path = os.path.join(out, name + ".onnx")
        torch.onnx.export(model, torch.randn(1, *shape), path, opset_version=opset[0] if opset else 13, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, do_constant_folding=True)
        drop_zero_pads(path)
        print(path)


def drop_zero_pads(path):
    """PyTorch 1.13 puts a Pad of all zeros before each AvgPool2d; it changes nothing, so it is cut out."""
    model = onnx.load(path)
    constants = {n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node if n.op_type == "Constant"}
    constants.update({t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer})
    for node in [n for n in model.graph.node if n.op_type == "Pad"]:
        pads = constants.get(node.input[1])
        if pads is None or pads.any():
            continue
        for other in model.graph.node:
            for i, name in enumerate(other.input):
                if name == node.output[0]:
                    other.input[i] = node.input[0]
        model.graph.node.remove(node)
    onnx.save(model, path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/models/out")
