"""The zoo: small-config models as people export them, with both torch exporters.

CNNs in torchvision's architectures, written out in plain torch (PyPI's torchvision wheel is
CUDA-built and fails at import on these machines), 1000 classes, [N, 3, 224, 224] images:
ResNet-18, MobileNetV3-Small, EfficientNet-B0, ConvNeXt (Tiny's blocks with depths 2-2-6-2 and
widths 48-384 instead of 3-3-9-3 and 96-768), RegNetY-400MF, ShuffleNetV2 x1.0 and a ViT/16
(vit_tiny16: ViT-Ti's width 192 and 3 heads, 6 layers); random BatchNorm scales and shifts,
then running statistics from three training-mode passes over random images, so folding
matters and activations keep a sane scale. Hugging Face transformers models from small configs
(hidden 64, 2 layers, 4 heads, FFN 256, vocabulary 1000) with seeded random weights, no
downloads: BERT, DistilBERT, GPT-2 (plain, and with past_key_values inputs and outputs),
RoBERTa, ViT, the T5 encoder and the Whisper encoder (80 mel bins x 200 frames: its length is
fixed by the model). Parameters that initialization leaves constant (zero biases, LayerNorm
scales of one) get a little noise, as a trained checkpoint has. Dynamic axes: the batch
everywhere, the sequence of token inputs (and past length of GPT-2's cache).

Each is exported by TorchScript (`torch.onnx.export(..., dynamo=False, opset_version=17)`) and
by dynamo (`dynamo=True`, opset 18, weights as external data) into a cache folder
($KERF_ZOO_DIR, default <repo>/.build/kerf-work/zoo), under file names keyed by model,
exporter, torch and transformers versions and ZOO_VERSION, written atomically so reruns (and
concurrent runs) reuse them. An export that fails is recorded (`<key>.failed.json` with the
error) instead of raising: `export(...)` returns an Entry whose `path` is None and whose
`error` says why.

`inputs(name, batch)` gives seeded example inputs: images, or token ids within the vocabulary
with an attention mask that pads every row but the first.

`python3 zoo.py` exports the zoo (in parallel processes, `--jobs`); `python3 zoo.py --status`
prints one row per file: exported, Kerf loads and runs, max abs difference from ONNX Runtime,
int8 (static for CNNs, dynamic for transformers), and 30% channel pruning (fraction of the
prunable parameters removed, and the report's reasons for skipped groups), each file checked in
its own process so that a crash is a row, not the end of the table.
"""

import json
import math
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ZOO_VERSION = 3
EXPORTERS = ("torchscript", "dynamo")
REPO = Path(__file__).resolve().parents[3]
IMAGE = 224
SEQUENCE = 16  # tokens in the example inputs
BATCH_MAX = 64
# How the zoo is channel-pruned (tests, --status and scripts/bench_zoo.py): 30% of the channels,
# kept counts rounded to multiples of 16 so that ONNX Runtime's blocked (NCHWc) convolutions run
# the pruned CNNs on their fast path.
PRUNE_SPARSITY = 0.3
PRUNE_CHANNEL_MULTIPLE = 16
CNN_NAMES = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext", "regnet_y_400mf", "shufflenet_v2", "vit_tiny16")


def zoo_dir():
    return Path(os.environ.get("KERF_ZOO_DIR") or REPO / ".build" / "kerf-work" / "zoo")


# MARK: - CNNs in torchvision's architectures


def _torch():
    import torch
    return torch


