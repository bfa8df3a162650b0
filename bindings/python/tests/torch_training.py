"""PyTorch references for the training tests: small models exported with torch.onnx.export, and
the same training steps run in PyTorch (CPU, float32) from the same weights and batches."""

import numpy as np
import torch

import kerf


def export(module, example, path, input_names, output_names, opset=17):
    """Exports `module` (TorchScript exporter, dynamic batch axis) and returns path. Constant
    folding is off: in eval mode it would fold BatchNormalization into the Conv before it."""
    module.eval()
    axes = {name: {0: "batch"} for name in input_names + output_names}
    torch.onnx.export(module, example, str(path), input_names=input_names, output_names=output_names,
                      dynamic_axes=axes, opset_version=opset, dynamo=False, do_constant_folding=False)
    return str(path)


class SmallCNN(torch.nn.Module):
    """A ResNet-style CNN: Conv-BatchNorm-ReLU blocks (one strided, one depthwise), MaxPool, a
    residual Add, global average pooling and a classifier."""

    def __init__(self, classes=4):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.pool = torch.nn.MaxPool2d(2)
        self.depthwise = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.down = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU())
        self.head = torch.nn.Linear(16, classes)

    def forward(self, x):
        x = self.pool(self.stem(x))
        x = x + self.depthwise(x)
        x = self.down(x)
        return self.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


def mlp(seed=0, sizes=(8, 16, 3)):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class TinyEncoder(torch.nn.Module):
    """A BERT-style encoder: token and position embeddings, LayerNorm, one self-attention block
    with a GELU feed-forward, first-token pooling and a classifier. The key projection has no
    bias (as Whisper's): softmax ignores it, so its exact gradient is zero and Adam would turn
    each engine's rounding noise there into full-size steps of its own."""

    def __init__(self, vocab=50, width=16, heads=2, length=6, classes=3):
        super().__init__()
        self.heads = heads
        self.tokens = torch.nn.Embedding(vocab, width)
        self.positions = torch.nn.Parameter(torch.randn(length, width) * 0.1)
        self.norm0 = torch.nn.LayerNorm(width)
        self.q = torch.nn.Linear(width, width)
        self.k = torch.nn.Linear(width, width, bias=False)
        self.v = torch.nn.Linear(width, width)
        self.proj = torch.nn.Linear(width, width)
        self.norm1 = torch.nn.LayerNorm(width)
        self.up = torch.nn.Linear(width, 2 * width)
        self.down = torch.nn.Linear(2 * width, width)
        self.norm2 = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, classes)

    def forward(self, ids):
        b, n = ids.shape
        x = self.norm0(self.tokens(ids) + self.positions[:n])
        q, k, v = self.q(x), self.k(x), self.v(x)
        split = lambda t: t.reshape(b, n, self.heads, -1).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        scores = torch.softmax(q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5), dim=-1)
        attended = (scores @ v).transpose(1, 2).reshape(b, n, -1)
        x = self.norm1(x + self.proj(attended))
        x = self.norm2(x + self.down(torch.nn.functional.gelu(self.up(x))))
        return self.head(x[:, 0])


def kerf_names(module, trainer):
    """torch parameter name -> (the trainer's parameter of the same values, whether it is stored
    transposed): exporters rename some parameters and store Linear weights as MatMul's B
    (transposed). The module's parameters must have distinct values (the TorchScript exporter
    stores identical initializers once, e.g. fresh LayerNorm weights: see `distinct`)."""
    parameters = trainer.parameters()
    mapping = {}
    for name, tensor in module.named_parameters():
        value = tensor.detach().numpy()
        for candidate, array in parameters.items():
            if candidate in (k for k, _ in mapping.values()):
                continue
            if array.shape == value.shape and np.array_equal(array, value):
                mapping[name] = (candidate, False)
            elif array.ndim == 2 and array.T.shape == value.shape and np.array_equal(array.T, value):
                mapping[name] = (candidate, True)
            if name in mapping:
                break
    return mapping


def distinct(module, seed=0):
    """Gives every parameter and running statistic of `module` distinct values (a small seeded
    perturbation), so that the TorchScript exporter keeps them apart instead of storing equal
    ones once (tied)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.01)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.add_(torch.randn(b.shape, generator=generator) * 0.01)
            elif name.endswith("running_var"):
                b.mul_(1 + torch.rand(b.shape, generator=generator) * 0.01)
    return module


def in_torch_layout(array, transposed):
    return array.T if transposed else array


def torch_steps(module, optimizer, loss_function, batches, scheduler=None):
    """Runs `batches` ((inputs, target) tensors) through PyTorch training; returns the losses."""
    module.train()
    losses = []
    for inputs, target in batches:
        optimizer.zero_grad()
        loss = loss_function(module(inputs), target)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return losses


def relative_gap(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))