def _make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _cnn_modules():
    """The CNN classes (defined on first use, so importing zoo needs no torch)."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    def conv_bn_act(c_in, c_out, k, stride=1, groups=1, act=nn.ReLU, eps=1e-5):
        layers = [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out, eps=eps)]
        if act is not None:
            layers.append(act(inplace=True) if act in (nn.ReLU, nn.Hardswish, nn.SiLU) else act())
        return nn.Sequential(*layers)

    class SqueezeExcitation(nn.Module):
        """torchvision.ops.SqueezeExcitation: avgpool, 1x1 conv, activation, 1x1 conv, scale activation, multiply."""

        def __init__(self, channels, squeeze, activation=nn.ReLU, scale_activation=nn.Sigmoid):
            super().__init__()
            self.fc1 = nn.Conv2d(channels, squeeze, 1)
            self.fc2 = nn.Conv2d(squeeze, channels, 1)
            self.activation = activation()
            self.scale_activation = scale_activation()

        def forward(self, x):
            s = F.adaptive_avg_pool2d(x, 1)
            return x * self.scale_activation(self.fc2(self.activation(self.fc1(s))))

    # ResNet-18
    class BasicBlock(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.downsample = None
            if stride != 1 or c_in != c_out:
                self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            identity = x if self.downsample is None else self.downsample(x)
            return F.relu(out + identity)

    class ResNet18(nn.Module):
        def __init__(self, classes=1000):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            layers, c = [], 64
            for width, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
                layers.append(nn.Sequential(BasicBlock(c, width, stride), BasicBlock(width, width, 1)))
                c = width
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.fc = nn.Linear(512, classes)

        def forward(self, x):
            x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    # MobileNetV3-Small
    class InvertedResidualV3(nn.Module):
        def __init__(self, c_in, k, expanded, c_out, use_se, activation, stride):
            super().__init__()
            act = nn.Hardswish if activation == "HS" else nn.ReLU
            self.use_res = stride == 1 and c_in == c_out
            layers = []
            if expanded != c_in:
                layers.append(conv_bn_act(c_in, expanded, 1, act=act, eps=1e-3))
            layers.append(conv_bn_act(expanded, expanded, k, stride, groups=expanded, act=act, eps=1e-3))
            if use_se:
                layers.append(SqueezeExcitation(expanded, _make_divisible(expanded // 4), scale_activation=nn.Hardsigmoid))
            layers.append(conv_bn_act(expanded, c_out, 1, act=None, eps=1e-3))
            self.block = nn.Sequential(*layers)

        def forward(self, x):
            y = self.block(x)
            return y + x if self.use_res else y

    class MobileNetV3Small(nn.Module):
        CONFIG = [(16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2), (24, 3, 88, 24, False, "RE", 1),
                  (24, 5, 96, 40, True, "HS", 2), (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
                  (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1), (48, 5, 288, 96, True, "HS", 2),
                  (96, 5, 576, 96, True, "HS", 1), (96, 5, 576, 96, True, "HS", 1)]

        def __init__(self, classes=1000):
            super().__init__()
            layers = [conv_bn_act(3, 16, 3, 2, act=nn.Hardswish, eps=1e-3)]
            layers += [InvertedResidualV3(*config) for config in self.CONFIG]
            layers.append(conv_bn_act(96, 576, 1, act=nn.Hardswish, eps=1e-3))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(inplace=True), nn.Dropout(0.2),
                                            nn.Linear(1024, classes))

        def forward(self, x):
            return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))

    # EfficientNet-B0
    class MBConv(nn.Module):
        def __init__(self, expand_ratio, k, stride, c_in, c_out):
            super().__init__()
            self.use_res = stride == 1 and c_in == c_out
            expanded = _make_divisible(c_in * expand_ratio)
            layers = []
            if expanded != c_in:
                layers.append(conv_bn_act(c_in, expanded, 1, act=nn.SiLU, eps=1e-3))
            layers.append(conv_bn_act(expanded, expanded, k, stride, groups=expanded, act=nn.SiLU, eps=1e-3))
            layers.append(SqueezeExcitation(expanded, max(1, c_in // 4), activation=nn.SiLU))
            layers.append(conv_bn_act(expanded, c_out, 1, act=None, eps=1e-3))
            self.block = nn.Sequential(*layers)

        def forward(self, x):
            y = self.block(x)
            return y + x if self.use_res else y  # stochastic depth is the identity in eval mode

    class EfficientNetB0(nn.Module):
        CONFIG = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                  (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]

        def __init__(self, classes=1000):
            super().__init__()
            layers = [conv_bn_act(3, 32, 3, 2, act=nn.SiLU, eps=1e-3)]
            for expand, k, stride, c_in, c_out, repeats in self.CONFIG:
                layers.append(nn.Sequential(*[MBConv(expand, k, stride if i == 0 else 1, c_in if i == 0 else c_out, c_out)
                                              for i in range(repeats)]))
            layers.append(conv_bn_act(320, 1280, 1, act=nn.SiLU, eps=1e-3))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

        def forward(self, x):
            return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))

    # ConvNeXt (Tiny's design: depths 3-3-9-3, widths 96-768; smaller here)
    class LayerNorm2d(nn.LayerNorm):
        def forward(self, x):
            x = x.permute(0, 2, 3, 1)
            x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
            return x.permute(0, 3, 1, 2)

    class CNBlock(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
            self.norm = nn.LayerNorm(dim, eps=1e-6)
            self.pwconv1 = nn.Linear(dim, 4 * dim)
            self.pwconv2 = nn.Linear(4 * dim, dim)
            self.layer_scale = nn.Parameter(torch.empty(dim, 1, 1).uniform_(0.1, 1.0))

        def forward(self, x):
            y = self.dwconv(x).permute(0, 2, 3, 1)
            y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y)))).permute(0, 3, 1, 2)
            return x + self.layer_scale * y  # stochastic depth is the identity in eval mode

    class ConvNeXt(nn.Module):
        def __init__(self, depths=(2, 2, 6, 2), dims=(48, 96, 192, 384), classes=1000):
            super().__init__()
            layers = [nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))]
            for i, (depth, dim) in enumerate(zip(depths, dims)):
                layers.append(nn.Sequential(*[CNBlock(dim) for _ in range(depth)]))
                if i + 1 < len(dims):
                    layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6), nn.Conv2d(dim, dims[i + 1], 2, 2)))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1), nn.Linear(dims[-1], classes))

        def forward(self, x):
            return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1))

    # RegNetY-400MF
    class ResBottleneckBlock(nn.Module):
        def __init__(self, w_in, w_out, stride, group_width=8, se_ratio=0.25):
            super().__init__()
            self.proj = None
            if w_in != w_out or stride != 1:
                self.proj = conv_bn_act(w_in, w_out, 1, stride, act=None)
            groups = w_out // group_width
            self.f = nn.Sequential(
                conv_bn_act(w_in, w_out, 1),
                conv_bn_act(w_out, w_out, 3, stride, groups=groups),
                SqueezeExcitation(w_out, int(round(se_ratio * w_in))),
                conv_bn_act(w_out, w_out, 1, act=None))

        def forward(self, x):
            shortcut = x if self.proj is None else self.proj(x)
            return F.relu(shortcut + self.f(x))

    class RegNetY400MF(nn.Module):
        WIDTHS, DEPTHS = (48, 104, 208, 440), (1, 3, 6, 6)

        def __init__(self, classes=1000):
            super().__init__()
            self.stem = conv_bn_act(3, 32, 3, 2)
            stages, c = [], 32
            for width, depth in zip(self.WIDTHS, self.DEPTHS):
                stages.append(nn.Sequential(*[ResBottleneckBlock(c if i == 0 else width, width, 2 if i == 0 else 1)
                                              for i in range(depth)]))
                c = width
            self.trunk_output = nn.Sequential(*stages)
            self.fc = nn.Linear(c, classes)

        def forward(self, x):
            x = self.trunk_output(self.stem(x))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    # ShuffleNetV2 x1.0
    def channel_shuffle(x, groups):
        batch, channels, height, width = x.size()
        x = x.view(batch, groups, channels // groups, height, width)
        x = torch.transpose(x, 1, 2).contiguous()
        return x.view(batch, -1, height, width)

    class InvertedResidualV2(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.stride = stride
            branch = c_out // 2
            if stride > 1:
                self.branch1 = nn.Sequential(
                    nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False), nn.BatchNorm2d(c_in),
                    nn.Conv2d(c_in, branch, 1, bias=False), nn.BatchNorm2d(branch), nn.ReLU(inplace=True))
            else:
                self.branch1 = nn.Sequential()
            self.branch2 = nn.Sequential(
                nn.Conv2d(c_in if stride > 1 else branch, branch, 1, bias=False), nn.BatchNorm2d(branch), nn.ReLU(inplace=True),
                nn.Conv2d(branch, branch, 3, stride, 1, groups=branch, bias=False), nn.BatchNorm2d(branch),
                nn.Conv2d(branch, branch, 1, bias=False), nn.BatchNorm2d(branch), nn.ReLU(inplace=True))

        def forward(self, x):
            if self.stride == 1:
                x1, x2 = x.chunk(2, dim=1)
                out = torch.cat((x1, self.branch2(x2)), dim=1)
            else:
                out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
            return channel_shuffle(out, 2)

    class ShuffleNetV2(nn.Module):
        def __init__(self, repeats=(4, 8, 4), channels=(24, 116, 232, 464, 1024), classes=1000):
            super().__init__()
            self.conv1 = conv_bn_act(3, channels[0], 3, 2)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            c = channels[0]
            stages = []
            for repeat, width in zip(repeats, channels[1:4]):
                stages.append(nn.Sequential(*[InvertedResidualV2(c if i == 0 else width, width, 2 if i == 0 else 1)
                                              for i in range(repeat)]))
                c = width
            self.stage2, self.stage3, self.stage4 = stages
            self.conv5 = conv_bn_act(c, channels[4], 1)
            self.fc = nn.Linear(channels[4], classes)

        def forward(self, x):
            x = self.maxpool(self.conv1(x))
            x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
            return self.fc(x.mean([2, 3]))

    # ViT/16 (torchvision's VisionTransformer with nn.MultiheadAttention; ViT-Ti's width and heads, 6 layers)
    class EncoderBlock(nn.Module):
        def __init__(self, heads, hidden, mlp):
            super().__init__()
            self.ln_1 = nn.LayerNorm(hidden, eps=1e-6)
            self.self_attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
            self.ln_2 = nn.LayerNorm(hidden, eps=1e-6)
            self.mlp = nn.Sequential(nn.Linear(hidden, mlp), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp, hidden), nn.Dropout(0.0))

        def forward(self, x):
            y = self.ln_1(x)
            y, _ = self.self_attention(y, y, y, need_weights=False)
            x = x + y
            return x + self.mlp(self.ln_2(x))

    class VisionTransformer(nn.Module):
        def __init__(self, patch=16, layers=6, heads=3, hidden=192, mlp=768, classes=1000):
            super().__init__()
            self.patch, self.hidden = patch, hidden
            self.conv_proj = nn.Conv2d(3, hidden, patch, patch)
            tokens = (IMAGE // patch) ** 2 + 1
            self.class_token = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
            self.pos_embedding = nn.Parameter(torch.randn(1, tokens, hidden) * 0.02)
            self.layers = nn.Sequential(*[EncoderBlock(heads, hidden, mlp) for _ in range(layers)])
            self.ln = nn.LayerNorm(hidden, eps=1e-6)
            self.heads = nn.Sequential(nn.Linear(hidden, classes))

        def forward(self, x):
            n = x.shape[0]
            x = self.conv_proj(x).reshape(n, self.hidden, -1).permute(0, 2, 1)
            x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1) + self.pos_embedding
            x = self.ln(self.layers(x))
            return self.heads(x[:, 0])

    return {"resnet18": ResNet18, "mobilenet_v3_small": MobileNetV3Small, "efficientnet_b0": EfficientNetB0,
            "convnext": ConvNeXt, "regnet_y_400mf": RegNetY400MF, "shufflenet_v2": ShuffleNetV2, "vit_tiny16": VisionTransformer}


def _init_cnn(module, seed):
    """torchvision's initializations (Kaiming normal for convs), random BatchNorm scales and
    shifts, then BatchNorm running statistics from three training-mode passes over random
    images: eval-mode BatchNorm that folding changes, with activations of a sane scale."""
    torch = _torch()
    nn = torch.nn
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.normal_(m.bias, 0, 0.05)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=1 / math.sqrt(m.in_features))
            nn.init.normal_(m.bias, 0, 0.05)
    _perturb_constants(module, seed)  # LayerNorms (ConvNeXt, ViT); BatchNorm is set below
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    if norms:
        with torch.no_grad():
            for m in norms:
                m.weight.uniform_(0.5, 1.5, generator=generator)
                m.bias.normal_(0, 0.2, generator=generator)
                m.momentum = None  # a cumulative average over the passes
        module.train()
        with torch.no_grad():
            for _ in range(3):
                module(torch.randn(4, 3, IMAGE, IMAGE, generator=generator))
        for m in norms:
            m.momentum = 0.1
    return module.eval()


# MARK: - Hugging Face transformers models from small configs, and the zoo's table


class _Spec:
    """One zoo model: how to build it (a torch module taking its inputs positionally), its
    input and output names, which input axes are dynamic, and its kind ("cnn" or "transformer")."""

    def __init__(self, name, kind, build, inputs, outputs, dynamic, vocab=None, pad=0):
        self.name, self.kind, self.build = name, kind, build
        self.input_names, self.output_names = inputs, outputs
        self.dynamic = dynamic  # {input name: {axis: dim name}}
        self.vocab, self.pad = vocab, pad


def _perturb_constants(module, seed):
    """Adds N(0, 0.05) noise to every parameter that initialization left constant (biases of
    zeros, LayerNorm scales of ones), as training would: exporters store identical tensors
    once (dynamo) and fan them out, which no trained checkpoint shows."""
    torch = _torch()
    generator = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for parameter in module.parameters():
            flat = parameter.detach().reshape(-1)
            if flat.numel() > 1 and bool((flat == flat[0]).all()):
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return module


def _hf(model_class, config_class, **config):
    """A builder of `model_class(config_class(**config))`, seeded, in eval mode."""

    def build():
        torch = _torch()
        torch.manual_seed(0)
        module = model_class(config_class(**config))
        return _perturb_constants(module, 0).eval()

    return build


def _wrap(build, fields, takes_mask=True, input_key="input_ids"):
    """A builder of build()'s module taking (input ids or pixel values[, attention_mask])
    positionally and returning the named `fields` of its output as a tuple."""

    def wrapped():
        torch = _torch()
        inner = build()

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = inner

            def forward(self, x, attention_mask=None):
                kwargs = {input_key: x}
                if takes_mask:
                    kwargs["attention_mask"] = attention_mask
                out = self.model(**kwargs)
                return tuple(out[f] for f in fields)

        return Wrapper().eval()

    return wrapped


def _gpt2_with_past(layers=2, **config):
    """GPT-2 as decoding runs it: input_ids of the new tokens, the attention mask over past and
    new tokens, and each layer's past keys and values; outputs the logits and the present keys
    and values (a DynamicCache inside, flat tensors at the boundary)."""

    assert layers == 2, "forward() names two layers' keys and values"

    def build():
        torch = _torch()
        from transformers import DynamicCache, GPT2Config, GPT2LMHeadModel
        torch.manual_seed(0)
        cfg = GPT2Config(n_layer=layers, **config)
        inner = _perturb_constants(GPT2LMHeadModel(cfg), 0).eval()

        class WithPast(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = inner

            def forward(self, input_ids, attention_mask, key0, value0, key1, value1):
                past = (key0, value0, key1, value1)  # positional: dynamo's dynamic_shapes match them one by one
                cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(layers)], config=cfg)
                out = self.model(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=True)
                present = out.past_key_values
                flat = []
                for layer in present.layers:
                    flat += [layer.keys, layer.values]
                return (out.logits, *flat)

        return WithPast().eval()

    return build


HIDDEN, LAYERS, HEADS, FFN, VOCAB, POSITIONS = 64, 2, 4, 256, 1000, 128


def _specs():
    image = {"pixel_values": {0: "batch"}}
    text = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    specs = []
    for name in CNN_NAMES:
        specs.append(_Spec(name, "cnn", _cnn_builder(name), ["image"], ["logits"], {"image": {0: "batch"}}))

    specs.append(_Spec("bert", "transformer", _wrap(_lazy_hf("BertModel", "BertConfig", vocab_size=VOCAB, hidden_size=HIDDEN,
                                                               num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                                               intermediate_size=FFN, max_position_embeddings=POSITIONS),
                                                    ["last_hidden_state", "pooler_output"]),
                       ["input_ids", "attention_mask"], ["last_hidden_state", "pooler_output"], text, vocab=VOCAB, pad=0))
    specs.append(_Spec("distilbert", "transformer", _wrap(_lazy_hf("DistilBertModel", "DistilBertConfig", vocab_size=VOCAB, dim=HIDDEN,
                                                                     n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN,
                                                                     max_position_embeddings=POSITIONS),
                                                          ["last_hidden_state"]),
                       ["input_ids", "attention_mask"], ["last_hidden_state"], text, vocab=VOCAB, pad=0))
    specs.append(_Spec("gpt2", "transformer", _wrap(_lazy_hf("GPT2LMHeadModel", "GPT2Config", vocab_size=VOCAB, n_embd=HIDDEN,
                                                               n_layer=LAYERS, n_head=HEADS, n_inner=FFN, n_positions=POSITIONS,
                                                               use_cache=False),
                                                    ["logits"]),
                       ["input_ids", "attention_mask"], ["logits"], text, vocab=VOCAB, pad=0))
    past_names = [f"past_key_values.{i}.{kv}" for i in range(LAYERS) for kv in ("key", "value")]
    present_names = [f"present.{i}.{kv}" for i in range(LAYERS) for kv in ("key", "value")]
    past_dynamic = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total"}}
    past_dynamic.update({n: {0: "batch", 2: "past"} for n in past_names})
    specs.append(_Spec("gpt2_past", "transformer",
                       _gpt2_with_past(LAYERS, vocab_size=VOCAB, n_embd=HIDDEN, n_head=HEADS, n_inner=FFN, n_positions=POSITIONS),
                       ["input_ids", "attention_mask", *past_names], ["logits", *present_names], past_dynamic, vocab=VOCAB, pad=0))
    specs.append(_Spec("roberta", "transformer", _wrap(_lazy_hf("RobertaModel", "RobertaConfig", vocab_size=VOCAB, hidden_size=HIDDEN,
                                                                  num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                                                  intermediate_size=FFN, max_position_embeddings=POSITIONS + 2,
                                                                  pad_token_id=1),
                                                       ["last_hidden_state", "pooler_output"]),
                       ["input_ids", "attention_mask"], ["last_hidden_state", "pooler_output"], text, vocab=VOCAB, pad=1))
    specs.append(_Spec("hf_vit", "transformer", _wrap(_lazy_hf("ViTModel", "ViTConfig", hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                                                 num_attention_heads=HEADS, intermediate_size=FFN, image_size=IMAGE,
                                                                 patch_size=16),
                                                      ["last_hidden_state", "pooler_output"], takes_mask=False, input_key="pixel_values"),
                       ["pixel_values"], ["last_hidden_state", "pooler_output"], image))
    specs.append(_Spec("t5_encoder", "transformer", _wrap(_lazy_hf("T5EncoderModel", "T5Config", vocab_size=VOCAB, d_model=HIDDEN,
                                                                     d_kv=HIDDEN // HEADS, d_ff=FFN, num_layers=LAYERS, num_heads=HEADS,
                                                                     relative_attention_num_buckets=32),
                                                          ["last_hidden_state"]),
                       ["input_ids", "attention_mask"], ["last_hidden_state"], text, vocab=VOCAB, pad=0))
    specs.append(_Spec("whisper_encoder", "transformer", _whisper_encoder, ["input_features"], ["last_hidden_state"],
                       {"input_features": {0: "batch"}}))
    return {spec.name: spec for spec in specs}


def _lazy_hf(model, config, **kwargs):
    """A builder of transformers.<model>(transformers.<config>(**kwargs)) (transformers is
    imported when it is called)."""

    def build():
        import transformers
        return _hf(getattr(transformers, model), getattr(transformers, config), **kwargs)()

    return build


WHISPER_MELS, WHISPER_POSITIONS = 80, 100  # input_features [N, 80, 200]


def _whisper_encoder():
    torch = _torch()
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    torch.manual_seed(0)
    inner = WhisperEncoder(WhisperConfig(d_model=HIDDEN, encoder_layers=LAYERS, encoder_attention_heads=HEADS, encoder_ffn_dim=FFN,
                                         decoder_layers=LAYERS, decoder_attention_heads=HEADS, decoder_ffn_dim=FFN,
                                         num_mel_bins=WHISPER_MELS, max_source_positions=WHISPER_POSITIONS, vocab_size=VOCAB))
    inner = _perturb_constants(inner, 0).eval()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = inner

        def forward(self, input_features):
            return (self.model(input_features=input_features).last_hidden_state,)

    return Encoder().eval()


def _cnn_builder(name):
    def build():
        torch = _torch()
        seed = CNN_NAMES.index(name)
        torch.manual_seed(seed)
        return _init_cnn(_cnn_modules()[name](), seed)

    return build


SPECS = _specs()
MODELS = tuple(SPECS)
CNNS = tuple(name for name, spec in SPECS.items() if spec.kind == "cnn")
TRANSFORMERS = tuple(name for name, spec in SPECS.items() if spec.kind == "transformer")

# Exports that fail with torch 2.13 / transformers 5.x, and why (export() records the error;
# test_zoo asserts that these fail and that every other combination exports).
EXPECTED_EXPORT_FAILURES = {}


# MARK: - Example inputs


def inputs(name, batch, seed=0, sequence=SEQUENCE, past=6):
    """Seeded example inputs of model `name` as {input name: numpy array}: images N(0, 1);
    token ids in [pad + 1, vocab) with an attention mask that pads the end of every row but
    the first (the padded positions hold the pad id); for gpt2_past, `sequence` new tokens
    after `past` cached ones (random keys and values), the mask covering both."""
    spec = SPECS[name]
    rng = np.random.default_rng(seed)
    if spec.input_names == ["image"] or spec.input_names == ["pixel_values"]:
        return {spec.input_names[0]: rng.standard_normal((batch, 3, IMAGE, IMAGE)).astype(np.float32)}
    if name == "whisper_encoder":
        return {"input_features": rng.standard_normal((batch, WHISPER_MELS, 2 * WHISPER_POSITIONS)).astype(np.float32)}
    total = sequence + (past if name == "gpt2_past" else 0)
    mask = np.ones((batch, total), np.int64)
    for row in range(1, batch):
        mask[row, total - min(total - 1, 1 + (row * 3) % max(1, total // 2)):] = 0
    ids = rng.integers(spec.pad + 1, spec.vocab, (batch, sequence), dtype=np.int64)
    ids[mask[:, total - sequence:] == 0] = spec.pad
    feeds = {"input_ids": ids, "attention_mask": mask}
    if name == "gpt2_past":
        for input_name in spec.input_names[2:]:
            feeds[input_name] = (rng.standard_normal((batch, HEADS, past, HIDDEN // HEADS)) * 0.5).astype(np.float32)
    return feeds


# MARK: - Export


def _versions():
    """(torch version, transformers version), from the installed packages' metadata (without
    importing them)."""
    from importlib.metadata import version
    return version("torch"), version("transformers")


def file_key(name, exporter, versions=None):
    torch_version, transformers_version = versions or _versions()
    clean = lambda v: v.replace("+", "_")  # noqa: E731
    return f"{name}-{exporter}-torch{clean(torch_version)}-tf{clean(transformers_version)}-v{ZOO_VERSION}"


@dataclass
class Entry:
    """One (model, exporter) of the zoo: the exported file, or the export's error."""

    name: str
    exporter: str
    path: Path = None
    error: str = None
    seconds: float = 0.0

    @property
    def id(self):
        return f"{self.name}-{self.exporter}"

    @property
    def kind(self):
        return SPECS[self.name].kind


def _dynamo_shapes(spec, torch):
    dims = {}
    shapes = {}
    for input_name, axes in spec.dynamic.items():
        entry = {}
        for axis, dim_name in axes.items():
            if dim_name not in dims:
                dims[dim_name] = torch.export.Dim.AUTO if dim_name == "total" else torch.export.Dim(dim_name, min=1, max=BATCH_MAX if dim_name == "batch" else POSITIONS - 16)
            entry[axis] = dims[dim_name]
        shapes[input_name] = entry
    return tuple(shapes.get(n) for n in spec.input_names)


def _export_to(spec, exporter, path, prepare=None):
    """Exports spec's module (after `prepare(module)` when given) to `path`."""
    torch = _torch()
    module = spec.build()
    if prepare is not None:
        prepare(module)
    example = inputs(spec.name, 2, seed=1)
    args = tuple(torch.from_numpy(example[n]) for n in spec.input_names)
    with torch.no_grad():
        if exporter == "torchscript":
            axes = dict(spec.dynamic)
            for output in spec.output_names:
                axes[output] = {0: "batch"}
            torch.onnx.export(module, args, str(path), input_names=spec.input_names, output_names=spec.output_names,
                              opset_version=17, dynamo=False, dynamic_axes=axes)
        else:
            program = torch.onnx.export(module, args, None, input_names=spec.input_names, output_names=spec.output_names,
                                        opset_version=18, dynamo=True, dynamic_shapes=_dynamo_shapes(spec, torch))
            program.save(str(path), external_data=True)


def export(name, exporter, directory=None, versions=None):
    """The cached export of `name` by `exporter` (exporting it when missing) as an Entry.

    The file (and a dynamo export's external data, `<file>.data`) is written in a temporary
    folder beside it and moved into place, the data first: a `.onnx` file in the zoo is
    complete. A failed export writes `<key>.failed.json` with the error, returned as
    Entry.error (and not retried until the key changes)."""
    directory = Path(directory or zoo_dir())
    directory.mkdir(parents=True, exist_ok=True)
    key = file_key(name, exporter, versions)
    path, failed = directory / f"{key}.onnx", directory / f"{key}.failed.json"
    if path.exists():
        return Entry(name, exporter, path=path)
    if failed.exists():
        return Entry(name, exporter, error=json.loads(failed.read_text())["error"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=directory, prefix=f".{key}.") as scratch:
        scratch_path = Path(scratch) / path.name
        try:
            _export_to(SPECS[name], exporter, scratch_path)
            import onnx
            onnx.checker.check_model(str(scratch_path))  # loadable by path, external data included
        except Exception as error:  # noqa: BLE001 - recorded, not raised
            message = f"{type(error).__name__}: {error}".strip()
            detail = traceback.format_exc(limit=-4)
            _write_atomic(failed, json.dumps({"error": message, "traceback": detail}, indent=1).encode())
            return Entry(name, exporter, error=message, seconds=time.perf_counter() - started)
        for extra in sorted(Path(scratch).iterdir()):  # external data before the model
            if extra != scratch_path:
                os.replace(extra, directory / extra.name)
        os.replace(scratch_path, path)
    return Entry(name, exporter, path=path, seconds=time.perf_counter() - started)


def _write_atomic(path, data):
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


def _export_in_child(arguments):
    """export() in a worker process, its chatter (the exporters print progress and warnings)
    sent to <zoo>/export.log."""
    name, exporter, directory, versions = arguments
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import warnings
    warnings.filterwarnings("ignore")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(Path(directory) / "export.log", "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            _torch().set_num_threads(1)
            entry = export(name, exporter, directory, versions)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    return entry.name, entry.exporter, str(entry.path) if entry.path else None, entry.error, entry.seconds


def export_all(directory=None, jobs=None, models=MODELS, exporters=EXPORTERS):
    """Every (model, exporter) of the zoo as Entries, in MODELS order; missing files are
    exported in `jobs` worker processes (default: the CPU count), each new one once."""
    directory = Path(directory or zoo_dir())
    directory.mkdir(parents=True, exist_ok=True)
    versions = _versions()
    wanted = [(name, exporter) for name in models for exporter in exporters]
    entries = {}
    todo = []
    for name, exporter in wanted:
        key = file_key(name, exporter, versions)
        if (directory / f"{key}.onnx").exists() or (directory / f"{key}.failed.json").exists():
            entries[name, exporter] = export(name, exporter, directory, versions)
        else:
            todo.append((name, exporter, str(directory), versions))
    jobs = jobs or os.cpu_count() or 1
    if todo:
        todo.sort(key=lambda arguments: (arguments[1] != "dynamo", SPECS[arguments[0]].kind != "cnn"))  # longest first
        if jobs > 1 and len(todo) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            # spawn: a fork of a process that imported torch (and its thread pools) can hang. A
            # worker that dies fails its export (not recorded: the next run tries again).
            with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(_export_in_child, arguments): arguments for arguments in todo}
                results = []
                for future, (name, exporter, _, _) in futures.items():
                    try:
                        results.append(future.result())
                    except Exception as error:  # noqa: BLE001 - BrokenProcessPool and the like
                        results.append((name, exporter, None, f"the export process failed: {type(error).__name__}: {error}", 0.0))
        else:
            results = [_export_in_child(arguments) for arguments in todo]
        for name, exporter, path, error, seconds in results:
            entries[name, exporter] = Entry(name, exporter, Path(path) if path else None, error, seconds)
    return [entries[key] for key in wanted]


# MARK: - Measurements shared by the tests and the status table


PRUNABLE_OPS = {"Conv": (1,), "Gemm": (0, 1), "MatMul": (0, 1)}


def export_prepared(name, exporter, path, prepare):
    """Exports zoo model `name` by `exporter` to `path` after `prepare(module)` (not cached)."""
    _export_to(SPECS[name], exporter, path, prepare)


def prunable_parameters(path):
    """Parameters of the Conv, Gemm and MatMul weight initializers of the file at `path` (read
    directly or through Identity nodes, each counted once), from the dims alone."""
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    identity = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity"}
    seen = set()
    for node in model.graph.node:
        for index in PRUNABLE_OPS.get(node.op_type, ()):
            if index < len(node.input):
                name = node.input[index]
                while name in identity:
                    name = identity[name]
                if name in sizes:
                    seen.add(name)
    return sum(sizes[name] for name in seen)


def ort_session(path, optimized=True):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    if not optimized:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_run(path, feeds, optimized=True):
    session = ort_session(path, optimized)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def kerf_run(path, feeds, **options):
    import kerf
    with kerf.load(str(path)) as model, model.session(**options) as session:
        return session.run(feeds)


def calibration(name, batches=3, batch=2):
    """Calibration feeds for static quantization: `batches` dicts of seeded inputs."""
    return [inputs(name, batch, seed=100 + k) for k in range(batches)]


def max_abs_diff(expected, actual):
    return max(float(np.max(np.abs(expected[k].astype(np.float64) - actual[k]))) if expected[k].size else 0.0 for k in expected)


def relative_rms(actual, expected):
    """RMS of (actual - expected) over RMS of expected."""
    actual, expected = actual.astype(np.float64), expected.astype(np.float64)
    return float(np.sqrt(np.mean((actual - expected) ** 2) / np.mean(expected ** 2)))


def static_int8_budget(meaning, reference):
    """How far (relative RMS) Kerf's run of a static int8 CNN file may be from the file's
    meaning: no further than the file's meaning is from the float model (its quantization
    error), and 0.03 at least (see test_zoo.test_int8)."""
    return max(0.03, relative_rms(meaning, reference))


# MARK: - Status table


def _check_file(name, exporter, path, work):
    """Yields the measurements of one status row, stage by stage (run in a child process by
    status(), which keeps what a stage that crashed the process had printed)."""
    import kerf
    spec = SPECS[name]
    feeds = inputs(name, 2, seed=7)
    reference = ort_run(path, feeds)
    try:
        got = kerf_run(path, feeds)
        if list(got) != list(reference) or any(got[k].shape != reference[k].shape for k in reference):
            yield {"kerf": f"outputs {[(k, v.shape) for k, v in got.items()]}, ONNX Runtime's {[(k, v.shape) for k, v in reference.items()]}"}
        else:
            yield {"kerf": "ok", "diff": max_abs_diff(reference, got), "scale": max(float(np.max(np.abs(v))) for v in reference.values())}
    except Exception as error:  # noqa: BLE001
        yield {"kerf": f"{type(error).__name__}: {error}"}
    quantized = Path(work) / f"{name}-{exporter}.int8.onnx"
    yield {"int8": "crashed while quantizing"}
    try:
        if spec.kind == "cnn":
            kerf.quantize(str(path), str(quantized), mode="static", calibration=calibration(name))
            yield {"int8": "crashed while running the int8 file"}
            meaning = ort_run(quantized, feeds, optimized=False)["logits"]
            ort_run(quantized, feeds, optimized=True)
            q = kerf_run(quantized, feeds)["logits"]
            error, budget = relative_rms(q, meaning), static_int8_budget(meaning, reference["logits"])
            verdict = "ok" if error <= budget else "FAIL"
            yield {"int8": f"{verdict} static: rel.RMS kerf vs file meaning {error:.3f} (budget {budget:.3f}), "
                           f"file vs float {relative_rms(meaning, reference['logits']):.3f}"}
        else:
            kerf.quantize(str(path), str(quantized), mode="dynamic")
            yield {"int8": "crashed while running the int8 file"}
            ort_run(quantized, feeds)
            q = kerf_run(quantized, feeds)
            error = max(relative_rms(q[k], reference[k]) for k in reference)
            yield {"int8": f"{'ok' if error <= 0.03 else 'FAIL'} dynamic: rel.RMS kerf vs float {error:.4f}; ONNX Runtime runs it"}
    except Exception as error:  # noqa: BLE001
        yield {"int8": f"FAIL {type(error).__name__}: {error}"}
    pruned = Path(work) / f"{name}-{exporter}.pruned.onnx"
    yield {"pruned": "crashed while pruning"}
    try:
        report = kerf.prune(str(path), str(pruned), method="channel", sparsity=PRUNE_SPARSITY,
                            channel_multiple=PRUNE_CHANNEL_MULTIPLE)
        before, after = prunable_parameters(path), prunable_parameters(pruned)
        yield {"pruned": 1 - after / before, "prunable": before, "skipped": [s["reason"] for s in report.get("skipped", [])],
               "pruned_run": "crashed while running the pruned file"}
        a, b = ort_run(pruned, feeds), kerf_run(pruned, feeds)
        same = list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
        diff = max_abs_diff(a, b) if same else None
        tolerance = 1e-4 * max(1.0, max(float(np.abs(v).max()) for v in a.values()))
        yield {"pruned_run": (f"{'ok' if diff <= tolerance else 'FAIL'} max|kerf-ort| {diff:.3g}" if same
                              else f"FAIL outputs {[(k, v.shape) for k, v in b.items()]} vs {[(k, v.shape) for k, v in a.items()]}")}
    except Exception as error:  # noqa: BLE001
        yield {"pruned": f"FAIL {type(error).__name__}: {error}"}


def _status_child():
    """`zoo.py --check NAME EXPORTER PATH WORK`: prints the row's parts as JSON lines."""
    name, exporter, path, work = sys.argv[2:6]
    for part in _check_file(name, exporter, path, work):
        print("ZOO-ROW " + json.dumps(part), flush=True)


def status(directory=None, jobs=None, verbose=False):
    """Checks every exported file in its own process and prints one row per file; returns the rows."""
    import subprocess
    entries = export_all(directory, jobs)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for entry in entries:
            row = {"id": entry.id}
            if entry.path is None:
                row["exported"] = f"no: {entry.error.splitlines()[0]}"
            else:
                row["exported"] = "yes"
                done = subprocess.run([sys.executable, __file__, "--check", entry.name, entry.exporter, str(entry.path), work],
                                      capture_output=True, text=True)
                for line in done.stdout.splitlines():
                    if line.startswith("ZOO-ROW "):
                        row.update(json.loads(line[8:]))
                if done.returncode:
                    tail = " | ".join((done.stderr.strip().splitlines() or ["(nothing on stderr)"])[-3:])
                    row["died"] = f"the check process died (exit {done.returncode}): {tail}"
            rows.append(row)
            _print_row(row, verbose)
    return rows


def _reason_kinds(reasons):
    """[(count, reason with the node and tensor names left out)], most frequent first."""
    import re
    kinds = {}
    for reason in reasons:
        kind = re.sub(r"\(group \d+\)", "(group n)", re.sub(r"'[^']*'", "'…'", reason))
        kinds[kind] = kinds.get(kind, 0) + 1
    return sorted(((count, kind) for kind, count in kinds.items()), key=lambda item: (-item[0], item[1]))


def _print_row(row, verbose=False):
    print(f"{row['id']:<31} exported: {row['exported']}")
    if row["exported"] != "yes":
        return
    diff = f"; max|kerf-ort| {row['diff']:.3g} (outputs up to {row['scale']:.3g})" if "diff" in row else ""
    print(f"    float: {row.get('kerf', '?')}{diff}")
    print(f"    int8:  {row.get('int8', '?')}")
    pruned = row.get("pruned", "?")
    if isinstance(pruned, float):
        skipped = row.get("skipped", [])
        print(f"    prune: channel 0.3 removes {pruned:.1%} of {row['prunable']} prunable parameters; pruned file: {row.get('pruned_run', '?')}; "
              f"{len(skipped)} groups skipped")
        for count, kind in _reason_kinds(skipped):
            print(f"      {count:3d}x {kind}")
        if verbose:
            for reason in skipped:
                print(f"           {reason}")
    else:
        print(f"    prune: {pruned}")
    if "died" in row:
        print(f"    {row['died']}")
    sys.stdout.flush()


def main():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        _status_child()
        return
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--status", action="store_true", help="check every file with Kerf and print one row per file")
    parser.add_argument("--verbose", action="store_true", help="with --status: every skipped group's reason, names included")
    parser.add_argument("--jobs", type=int, default=None, help="export processes (default: CPU count)")
    parser.add_argument("--dir", default=None, help="zoo folder (default $KERF_ZOO_DIR or .build/kerf-work/zoo)")
    arguments = parser.parse_args()
    if arguments.status:
        status(arguments.dir, arguments.jobs, arguments.verbose)
        return
    started = time.perf_counter()
    for entry in export_all(arguments.dir, arguments.jobs):
        state = str(entry.path) if entry.path else f"FAILED: {entry.error}"
        print(f"{entry.id:<30} {entry.seconds:6.1f}s {state}")
    print(f"{time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
