#!/usr/bin/env python3
"""mmfuse against PyTorch: one full training step on the same network and the same device.

For each workload this program
  1. gets the network's prototxt (`mmfuse zoo ...` or a file under models/),
  2. writes a benchmark prototxt: the TRAIN-phase data layer(s) become one `Input` layer with
     the same tops and explicit shapes, TEST-phase layers and metric layers are dropped,
  3. times `mmfuse time --model BENCH` (its median whole iteration: forward + backward + SGD
     update) and, when printed, its peak device memory,
  4. translates the same benchmark prototxt into a torch.nn.Module, layer by layer, following
     mmfuse's semantics (layers/*.cpp, docs/layers.md, docs/fusion.md), checks the learnable
     parameter count against `mmfuse check`, and times one SGD-momentum step
     (zero_grad(set_to_none=True), forward, backward, step) the same way,
and prints one table row per (workload, precision). Steps 3 and 4 run in interleaved rounds
(mmfuse, PyTorch, mmfuse, ...: a change of machine load hits both) and each figure is the median
over the rounds. On CPU it then prints, per workload, the time per layer family (conv, BN /
private BN, ReLU, pooling, fusion, upsample, inner product, loss, data, other layers, and the
optimizer with what no layer claims): mmfuse's from the per-layer rows of `mmfuse time`, PyTorch's
from its profiler (a range per layer; backward nodes attributed by their forward op's sequence
number), each the median over the rounds, with the mmfuse/PyTorch ratio.

    python3 bench/vs_pytorch.py [--mmfuse ./build/mmfuse] [--workloads a,b,...] [--iterations K]
                                [--device cuda|cpu] [--batch-scale F] [--size S] [--json out.json]
                                [--workdir DIR] [--timeout SEC] [--check-forward [--check-only]]
                                [--no-inplace] [--skip-mmfuse] [--rounds R] [--threads T]
                                [--no-families]

On CPU, compare thread counts with --threads 1 and --threads 2 (OMP_NUM_THREADS for mmfuse,
torch.set_num_threads for PyTorch), e.g.
    python3 bench/vs_pytorch.py --mmfuse build/mmfuse --device cpu --threads 1 --rounds 5

Workloads: asymfusion101 (two rows: -tf32 and -fp32), mmtm18, lenet, asymfusion-synthetic; any
name takes a -tf32 or -fp32 suffix to pick one precision; a path ending in .prototxt is a
workload too. On CPU precision does not apply (fp32). --batch-scale and --size rewrite the
Input shapes (e.g. `--size 64 --batch-scale 0.17` to try the big nets on a CPU).

The PyTorch module is what one would write by hand: cuDNN/ATen ops, ReLU in place where the
prototxt is in place (top == bottom) and the tensor is not shared or saved for backward
(--no-inplace: never), each blob dropped after its last reader, private BatchNorm as one
F.batch_norm per modality slice (batch statistics) or one fused x * scale + shift over the
[M, N, C, ...] view (frozen statistics), SGD(momentum 0.9, lr 0.01, weight_decay 5e-4) with
lr_mult / decay_mult as parameter groups (lr_mult 0: not updated, as in mmfuse).

--check-forward (CPU; on CUDA at the default precision): loads the PyTorch module's initial
parameters into mmfuse (`mmfuse import-weights`), runs `mmfuse forward --phase train --backward`
on the same input (random labels; dropout ratio 0 in a separate check prototxt so that both sides
are deterministic) and compares the loss, every blob and every parameter gradient, then both
frameworks' float32 gradients against a float64 PyTorch reference with the MAX-pooling argmax
pinned to mmfuse's (near-ties in stride-1 pooling and ReLU signs near 0 flip with rounding: the
gradients of both frameworks then differ from the reference by about the same amount).

Inputs follow `mmfuse time`: Input tops are uniform [0, 1) random values, and zeros for blobs whose
name contains "label" (int64 for PyTorch's cross entropy).

Runs with PyTorch 1.13 (Debian bookworm's python3-torch, CPU) up to 2.x (CUDA).
"""

import argparse
import gc
import json
import math
import os
import re
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ------------------------------------------------------------------------------------------
# Protobuf text format: a small recursive-descent parser and printer.
# ------------------------------------------------------------------------------------------


class Tok:
    """A scalar field value: kind is 'num', 'str' (quoted) or 'ident' (enum / bool)."""

    __slots__ = ("kind", "text")

    def __init__(self, kind, text):
        self.kind, self.text = kind, text

    def value(self):
        if self.kind == "str":
            return _unquote(self.text)
        if self.kind == "ident":
            low = self.text.lower()
            if low in ("true", "t"):
                return True
            if low in ("false", "f"):
                return False
            if low in ("inf", "infinity"):
                return float("inf")
            if low == "nan":
                return float("nan")
            return self.text
        t = self.text
        try:
            if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)", t):
                return int(t, 0) if not re.fullmatch(r"[-+]?0\d+", t) else int(t, 8)
            return float(t.rstrip("fF")) if not t.lower().endswith("inf") else float(t)
        except ValueError:
            raise ValueError("bad number %r" % t)

    def __repr__(self):
        return self.text


def num(v):
    return Tok("num", repr(v) if isinstance(v, float) else str(int(v)))


def qstr(s):
    return Tok("str", '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')


def ident(s):
    return Tok("ident", s)


def _unquote(text):
    q = text[0]
    body = text[1:-1]
    out, i = [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b",
              "f": "\f", "v": "\v", "?": "?"}
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            d = body[i + 1]
            if d in simple:
                out.append(simple[d])
                i += 2
                continue
            m = re.match(r"[0-7]{1,3}", body[i + 1:])
            if m:
                out.append(chr(int(m.group(0), 8)))
                i += 1 + len(m.group(0))
                continue
            if d == "x":
                m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
                if m:
                    out.append(chr(int(m.group(0), 16)))
                    i += 2 + len(m.group(0))
                    continue
        out.append(c)
        i += 1
    del q
    return "".join(out)


class Msg:
    """An ordered list of (key, value) pairs; value is a Tok or a Msg. Repeated fields repeat."""

    def __init__(self, items=None):
        self.items = list(items) if items else []

    # -- access
    def all(self, key):
        return [v for k, v in self.items if k == key]

    def has(self, key):
        return any(k == key for k, _ in self.items)

    def raw(self, key):
        vals = self.all(key)
        return vals[-1] if vals else None  # proto2 text: the last value of a singular field wins

    def val(self, key, default=None):
        v = self.raw(key)
        if v is None:
            return default
        if isinstance(v, Msg):
            raise ValueError("field %r is a message, expected a value" % key)
        return v.value()

    def vals(self, key):
        return [v.value() for v in self.all(key)]

    def msg(self, key):
        """The (last) sub-message, or an empty one (not added)."""
        v = self.raw(key)
        if v is None:
            return Msg()
        if not isinstance(v, Msg):
            raise ValueError("field %r is a value, expected a message" % key)
        return v

    # -- edit
    def add(self, key, value):
        self.items.append((key, value))
        return value

    def set(self, key, value):
        self.remove(key)
        self.items.append((key, value))

    def remove(self, key):
        self.items = [(k, v) for k, v in self.items if k != key]

    def ensure(self, key):
        v = self.raw(key)
        if v is None:
            v = self.add(key, Msg())
        return v

    def copy(self):
        return Msg([(k, v.copy() if isinstance(v, Msg) else v) for k, v in self.items])

    # -- print
    def dump(self, indent=0):
        pad = "  " * indent
        out = []
        for k, v in self.items:
            if isinstance(v, Msg):
                if all(not isinstance(x, Msg) for _, x in v.items) and len(v.items) <= 8:
                    inner = " ".join("%s: %s" % (kk, vv.text) for kk, vv in v.items)
                    out.append("%s%s { %s }" % (pad, k, inner) if inner else "%s%s { }" % (pad, k))
                else:
                    out.append("%s%s {" % (pad, k))
                    out.append(v.dump(indent + 1))
                    out.append("%s}" % pad)
            else:
                out.append("%s%s: %s" % (pad, k, v.text))
        return "\n".join(x for x in out if x != "")


_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)[fF]?|inf(?:inity)?\b|nan\b))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}:\[\],;<>])
""", re.X)


class ParseError(Exception):
    pass


def parse_text(text, where="<text>"):
    toks = []  # (kind, text, line)
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ParseError("%s:%d: unexpected character %r" % (where, line, text[pos]))
        kind = m.lastgroup
        s = m.group(kind)
        if kind != "ws":
            toks.append((kind, s, line))
        line += s.count("\n")
        pos = m.end()
    i = 0

    def peek():
        return toks[i] if i < len(toks) else (None, None, line)

    def expect(t):
        nonlocal i
        k, s, ln = peek()
        if s != t:
            raise ParseError("%s:%d: expected %r, got %r" % (where, ln, t, s))
        i += 1

    def scalar():
        nonlocal i
        k, s, ln = peek()
        if k in ("num", "str", "ident"):
            i += 1
            if k == "str":  # adjacent string literals concatenate
                parts = [s]
                while peek()[0] == "str":
                    parts.append(peek()[1])
                    i += 1
                if len(parts) > 1:
                    s = qstr("".join(_unquote(p) for p in parts)).text
            return Tok(k, s)
        raise ParseError("%s:%d: expected a value, got %r" % (where, ln, s))

    def message(close):
        nonlocal i
        m = Msg()
        while True:
            k, s, ln = peek()
            if k is None:
                if close is None:
                    return m
                raise ParseError("%s: missing %r at the end" % (where, close))
            if k == "punct" and s == close:
                i += 1
                return m
            if k == "punct" and s in ",;":
                i += 1
                continue
            if k != "ident":
                raise ParseError("%s:%d: expected a field name, got %r" % (where, ln, s))
            key = s
            i += 1
            k2, s2, _ = peek()
            if s2 == ":":
                i += 1
                k3, s3, _ = peek()
                if s3 in ("{", "<"):
                    i += 1
                    m.add(key, message("}" if s3 == "{" else ">"))
                elif s3 == "[":
                    i += 1
                    while peek()[1] != "]":
                        if peek()[1] in ("{", "<"):
                            o = peek()[1]
                            i += 1
                            m.add(key, message("}" if o == "{" else ">"))
                        else:
                            m.add(key, scalar())
                        if peek()[1] == ",":
                            i += 1
                    expect("]")
                else:
                    m.add(key, scalar())
            elif s2 in ("{", "<"):
                i += 1
                m.add(key, message("}" if s2 == "{" else ">"))
            else:
                raise ParseError("%s:%d: expected ':' or '{' after %r, got %r" % (where, ln, key, s2))

    return message(None)


def read_prototxt(path):
    with open(path) as f:
        return parse_text(f.read(), path)


# ------------------------------------------------------------------------------------------
# Net-level rules shared with mmfuse (core/net.cpp)
# ------------------------------------------------------------------------------------------

DATA_TYPES = ("MultimodalImageData", "SyntheticRgbdData", "FashionMnistData")
METRIC_TYPES = ("Accuracy", "SegmentationMetric")
LOSS_TYPES = ("SoftmaxWithLoss", "EuclideanLoss", "L1Loss")

# LayerParameter messages that have a `modalities` field (core/proto/mmfuse.proto).
MODALITY_MSGS = ("loss_param", "accuracy_param", "batch_norm_param", "channel_shuffle_param",
                 "pixel_shift_param", "modality_ensemble_param", "modality_param",
                 "segmentation_metric_param")
LAYER_PARAM_MSGS = (
    "transform_param", "loss_param", "accuracy_param", "batch_norm_param", "concat_param",
    "convolution_param", "crop_param", "dropout_param", "eltwise_param", "flatten_param",
    "inner_product_param", "input_param", "interp_param", "pooling_param", "relu_param",
    "reshape_param", "scale_param", "sigmoid_param", "slice_param", "softmax_param", "tanh_param",
    "channel_shuffle_param", "pixel_shift_param", "mmtm_param", "modality_ensemble_param",
    "modality_param", "multimodal_data_param", "fashion_mnist_param", "synthetic_rgbd_param",
    "segmentation_metric_param")


def snake_case(t):
    out = []
    for i, c in enumerate(t):
        if c.isupper() and i > 0 and t[i - 1].islower():
            out.append("_")
        out.append(c.lower())
    return "".join(out)


def phase_name(v):
    if isinstance(v, str):
        return v.upper()
    return {0: "TRAIN", 1: "TEST"}.get(v, str(v))


def layer_included(lp, phase, level=0, stages=()):
    """Caffe's Net::StateMeetsRule, as core/net.cpp's layer_included."""

    def meets(rule):
        if rule.has("phase") and phase_name(rule.val("phase")) != phase:
            return False
        if rule.has("min_level") and level < rule.val("min_level"):
            return False
        if rule.has("max_level") and level > rule.val("max_level"):
            return False
        for s in rule.vals("stage"):
            if s not in stages:
                return False
        for s in rule.vals("not_stage"):
            if s in stages:
                return False
        return True

    inc = lp.all("include")
    if inc:
        return any(meets(r) for r in inc)
    return not any(meets(r) for r in lp.all("exclude"))


def apply_defaults(lp, defaults):
    """core/net.cpp apply_defaults, for the fields that matter here (modalities,
    use_global_stats; fillers do not matter: weights are random or loaded)."""
    if defaults is None:
        return lp
    lp = lp.copy()
    own = snake_case(lp.val("type", "")) + "_param"
    if own in LAYER_PARAM_MSGS:
        lp.ensure(own)
    for key in MODALITY_MSGS:
        for m in lp.all(key):
            if isinstance(m, Msg) and defaults.has("modalities") and not m.has("modalities"):
                m.add("modalities", defaults.raw("modalities"))
    for m in lp.all("batch_norm_param"):
        if isinstance(m, Msg) and defaults.has("use_global_stats") and not m.has("use_global_stats"):
            m.add("use_global_stats", defaults.raw("use_global_stats"))
    return lp


def enum(msg, key, names, default):
    """An enum field by name or number -> its name."""
    v = msg.val(key, default)
    if isinstance(v, int) and not isinstance(v, bool):
        return names[v]
    return v


def canonical_axis(axis, nd):
    a = axis + nd if axis < 0 else axis
    if not 0 <= a < nd:
        raise ValueError("axis %d out of range for %d dims" % (axis, nd))
    return a


def prod(xs):
    p = 1
    for x in xs:
        p *= int(x)
    return p


# ------------------------------------------------------------------------------------------
# Benchmark prototxt: data layers -> one Input layer with explicit shapes
# ------------------------------------------------------------------------------------------


def data_layer_shapes(lp, batch_scale=1.0, size=None):
    """Top shapes (and 'float'/'label' kind) of a data layer, from layers/<type>.cpp."""
    t = lp.val("type")
    tops = lp.vals("top")

    def scaled(n):
        return max(1, int(round(n * batch_scale)))

    if t == "SyntheticRgbdData":
        p = lp.msg("synthetic_rgbd_param")
        n, s = scaled(p.val("batch_size", 8)), p.val("size", 64)
        if size:
            s = size
        label = [n] if p.val("classification", False) else [n, s, s]
        if p.val("stacked", True):
            shapes = [[2 * n, 3, s, s], label]
        else:
            shapes = [[n, 3, s, s], [n, 1, s, s], label]
    elif t == "FashionMnistData":
        p = lp.msg("fashion_mnist_param")
        n = scaled(p.val("batch_size", 64))
        s = size or 28
        views = 2 if p.val("two_view", False) else 1
        shapes = [[n, 1, s, s]] * views + [[n]]
    elif t == "MultimodalImageData":
        p = lp.msg("multimodal_data_param")
        n = scaled(p.val("batch_size", 1))
        mods = p.all("modality")
        if not mods:
            raise ValueError("%s: multimodal_data_param needs a modality" % lp.val("name"))
        chans = []
        for m in mods:
            r = m.val("replicate", 0)
            chans.append(r if r > 0 else m.val("channels", 3))
        aug = p.msg("augmentation")
        h = aug.val("crop_height", 0)
        w = aug.val("crop_width", 0) or h
        if size:
            h = w = size
        if not h or not w:
            raise ValueError("%s: no crop fixes the image size; give --size" % lp.val("name"))
        seg = enum(p, "task", ["SEGMENTATION", "CLASSIFICATION"], "SEGMENTATION") == "SEGMENTATION"
        if p.val("stacked", True):
            shapes = [[len(mods) * n, chans[0], h, w]]
        else:
            shapes = [[n, c, h, w] for c in chans]
        shapes.append([n, h, w] if seg else [n])
    else:
        raise NotImplementedError("data layer type %s (%s) is not supported" % (t, lp.val("name")))
    if len(shapes) != len(tops):
        raise ValueError("%s (%s): %d tops, expected %d" % (lp.val("name"), t, len(tops), len(shapes)))
    return list(zip(tops, shapes))


def make_bench_net(net, batch_scale=1.0, size=None, dropout_zero=False):
    """The TRAIN-phase benchmark net: data layers -> one Input layer; TEST layers and metric
    layers dropped. Returns (NetParameter Msg, [(top, shape)])."""
    state = net.msg("state")
    level, stages = state.val("level", 0), state.vals("stage")
    out = Msg()
    inputs = []
    input_layer = None
    for k, v in net.items:
        if k != "layer":
            out.add(k, v.copy() if isinstance(v, Msg) else v)
            continue
        lp = v
        if not layer_included(lp, "TRAIN", level, stages):
            continue
        t = lp.val("type")
        if t in METRIC_TYPES:
            continue
        if t in DATA_TYPES:
            shapes = data_layer_shapes(lp, batch_scale, size)
            if input_layer is None:
                input_layer = out.add("layer", Msg([("name", qstr("input")), ("type", qstr("Input"))]))
                input_layer.add("input_param", Msg())
            for top, shape in shapes:
                input_layer.items.insert(len(input_layer.items) - 1, ("top", qstr(top)))
                input_layer.msg("input_param").add("shape", Msg([("dim", num(d)) for d in shape]))
                inputs.append((top, shape))
            continue
        lp = lp.copy()
        if t == "Input" and (batch_scale != 1.0 or size):
            ip = lp.msg("input_param")
            for sh in ip.all("shape"):
                dims = [d for d in sh.vals("dim")]
                if dims:
                    dims[0] = max(1, int(round(dims[0] * batch_scale)))
                    if size and len(dims) == 4:
                        dims[2] = dims[3] = size
                sh.items = [("dim", num(d)) for d in dims]
        if t == "Input":
            ip = lp.msg("input_param")
            shp = ip.all("shape")
            for i, top in enumerate(lp.vals("top")):
                s = shp[0] if len(shp) == 1 else shp[i]
                inputs.append((top, s.vals("dim")))
        if dropout_zero and t == "Dropout":
            lp.ensure("dropout_param").set("dropout_ratio", num(0.0))
        # `phase:` on the layer itself is not a rule; keep includes (TRAIN-phase: harmless).
        out.add("layer", lp)
    # Caffe deploy inputs (`input:` with `input_shape`/`input_dim`) stay as they are.
    names = net.vals("input")
    if names:
        shapes = [m.vals("dim") for m in net.all("input_shape")]
        dims = net.vals("input_dim")
        for i, n in enumerate(names):
            inputs.append((n, shapes[i] if shapes else dims[4 * i:4 * i + 4]))
    return out, inputs


# ------------------------------------------------------------------------------------------
# The PyTorch translation
# ------------------------------------------------------------------------------------------


def _f32(x):
    """The float32 value a prototxt float field holds (protobuf stores float, not double)."""
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def channel_shuffle_kept(channels, keep_ratio):
    """core/ops/fusion.cpp channel_shuffle_kept."""
    if not 0 <= keep_ratio <= 1:
        raise ValueError("keep_ratio %g outside [0, 1]" % keep_ratio)
    for q in range(1, 101):
        pq = keep_ratio * q
        p = math.floor(pq + 0.5)
        if abs(pq - p) <= 1e-6 * q:
            return int(p) * (channels // q)
    raise ValueError("keep_ratio %g is not a fraction p/q with q <= 100" % keep_ratio)


def pool_out(inp, k, s, p, ceil_mode):
    """core/ops/pool.cpp pool_output_size (PyTorch's rule)."""
    out = (inp + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= inp + p:
        out -= 1
    return out


class Layer:
    __slots__ = ("name", "type", "bottoms", "tops", "fn", "weights", "aliasing")


class CaffeNet(nn.Module):
    """A prototxt network (one phase) as a torch.nn.Module: forward(inputs: {blob: tensor})
    returns the loss sum(loss_weight * sum(top))."""

    def __init__(self, net, phase="TRAIN", device="cpu", inplace=True, keep_blobs=False, dtype=torch.float32):
        super().__init__()
        self.device_ = torch.device(device)
        self.dtype_ = dtype
        self.phase = phase
        self.inplace = inplace
        self.keep_blobs = keep_blobs
        self.profile_layers = False        # wrap each layer in a profiler range (family_times)
        self.mm_params = OrderedDict()     # mmfuse name -> nn.Parameter (learnable)
        self.mm_state = OrderedDict()      # mmfuse name -> buffer (BatchNorm statistics)
        self.mm_order = []                 # every mmfuse parameter name, in layer order
        self.lr_spec = {}                  # mmfuse name -> (lr_mult, decay_mult)
        self._shared = {}                  # param { name } -> tensor
        self.layers = []
        self.shapes = OrderedDict()        # blob -> shape (after the last layer writing it)
        self.top_shapes = []               # per layer: [(top, shape)]
        self.input_names = []
        self.last_blobs = None
        self.inplace_relus = 0             # ReLU layers that run in place (F.relu_)
        self.pool_geom = {}                # MAX pooling layer -> geometry
        self.pool_pin = {}                 # MAX pooling layer -> argmax indices to use instead
        self._count = 0
        defaults = net.raw("defaults")
        state = net.msg("state")
        level, stages = state.val("level", 0), state.vals("stage")
        fresh = {}  # blob -> True when its tensor is owned by that blob alone (safe in-place)
        names = net.vals("input")
        if names:
            shp = [m.vals("dim") for m in net.all("input_shape")]
            dims = net.vals("input_dim")
            for i, n in enumerate(names):
                self.shapes[n] = list(shp[i] if shp else dims[4 * i:4 * i + 4])
                self.input_names.append(n)
                fresh[n] = False
        for lp in net.all("layer"):
            if not layer_included(lp, phase, level, stages):
                continue
            lp = apply_defaults(lp, defaults)
            t = lp.val("type")
            name = lp.val("name")
            L = Layer()
            L.name, L.type = name, t
            L.bottoms, L.tops = lp.vals("bottom"), lp.vals("top")
            for b in L.bottoms:
                if b not in self.shapes:
                    raise ValueError("layer %s: bottom %r is not a top of an earlier layer" % (name, b))
            bshapes = [list(self.shapes[b]) for b in L.bottoms]
            builder = getattr(self, "_build_" + t, None)
            if builder is None:
                raise NotImplementedError("layer type %r (layer %r) is not supported by bench/vs_pytorch.py"
                                          % (t, name))
            self._layer_param_index = 0
            self._lp = lp
            try:
                fn, tshapes, aliasing = builder(lp, bshapes, fresh)
            except NotImplementedError:
                raise
            except Exception as e:
                raise ValueError("layer %s (%s) with bottoms %s: %s" % (name, t, bshapes, e))
            if len(tshapes) != len(L.tops):
                raise ValueError("layer %s (%s): %d tops, expected %d" % (name, t, len(L.tops), len(tshapes)))
            L.fn = fn
            L.aliasing = aliasing
            lw = [float(x) for x in lp.vals("loss_weight")]
            if lw and len(lw) != len(L.tops):
                raise ValueError("layer %s: %d loss_weight values for %d tops" % (name, len(lw), len(L.tops)))
            if not lw:
                lw = [0.0] * len(L.tops)
                if t in LOSS_TYPES and L.tops:
                    lw[0] = 1.0
            L.weights = lw
            if aliasing:  # a top may share the bottom's tensor: in-place on either is unsafe
                for b in L.bottoms:
                    fresh[b] = False
            for top, s in zip(L.tops, tshapes):
                self.shapes[top] = list(s)
                in_place = top in L.bottoms
                if not (in_place and t == "ReLU"):
                    # Sigmoid, TanH, Softmax and (out-of-place) ReLU save their output for backward
                    fresh[top] = not aliasing and t not in ("Sigmoid", "TanH", "Softmax", "ReLU")
            if t == "Input":
                self.input_names.extend(L.tops)
            self.top_shapes.append((name, t, list(zip(L.tops, tshapes))))
            self.layers.append(L)
        # Liveness: drop a blob's value after its last reader, as a hand-written module's local
        # variables go out of scope (values that autograd saved stay alive through autograd).
        self.free_after = [[] for _ in self.layers]
        for i, L in enumerate(self.layers):
            for top in L.tops:
                j = i
                for k in range(i + 1, len(self.layers)):
                    if top in self.layers[k].bottoms:
                        j = k
                    if top in self.layers[k].tops:
                        break
                # An in-place reader rebinds the name itself: nothing to drop there.
                if not (j > i and top in self.layers[j].tops):
                    self.free_after[j].append(top)

    # -- parameters
    def _add(self, lp, pname, shape, init, learnable=True):
        idx = self._layer_param_index
        self._layer_param_index += 1
        full = "%s.%s" % (lp.val("name"), pname)
        specs = lp.all("param")
        spec = specs[idx] if idx < len(specs) else Msg()
        lr_mult, decay_mult = float(spec.val("lr_mult", 1.0)), float(spec.val("decay_mult", 1.0))
        shared = spec.val("name", "")
        if shared and shared in self._shared:
            t = self._shared[shared]
            if list(t.shape) != list(shape):
                raise ValueError("shared parameter %r has shape %s here but %s before"
                                 % (shared, list(shape), list(t.shape)))
            return t
        data = torch.empty([int(s) for s in shape], dtype=self.dtype_, device=self.device_)
        with torch.no_grad():
            init(data)
        safe = "p%d_%s" % (self._count, re.sub(r"[^A-Za-z0-9_]", "_", full))
        self._count += 1
        if learnable:
            t = nn.Parameter(data)
            self.register_parameter(safe, t)
            self.mm_params[full] = t
            self.lr_spec[full] = (lr_mult, decay_mult)
        else:
            self.register_buffer(safe, data)
            t = getattr(self, safe)
            self.mm_state[full] = t
        self.mm_order.append(full)
        if shared:
            self._shared[shared] = t
        return t

    @staticmethod
    def _uniform(bound):
        return lambda t: t.uniform_(-bound, bound)

    @staticmethod
    def _const(v):
        return lambda t: t.fill_(v)

    # -- layers: each returns (fn(bottoms) -> tops, top shapes, tops alias a bottom?)
    def _build_Input(self, lp, bs, fresh):
        ip = lp.msg("input_param")
        shp = [s.vals("dim") for s in ip.all("shape")]
        tops = lp.vals("top")
        if len(shp) not in (1, len(tops)):
            raise ValueError("input_param has %d shapes for %d tops" % (len(shp), len(tops)))
        return None, [shp[0] if len(shp) == 1 else shp[i] for i in range(len(tops))], True

    def _conv_geometry(self, cp):
        def pick(values, fallback):
            if len(values) > 2:
                raise ValueError("more than 2 values")
            h = values[0] if values else fallback
            w = values[1] if len(values) > 1 else h
            return int(h), int(w)

        if cp.has("kernel_h") or cp.has("kernel_w"):
            kh, kw = cp.val("kernel_h"), cp.val("kernel_w")
        else:
            kh, kw = pick(cp.vals("kernel_size"), 0)
        if cp.has("pad_h") or cp.has("pad_w"):
            ph, pw = cp.val("pad_h", 0), cp.val("pad_w", 0)
        else:
            ph, pw = pick(cp.vals("pad"), 0)
        if cp.has("stride_h") or cp.has("stride_w"):
            sh, sw = cp.val("stride_h"), cp.val("stride_w")
        else:
            sh, sw = pick(cp.vals("stride"), 1)
        dh, dw = pick(cp.vals("dilation"), 1)
        if cp.val("axis", 1) != 1:
            raise ValueError("only axis 1 is supported")
        return (kh, kw), (sh, sw), (ph, pw), (dh, dw)

    def _build_Convolution(self, lp, bs, fresh):
        cp = lp.msg("convolution_param")
        x = bs[0]
        (kh, kw), stride, pad, dil = self._conv_geometry(cp)
        out, groups = cp.val("num_output"), cp.val("group", 1)
        if len(x) != 4 or x[1] % groups or out % groups:
            raise ValueError("bad bottom or group")
        wshape = [out, x[1] // groups, kh, kw]
        fan_in = prod(wshape[1:])
        b = 1.0 / math.sqrt(fan_in)
        w = self._add(lp, "weight", wshape, self._uniform(b))
        bias = self._add(lp, "bias", [out], self._uniform(b)) if cp.val("bias_term", True) else None
        oh = (x[2] + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
        ow = (x[3] + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1

        def fn(bt):
            return [F.conv2d(bt[0], w, bias, stride, pad, dil, groups)]

        return fn, [[x[0], out, oh, ow]], False

    def _build_Deconvolution(self, lp, bs, fresh):
        cp = lp.msg("convolution_param")
        x = bs[0]
        (kh, kw), stride, pad, dil = self._conv_geometry(cp)
        out, groups = cp.val("num_output"), cp.val("group", 1)
        op = cp.val("output_padding", 0)
        wshape = [x[1], out // groups, kh, kw]
        fan_in = prod(wshape[1:])
        b = 1.0 / math.sqrt(fan_in)
        w = self._add(lp, "weight", wshape, self._uniform(b))
        bias = self._add(lp, "bias", [out], self._uniform(b)) if cp.val("bias_term", True) else None
        oh = (x[2] - 1) * stride[0] - 2 * pad[0] + dil[0] * (kh - 1) + op + 1
        ow = (x[3] - 1) * stride[1] - 2 * pad[1] + dil[1] * (kw - 1) + op + 1

        def fn(bt):
            return [F.conv_transpose2d(bt[0], w, bias, stride, pad, op, groups, dil)]

        return fn, [[x[0], out, oh, ow]], False

    def _build_InnerProduct(self, lp, bs, fresh):
        p = lp.msg("inner_product_param")
        x = bs[0]
        axis = canonical_axis(p.val("axis", 1), len(x))
        k = prod(x[axis:])
        out = p.val("num_output")
        transpose = p.val("transpose", False)
        b = 1.0 / math.sqrt(k)
        w = self._add(lp, "weight", [k, out] if transpose else [out, k], self._uniform(b))
        bias = self._add(lp, "bias", [out], self._uniform(b)) if p.val("bias_term", True) else None
        lead = x[:axis]
        rows = prod(lead)

        def fn(bt):
            flat = bt[0].reshape(rows, k)
            if transpose:
                y = flat.matmul(w)
                if bias is not None:
                    y = y + bias
            else:
                y = F.linear(flat, w, bias)
            return [y.reshape(lead + [out])]

        return fn, [lead + [out]], False

    def _build_BatchNorm(self, lp, bs, fresh):
        p = lp.msg("batch_norm_param")
        x = bs[0]
        m = p.val("modalities", 1)
        if len(x) < 2 or x[0] % m:
            raise ValueError("batch not divisible by modalities %d" % m)
        eps = _f32(p.val("eps", 1e-5))
        f = _f32(p.val("moving_average_fraction", 0.999))
        momentum = 1.0 - f  # mmfuse's normalised average tends to this (first update: batch stats)
        global_stats = p.val("use_global_stats") if p.has("use_global_stats") else self.phase == "TEST"
        c = x[1]
        s = [c] if m == 1 else [m, c]
        mean = self._add(lp, "mean", s, self._const(0.0), learnable=False)
        var = self._add(lp, "variance", s, self._const(1.0), learnable=False)
        affine = p.val("affine", False)
        gamma = self._add(lp, "gamma", s, self._const(1.0)) if affine else None
        beta = self._add(lp, "beta", s, self._const(0.0)) if affine else None
        n = x[0] // m
        rest = x[2:]
        bview = [m, 1, c] + [1] * len(rest)

        if m == 1:
            def fn(bt):
                return [F.batch_norm(bt[0], mean, var, gamma, beta, not global_stats, momentum, eps)]
        elif global_stats:
            # Frozen statistics: one per-(modality, channel) affine map, y = x * scale + shift.
            def fn(bt):
                scale = torch.rsqrt(var + eps)
                if gamma is not None:
                    scale = gamma * scale
                shift = -mean * scale
                if beta is not None:
                    shift = shift + beta
                xv = bt[0].reshape([m, n, c] + rest)
                return [torch.addcmul(shift.reshape(bview), xv, scale.reshape(bview)).reshape(x[:1] + [c] + rest)]
        else:
            def fn(bt):
                parts = bt[0].split(n, 0)
                outs = [F.batch_norm(parts[i], mean[i], var[i], None if gamma is None else gamma[i],
                                     None if beta is None else beta[i], True, momentum, eps) for i in range(m)]
                return [torch.cat(outs, 0)]

        return fn, [x], False

    def _build_Scale(self, lp, bs, fresh):
        p = lp.msg("scale_param")
        x = bs[0]
        nd = len(x)
        axis = canonical_axis(p.val("axis", 1), nd)
        if len(bs) == 2:
            gshape = bs[1]
        else:
            na = p.val("num_axes", 1)
            end = nd if na == -1 else axis + na
            gshape = x[axis:end]
        span = len(gshape)
        stored = gshape if gshape else [1]
        gamma = None
        if len(bs) == 1:
            gamma = self._add(lp, "gamma", stored, self._const(1.0))
        beta = self._add(lp, "beta", stored, self._const(0.0)) if p.val("bias_term", False) else None
        bshape = list(gshape) + [1] * (nd - axis - span)

        def fn(bt):
            g = bt[1] if len(bt) == 2 else gamma
            if span:
                g = g.reshape(bshape)
            y = bt[0] * g
            if beta is not None:
                y = y + (beta.reshape(bshape) if span else beta)
            return [y]

        return fn, [x], False

    def _build_ReLU(self, lp, bs, fresh):
        slope = _f32(lp.msg("relu_param").val("negative_slope", 0.0))
        b = lp.vals("bottom")[0]
        in_place = self.inplace and b in lp.vals("top") and fresh.get(b, False)
        self.inplace_relus += int(in_place)
        if slope == 0:
            fn = (lambda bt: [F.relu_(bt[0])]) if in_place else (lambda bt: [F.relu(bt[0])])
        else:
            fn = ((lambda bt: [F.leaky_relu_(bt[0], slope)]) if in_place
                  else (lambda bt: [F.leaky_relu(bt[0], slope)]))
        return fn, [bs[0]], False

    def _build_Sigmoid(self, lp, bs, fresh):
        return (lambda bt: [torch.sigmoid(bt[0])]), [bs[0]], False

    def _build_TanH(self, lp, bs, fresh):
        return (lambda bt: [torch.tanh(bt[0])]), [bs[0]], False

    def _build_Pooling(self, lp, bs, fresh):
        p = lp.msg("pooling_param")
        x = bs[0]
        if len(x) != 4:
            raise ValueError("expects [N, C, H, W]")
        pool = enum(p, "pool", ["MAX", "AVE", "STOCHASTIC"], "MAX")
        if pool == "STOCHASTIC":
            raise ValueError("STOCHASTIC pooling is not supported")
        if p.val("global_pooling", False):
            if pool == "MAX":  # one max-pool window (ties: the first maximum, as mmfuse)
                return (lambda bt: [F.max_pool2d(bt[0], (x[2], x[3]))]), [[x[0], x[1], 1, 1]], False
            return (lambda bt: [bt[0].mean(dim=(2, 3), keepdim=True)]), [[x[0], x[1], 1, 1]], False
        if p.has("kernel_h") or p.has("kernel_w"):
            kh, kw = p.val("kernel_h"), p.val("kernel_w")
        else:
            kh = kw = p.val("kernel_size")
        if p.has("pad_h") or p.has("pad_w"):
            ph, pw = p.val("pad_h", 0), p.val("pad_w", 0)
        else:
            ph = pw = p.val("pad", 0)
        if p.has("stride_h") or p.has("stride_w"):
            sh, sw = p.val("stride_h"), p.val("stride_w")
        else:
            sh = sw = p.val("stride", 1)
        ceil_mode = enum(p, "round_mode", ["CEIL", "FLOOR"], "CEIL") == "CEIL"
        oh, ow = pool_out(x[2], kh, sh, ph, ceil_mode), pool_out(x[3], kw, sw, pw, ceil_mode)
        if pool == "MAX":
            name = lp.val("name")
            self.pool_geom[name] = ((kh, kw), (sh, sw), (ph, pw), ceil_mode)

            def fn(bt):
                idx = self.pool_pin.get(name)
                if idx is not None:  # --check-forward: mmfuse's argmax (see check_forward)
                    return [bt[0].flatten(2).gather(2, idx.flatten(2)).reshape(idx.shape)]
                return [F.max_pool2d(bt[0], (kh, kw), (sh, sw), (ph, pw), 1, ceil_mode)]
        else:
            def fn(bt):
                return [F.avg_pool2d(bt[0], (kh, kw), (sh, sw), (ph, pw), ceil_mode, True)]
        return fn, [[x[0], x[1], oh, ow]], False

    def _build_Eltwise(self, lp, bs, fresh):
        p = lp.msg("eltwise_param")
        op = enum(p, "operation", ["PROD", "SUM", "MAX"], "SUM")
        coeff = [_f32(c) for c in p.vals("coeff")]
        if coeff and len(coeff) != len(bs):
            raise ValueError("one coeff per bottom")
        for s in bs[1:]:
            if s != bs[0]:
                raise ValueError("bottoms must have one shape")

        def fn(bt):
            y = None
            for i, v in enumerate(bt):
                if op == "SUM":
                    c = coeff[i] if coeff else 1.0
                    if y is None:
                        y = v * c if c != 1.0 else v
                    else:
                        y = torch.add(y, v, alpha=c) if c != 1.0 else y + v
                elif op == "PROD":
                    y = v if y is None else y * v
                else:
                    y = v if y is None else torch.maximum(y, v)
            if len(bt) == 1:
                y = y.clone()
            return [y]

        return fn, [bs[0]], False

    def _build_Concat(self, lp, bs, fresh):
        p = lp.msg("concat_param")
        nd = len(bs[0])
        axis = canonical_axis(p.val("concat_dim") if p.has("concat_dim") else p.val("axis", 1), nd)
        top = list(bs[0])
        top[axis] = sum(s[axis] for s in bs)
        if len(bs) == 1:
            return (lambda bt: [bt[0]]), [top], True
        return (lambda bt: [torch.cat(bt, axis)]), [top], False

    def _build_Slice(self, lp, bs, fresh):
        p = lp.msg("slice_param")
        x = bs[0]
        axis = canonical_axis(p.val("slice_dim") if p.has("slice_dim") else p.val("axis", 1), len(x))
        ntop = len(lp.vals("top"))
        points = p.vals("slice_point")
        if points:
            edges = [0] + points + [x[axis]]
        else:
            step = x[axis] // ntop
            edges = [step * i for i in range(ntop + 1)]
        sizes = [edges[i + 1] - edges[i] for i in range(ntop)]
        shapes = []
        for sz in sizes:
            s = list(x)
            s[axis] = sz
            shapes.append(s)
        return (lambda bt: list(torch.split(bt[0], sizes, axis))), shapes, True

    def _build_Split(self, lp, bs, fresh):
        n = len(lp.vals("top"))
        return (lambda bt: [bt[0]] * n), [bs[0]] * n, True

    def _build_Silence(self, lp, bs, fresh):
        return (lambda bt: []), [], True

    def _build_Flatten(self, lp, bs, fresh):
        p = lp.msg("flatten_param")
        x = bs[0]
        a = canonical_axis(p.val("axis", 1), len(x))
        e = canonical_axis(p.val("end_axis", -1), len(x))
        top = x[:a] + [prod(x[a:e + 1])] + x[e + 1:]
        return (lambda bt: [bt[0].reshape(top)]), [top], True

    def _build_Reshape(self, lp, bs, fresh):
        p = lp.msg("reshape_param")
        x = bs[0]
        dims = p.msg("shape").vals("dim")
        nd = len(x)
        axis = p.val("axis", 0)
        start = axis + nd + 1 if axis < 0 else axis
        na = p.val("num_axes", -1)
        end = nd if na == -1 else start + na
        new = []
        for i, d in enumerate(dims):
            new.append(x[start + i] if d == 0 else d)
        top = x[:start] + new + x[end:]
        if -1 in top:
            known = prod(d for d in top if d != -1)
            top[top.index(-1)] = prod(x) // known
        return (lambda bt: [bt[0].reshape(top)]), [top], True

    def _build_Crop(self, lp, bs, fresh):
        p = lp.msg("crop_param")
        x, ref = bs
        axis = canonical_axis(p.val("axis", 2), len(x))
        offs = p.vals("offset")
        top = list(x)
        sl = [slice(None)] * len(x)
        for d in range(axis, len(x)):
            o = 0 if not offs else (offs[0] if len(offs) == 1 else offs[d - axis])
            top[d] = ref[d]
            sl[d] = slice(o, o + ref[d])
        return (lambda bt: [bt[0][tuple(sl)]]), [top], True

    def _build_Dropout(self, lp, bs, fresh):
        r = _f32(lp.msg("dropout_param").val("dropout_ratio", 0.5))
        train = self.phase == "TRAIN"
        if not train or r == 0:
            return (lambda bt: [bt[0]]), [bs[0]], True
        return (lambda bt: [F.dropout(bt[0], r, True)]), [bs[0]], False

    def _build_Softmax(self, lp, bs, fresh):
        axis = canonical_axis(lp.msg("softmax_param").val("axis", 1), len(bs[0]))
        return (lambda bt: [torch.softmax(bt[0], axis)]), [bs[0]], False

    def _build_Interp(self, lp, bs, fresh):
        p = lp.msg("interp_param")
        x = bs[0]
        pb, pe = p.val("pad_beg", 0), p.val("pad_end", 0)
        if pb > 0 or pe > 0:
            raise ValueError("pad_beg/pad_end must be <= 0")
        h, w = x[2] + pb + pe, x[3] + pb + pe
        if len(bs) == 2:
            oh, ow = bs[1][-2], bs[1][-1]
        elif p.has("height") or p.has("width"):
            oh, ow = p.val("height"), p.val("width")
        else:
            oh, ow = h, w
            if p.has("shrink_factor"):
                s = p.val("shrink_factor")
                oh, ow = (oh - 1) // s + 1, (ow - 1) // s + 1
            if p.has("zoom_factor"):
                z = p.val("zoom_factor")
                oh, ow = (oh - 1) * z + 1, (ow - 1) * z + 1
            if not (p.has("shrink_factor") or p.has("zoom_factor")):
                raise ValueError("no output size given")
        align = p.val("align_corners", True)
        nearest = enum(p, "mode", ["BILINEAR", "NEAREST"], "BILINEAR") == "NEAREST"

        def fn(bt):
            v = bt[0]
            if pb or pe:
                v = v[:, :, -pb:x[2] + pe, -pb:x[3] + pe]
            if nearest:
                return [F.interpolate(v, size=(oh, ow), mode="nearest")]
            return [F.interpolate(v, size=(oh, ow), mode="bilinear", align_corners=align)]

        return fn, [[x[0], x[1], oh, ow]], False

    def _build_ChannelShuffle(self, lp, bs, fresh):
        p = lp.msg("channel_shuffle_param")
        x = bs[0]
        m = p.val("modalities", 2)
        keep = channel_shuffle_kept(x[1], _f32(p.val("keep_ratio", 0.8)))
        receivers = set(p.vals("receivers")) or set(range(m))
        n = x[0] // m
        src = [(i + 1) % m if i in receivers else i for i in range(m)]
        idx = torch.tensor(src, dtype=torch.long, device=self.device_)
        rolled = src == [(i + 1) % m for i in range(m)]
        view = [m, n] + x[1:]

        def fn(bt):
            v = bt[0].reshape(view)
            tail = v[:, :, keep:]
            tail = torch.roll(tail, -1, 0) if rolled else tail.index_select(0, idx)
            return [torch.cat([v[:, :, :keep], tail], 2).reshape(x)]

        if keep >= x[1] or receivers == set() or src == list(range(m)):
            return (lambda bt: [bt[0].clone()]), [x], False
        return fn, [x], False

    def _build_PixelShift(self, lp, bs, fresh):
        p = lp.msg("pixel_shift_param")
        y = bs[0]
        if bs[1] != y or len(y) != 4:
            raise ValueError("bottoms (Y, A) must be one [M*N, C, H, W] shape")
        m = p.val("modalities", 2)
        groups, shift = p.val("groups", 4), p.val("shift", 1)
        receivers = set(p.vals("receivers")) or set(range(m))
        c, hh, ww = y[1], y[2], y[3]
        n = y[0] // m
        g = c // (groups + 1)
        dirs = [(1, 0), (0, 1), (0, -1), (-1, 0)]  # down, right, left, up
        moves = []
        for q in range(groups):
            dist = shift << (q // 4)
            dh, dw = dirs[q % 4][0] * dist, dirs[q % 4][1] * dist
            if abs(dh) >= hh or abs(dw) >= ww or g == 0:
                continue  # everything shifted out: zeros
            dst = (slice(q * g, (q + 1) * g), slice(max(dh, 0), hh + min(dh, 0)), slice(max(dw, 0), ww + min(dw, 0)))
            src = (slice(q * g, (q + 1) * g), slice(max(-dh, 0), hh - max(dh, 0)), slice(max(-dw, 0), ww - max(dw, 0)))
            moves.append((dst, src))
        srcs = [(i + 1) % m for i in range(m)]
        idx = torch.tensor(srcs, dtype=torch.long, device=self.device_)
        all_receive = receivers == set(range(m))

        def fn(bt):
            yv, a = bt
            ps = torch.zeros_like(a)
            for dst, src in moves:
                ps[(slice(None),) + dst] = a[(slice(None),) + src]
            psv = ps.reshape([m, n, c, hh, ww])
            if all_receive:
                return [yv + torch.roll(psv, -1, 0).reshape(y) if m == 2 else
                        yv + psv.index_select(0, idx).reshape(y)]
            yv5 = yv.reshape([m, n, c, hh, ww])
            parts = [yv5[i] + psv[srcs[i]] if i in receivers else yv5[i] for i in range(m)]
            return [torch.cat(parts, 0)]

        return fn, [y], False

    def _build_MMTM(self, lp, bs, fresh):
        p = lp.msg("mmtm_param")
        ntops = len(lp.vals("top"))
        if ntops != len(bs) or len(bs) < 2:
            raise ValueError("one top per bottom, >= 2 bottoms")
        ratio, scale = _f32(p.val("ratio", 4.0)), _f32(p.val("gate_scale", 2.0))
        identity = p.val("identity_init", False)
        total = sum(s[1] for s in bs)
        width = int(math.floor(total / ratio + 0.5))
        b = 1.0 / math.sqrt(total)
        sq_w = self._add(lp, "squeeze_weight", [width, total], self._uniform(b))
        sq_b = self._add(lp, "squeeze_bias", [width], self._uniform(b))
        ex = []
        for i, s in enumerate(bs):
            bz = 1.0 / math.sqrt(width)
            init = self._const(0.0) if identity else self._uniform(bz)
            ex.append((self._add(lp, "excite%d_weight" % i, [s[1], width], init),
                       self._add(lp, "excite%d_bias" % i, [s[1]], init)))

        def fn(bt):
            sq = [v if v.dim() == 2 else v.mean(dim=tuple(range(2, v.dim()))) for v in bt]
            z = F.relu(F.linear(torch.cat(sq, 1), sq_w, sq_b))
            tops = []
            for v, (w, bb) in zip(bt, ex):
                gate = torch.sigmoid(F.linear(z, w, bb))
                if scale != 1.0:
                    gate = gate * scale
                tops.append(v * gate.reshape(list(gate.shape) + [1] * (v.dim() - 2)))
            return tops

        return fn, [list(s) for s in bs], False

    def _build_ModalityEnsemble(self, lp, bs, fresh):
        p = lp.msg("modality_ensemble_param")
        x = bs[0]
        m = p.val("modalities", 2)
        detach = p.val("detach", True)
        alpha = self._add(lp, "alpha", [m], self._const(1.0))
        top = [x[0] // m] + x[1:]

        def fn(bt):
            v = bt[0].detach() if detach else bt[0]
            w = torch.softmax(alpha, 0)
            v = v.reshape([m] + top)
            return [(v * w.reshape([m] + [1] * len(top))).sum(0)]

        return fn, [top], False

    def _build_ModalityStack(self, lp, bs, fresh):
        top = [bs[0][0] * len(bs)] + bs[0][1:]
        return (lambda bt: [torch.cat(bt, 0)]), [top], False

    def _build_ModalitySplit(self, lp, bs, fresh):
        m = len(lp.vals("top"))
        part = [bs[0][0] // m] + bs[0][1:]
        return (lambda bt: list(bt[0].split(part[0], 0))), [part] * m, True

    def _build_ModalityTile(self, lp, bs, fresh):
        m = lp.msg("modality_param").val("modalities", 2)
        x = bs[0]
        return (lambda bt: [bt[0].repeat([m] + [1] * (len(x) - 1))]), [[x[0] * m] + x[1:]], False

    def _build_SoftmaxWithLoss(self, lp, bs, fresh):
        p = lp.msg("loss_param")
        logits, label = bs
        m = p.val("modalities", 1)
        expect = [logits[0] // m] + logits[2:]
        if prod(label) != prod(expect):
            raise ValueError("label %s does not match logits %s" % (label, logits))
        has_ignore = p.has("ignore_label")
        ignore = p.val("ignore_label") if has_ignore else -100
        mode = enum(p, "normalization", ["FULL", "VALID", "BATCH_SIZE", "NONE"], "VALID")
        if p.has("normalize"):
            mode = "VALID" if p.val("normalize") else "BATCH_SIZE"
        two = len(lp.vals("top")) == 2

        def fn(bt):
            lg, lb = bt
            lb = lb.reshape(expect)
            if lb.dtype != torch.long:
                lb = lb.long()
            target = lb.repeat([m] + [1] * (len(expect) - 1)) if m > 1 else lb
            total = F.cross_entropy(lg, target, ignore_index=ignore, reduction="sum")
            if mode == "VALID" and has_ignore:
                norm = (lb != ignore).sum().clamp(min=1).to(total.dtype)
                loss = total / norm
            else:
                d = {"FULL": prod(expect), "VALID": prod(expect), "BATCH_SIZE": expect[0], "NONE": 1}[mode]
                loss = total / float(max(1, d)) if d != 1 else total
            return [loss, torch.softmax(lg, 1)] if two else [loss]

        return fn, [[]] + ([logits] if two else []), False

    def _build_EuclideanLoss(self, lp, bs, fresh):
        n = bs[0][0]
        return (lambda bt: [((bt[0] - bt[1].reshape(bt[0].shape)) ** 2).sum() / (2.0 * n)]), [[]], False

    def _build_L1Loss(self, lp, bs, fresh):
        return (lambda bt: [F.l1_loss(bt[0], bt[1])]), [[]], False

    def _build_Accuracy(self, lp, bs, fresh):  # metrics: no part of a training step
        return (lambda bt: [None] * len(lp.vals("top"))), [[]] * len(lp.vals("top")), True

    _build_SegmentationMetric = _build_Accuracy

    # -- run
    def forward(self, inputs):
        blobs = dict(inputs)
        loss = None
        keep = self.keep_blobs
        for i, L in enumerate(self.layers):
            if L.fn is None:  # Input
                for t in L.tops:
                    if t not in blobs:
                        raise KeyError("no tensor given for input %r" % t)
                continue
            if self.profile_layers:
                with torch.autograd.profiler.record_function(LAYER_RANGE + L.name):
                    tops = L.fn([blobs[b] for b in L.bottoms])
            else:
                tops = L.fn([blobs[b] for b in L.bottoms])
            for name, t, w in zip(L.tops, tops, L.weights):
                blobs[name] = t
                if w != 0 and t is not None:
                    term = t if t.dim() == 0 else t.sum()
                    if w != 1:
                        term = term * w
                    loss = term if loss is None else loss + term
            if not keep:
                for name in self.free_after[i]:
                    blobs.pop(name, None)
        if keep:
            self.last_blobs = blobs
        if loss is None:
            raise ValueError("the net has no loss")
        return loss

    def learnable_count(self):
        return sum(p.numel() for p in self.mm_params.values())

    def state_count(self):
        return sum(b.numel() for b in self.mm_state.values())


# ------------------------------------------------------------------------------------------
# mmfuse side
# ------------------------------------------------------------------------------------------


class CmdError(Exception):
    pass


STDBUF = shutil.which("stdbuf")


def run_cmd(cmd, timeout, what, env=None):
    t0 = time.perf_counter()
    shown = " ".join(shlex.quote(c) for c in cmd)
    if STDBUF:  # line-buffered stdout: a timed-out run still shows how far it got
        cmd = [STDBUF, "-oL", "-eL"] + list(cmd)
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           universal_newlines=True, errors="replace", env=env)
    except OSError as e:
        raise CmdError("%s: cannot run %s: %s" % (what, shown, e))
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        raise CmdError("%s: timed out after %ds: %s\n--- output tail ---\n%s"
                       % (what, timeout, shown, tail(out)))
    if r.returncode != 0:
        raise CmdError("%s: exit code %d: %s\n--- output tail ---\n%s"
                       % (what, r.returncode, shown, tail(r.stdout)))
    return r.stdout, time.perf_counter() - t0


def tail(text, lines=25):
    return "\n".join((text or "").rstrip("\n").split("\n")[-lines:])


def mmfuse_check(mmfuse, path, timeout):
    out, _ = run_cmd([mmfuse, "check", path], timeout, "mmfuse check")
    m = re.search(r"Parameters: ([\d,]+) learnable(?: \+ ([\d,]+) state)?", out)
    if not m:
        raise CmdError("mmfuse check: no 'Parameters:' line\n" + tail(out))
    learnable = int(m.group(1).replace(",", ""))
    state = int((m.group(2) or "0").replace(",", ""))
    shapes = {}
    for line in out.split("\n"):
        mm = re.match(r"^  (\S+)\s+(\S+)\s+(.*?)\s+([\d,]+)( \(shared\))?$", line)
        if not mm or mm.group(1) == "layer":
            continue
        shapes[mm.group(1)] = [(t, [int(d) for d in s.split(",") if d.strip()])
                               for t, s in re.findall(r"(\S+) \[([^\]]*)\]", mm.group(3))]
    return learnable, state, shapes


MMFUSE_LOG = None  # --mmfuse-log


MMFUSE_ENV = None  # --threads: the environment of every mmfuse subprocess


def mmfuse_time(mmfuse, path, iterations, device, precision, timeout):
    cmd = [mmfuse, "time", "--model", path, "--iterations", str(iterations)]
    note = ""
    if device == "cuda":
        cmd += ["--gpu", "0", "--precision", precision]
    try:
        out, wall = run_cmd(cmd, timeout, "mmfuse time", MMFUSE_ENV)
    except CmdError as e:
        if device == "cuda" and "precision" in str(e) and re.search(r"unknown|unexpected|not a flag|option", str(e), re.I):
            cmd = [c for c in cmd if c not in ("--precision", precision)]
            out, wall = run_cmd(cmd, timeout, "mmfuse time", MMFUSE_ENV)
            note = "mmfuse has no --precision: ran at its default precision"
        else:
            raise
    if MMFUSE_LOG:  # the whole output (the per-layer profile) for later reading
        with open(MMFUSE_LOG, "a") as f:
            f.write("==== %s\n%s\n" % (" ".join(shlex.quote(c) for c in cmd), out))
    m = re.search(r"Whole iteration \(forward \+ backward \+ update\): mean ([\d.]+) ms, median ([\d.]+) ms", out)
    if not m:
        raise CmdError("mmfuse time: no 'Whole iteration (forward + backward + update)' line\n" + tail(out))
    pk = re.search(r"Peak device memory: ([\d.]+) MiB", out)
    # The per-layer table: "  name  Type  forward_ms  backward_ms" rows up to "total".
    layers = []
    for mm in re.finditer(r"^  (\S+)\s+([A-Za-z]\w*)\s+([\d.]+)\s+([\d.]+)$", out, re.M):
        if mm.group(1) != "layer":
            layers.append((mm.group(1), mm.group(2), float(mm.group(3)) + float(mm.group(4))))
    unattributed = re.search(r"^  \(no layer\)\s+([\d.]+)$", out, re.M)
    update = re.search(r"of which the update \(SGD step\): mean ([\d.]+) ms", out)
    outside = re.search(r"^Outside the layers .*: mean ([\d.]+) ms", out, re.M)
    return {"median_ms": float(m.group(2)), "mean_ms": float(m.group(1)),
            "peak_mib": float(pk.group(1)) if pk else None, "note": note, "wall_s": wall,
            "command": " ".join(shlex.quote(c) for c in cmd), "layers": layers,
            "unattributed_ms": float(unattributed.group(1)) if unattributed else 0.0,
            "update_ms": float(update.group(1)) if update else None,
            "outside_ms": float(outside.group(1)) if outside else None}


# ------------------------------------------------------------------------------------------
# PyTorch side
# ------------------------------------------------------------------------------------------


def set_precision(precision):
    """TF32 on or off for cuBLAS matmuls and cuDNN convolutions: "tf32", "fp32", or "default"
    (PyTorch's and mmfuse's defaults: matmul fp32, convolutions TF32). PyTorch >= 2.9 has a new
    API (fp32_precision) and must not mix it with the legacy allow_tf32 flags."""
    mat_tf32 = precision == "tf32"
    conv_tf32 = precision in ("tf32", "default")
    mat = getattr(torch.backends.cuda, "matmul", None)
    conv = getattr(torch.backends.cudnn, "conv", None)
    if mat is not None and hasattr(mat, "fp32_precision") and conv is not None and hasattr(conv, "fp32_precision"):
        mat.fp32_precision = "tf32" if mat_tf32 else "ieee"
        conv.fp32_precision = "tf32" if conv_tf32 else "ieee"
        return "fp32_precision: matmul %s, cudnn.conv %s" % (mat.fp32_precision, conv.fp32_precision)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = mat_tf32
        torch.backends.cudnn.allow_tf32 = conv_tf32
    return "allow_tf32: matmul %s, cudnn %s" % (mat_tf32, conv_tf32)


def make_inputs(inputs, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    fed = {}
    for name, shape in inputs:
        shape = [int(d) for d in shape]
        if "label" in name:
            fed[name] = torch.zeros(shape, dtype=torch.long).to(device)
        else:
            fed[name] = torch.rand(shape, generator=g).to(device)
    return fed


def make_optimizer(model, lr=0.01, momentum=0.9, weight_decay=0.0005):
    """SGD with momentum; per-parameter lr_mult / decay_mult as param groups; lr_mult 0
    parameters are left out (mmfuse's step skips them; their gradients are still computed)."""
    groups = OrderedDict()
    for name, p in model.mm_params.items():
        lm, dm = model.lr_spec[name]
        if lm == 0:
            continue
        groups.setdefault((lm, dm), []).append(p)
    pg = [{"params": ps, "lr": lr * lm, "weight_decay": weight_decay * dm} for (lm, dm), ps in groups.items()]
    return torch.optim.SGD(pg, lr=lr, momentum=momentum, weight_decay=weight_decay)


def torch_setup(bench_net, inputs, device, inplace):
    """The PyTorch module of a benchmark net in training mode, its inputs and its SGD optimizer
    (seed 0), as torch_time and torch_families both time them."""
    dev = torch.device(device)
    torch.manual_seed(0)
    model = CaffeNet(bench_net, "TRAIN", dev, inplace=inplace)
    model.train()
    return dev, model, make_inputs(inputs, dev), make_optimizer(model)


def torch_time(bench_net, inputs, device, iterations, inplace, warmup=3):
    dev, model, fed, opt = torch_setup(bench_net, inputs, device, inplace)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(fed)
        loss.backward()
        opt.step()
        return loss

    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        loss = step()
    if cuda:
        torch.cuda.synchronize()
        warm_peak = torch.cuda.max_memory_allocated() / 2.0 ** 20
        torch.cuda.reset_peak_memory_stats()
    times, walls = [], []
    for _ in range(iterations):
        if cuda:
            torch.cuda.synchronize()
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            a.record()
            loss = step()
            b.record()
            b.synchronize()
            walls.append((time.perf_counter() - t0) * 1e3)
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            loss = step()
            times.append((time.perf_counter() - t0) * 1e3)
    res = {"median_ms": statistics.median(times), "mean_ms": statistics.mean(times),
           "inplace_relus": model.inplace_relus, "relus": sum(1 for L in model.layers if L.type == "ReLU"),
           "loss": float(loss.detach()), "learnable": model.learnable_count(), "state": model.state_count(),
           "peak_mib": None}
    if cuda:
        res["peak_mib"] = torch.cuda.max_memory_allocated() / 2.0 ** 20
        res["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2.0 ** 20
        res["peak_incl_warmup_mib"] = max(warm_peak, res["peak_mib"])
        res["wall_median_ms"] = statistics.median(walls)
    return res  # the caller frees the model (gc.collect, torch.cuda.empty_cache)


# ------------------------------------------------------------------------------------------
# Per layer family (CPU): mmfuse's per-layer rows of `mmfuse time` against PyTorch's profiler
# ------------------------------------------------------------------------------------------

LAYER_RANGE = "mmfuse_layer:"      # profiler range around each layer's forward (CaffeNet)
UPDATE_RANGE = "mmfuse_update"     # profiler range around zero_grad + optimizer step

# Layer type -> family, in the order the table prints them. Types not listed are "other".
FAMILIES = OrderedDict([
    ("conv", ["Convolution", "Deconvolution"]),
    ("BN / private BN", ["BatchNorm", "Scale", "InstanceNorm", "LRN"]),
    ("ReLU / activations", ["ReLU", "Sigmoid", "TanH"]),
    ("pooling", ["Pooling"]),
    ("fusion (shuffle/shift/MMTM)", ["ChannelShuffle", "PixelShift", "MMTM", "ModalityEnsemble"]),
    ("upsample / resize", ["Interp", "Upsample", "Resize"]),
    ("inner product", ["InnerProduct"]),
    ("loss", ["SoftmaxWithLoss", "SigmoidCrossEntropyLoss", "EuclideanLoss", "L1Loss", "ContrastiveLoss"]),
    ("data", ["Input"]),
    ("other layers", []),
])
FAMILY_OF = {t: f for f, types in FAMILIES.items() for t in types}
UPDATE_FAMILY = "optimizer (+ unattributed)"


def family_of(layer_type):
    return FAMILY_OF.get(layer_type, "other layers")


def mmfuse_families(mt):
    """ms per family of one `mmfuse time` run: its per-layer forward + backward means, and the
    update: the SGD step's mean plus what no layer holds in the per-layer iterations (autograd's
    engine and gradient sums, zero_grad), both printed by `mmfuse time`; from an mmfuse that
    prints neither, the whole-iteration median less the layers."""
    fam = OrderedDict((f, 0.0) for f in FAMILIES)
    for _, ltype, ms in mt["layers"]:
        fam[family_of(ltype)] += ms
    if mt.get("update_ms") is not None and mt.get("outside_ms") is not None:
        # Both measured: the SGD step in the whole iterations, what no layer holds in the per-layer ones.
        fam[UPDATE_FAMILY] = mt["update_ms"] + mt["outside_ms"]
    else:  # an mmfuse without those lines: the whole-iteration median less the layers of other runs
        fam[UPDATE_FAMILY] = max(0.0, mt["median_ms"] - sum(fam.values()))
    return fam


def torch_families(bench_net, inputs, device, iterations, inplace, warmup=3):
    """ms per family of PyTorch's step, median over `iterations` profiled steps: each layer's
    forward is a profiler range; its backward is every autograd node whose sequence number one of
    the layer's forward ops recorded; zero_grad + step is the update range. The profiler adds a few
    microseconds per op, so these sum to somewhat more than the unprofiled step."""
    from torch.autograd import profiler
    dev, model, fed, opt = torch_setup(bench_net, inputs, device, inplace)
    type_of = {L.name: L.type for L in model.layers}

    def step():
        with profiler.record_function(UPDATE_RANGE):
            opt.zero_grad(set_to_none=True)
        loss = model(fed)
        loss.backward()
        with profiler.record_function(UPDATE_RANGE):
            opt.step()

    for _ in range(warmup):
        step()
    model.profile_layers = True
    per_step = []
    for _ in range(iterations):
        with profiler.profile() as prof:
            step()
        events = prof.function_events
        layer_of_seq, fam = {}, OrderedDict((f, 0.0) for f in FAMILIES)
        fam[UPDATE_FAMILY] = 0.0
        for e in events:
            if e.name.startswith(LAYER_RANGE):
                name = e.name[len(LAYER_RANGE):]
                fam[family_of(type_of.get(name, ""))] += e.cpu_time_total / 1e3
                todo = list(e.cpu_children)
                while todo:
                    c = todo.pop()
                    if c.sequence_nr >= 0:
                        layer_of_seq.setdefault(c.sequence_nr, name)
                    todo.extend(c.cpu_children)
            elif e.name == UPDATE_RANGE:
                fam[UPDATE_FAMILY] += e.cpu_time_total / 1e3
        for e in events:
            if e.name.startswith("autograd::engine::evaluate_function: "):
                name = layer_of_seq.get(e.sequence_nr)
                fam[family_of(type_of[name]) if name else UPDATE_FAMILY] += e.cpu_time_total / 1e3
        per_step.append(fam)
    model.profile_layers = False
    return OrderedDict((f, statistics.median(s[f] for s in per_step)) for f in per_step[0])


def print_families(row):
    """The per-family table of one workload row (medians over the rounds)."""
    mm, pt = row.get("mmfuse_families"), row.get("pytorch_families")
    if not mm or not pt:
        return
    print("\n%s %s, per layer family: ms per step (forward + backward), median of %d round(s)" % (
        row["workload"], row["precision"], row.get("rounds", 1)))
    header = ["family", "mmfuse ms", "PyTorch ms", "ratio"]
    lines = []
    for f in list(mm):
        a, b = mm[f], pt.get(f, 0.0)
        if a < 0.005 and b < 0.005:
            continue
        lines.append([f, "%.2f" % a, "%.2f" % b, "%.2f" % (a / b) if b > 0.005 else "n/a"])
    lines.append(["sum", "%.2f" % sum(mm.values()), "%.2f" % sum(pt.values()),
                  "%.2f" % (sum(mm.values()) / sum(pt.values())) if sum(pt.values()) > 0 else "n/a"])
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for cells in lines:
        print(" | ".join(str(c).ljust(w) for c, w in zip(cells, widths)))
    print("  mmfuse: `mmfuse time`'s per-layer means; its update row = the SGD step + what no layer holds "
          "(autograd engine, gradient sums, zero_grad), each measured (older builds: whole-step median - layers). "
          "PyTorch: profiler ranges per layer, backward nodes by sequence number (profiler overhead "
          "included: its sum exceeds the unprofiled step).")


def median_dict(dicts):
    return OrderedDict((k, statistics.median(d[k] for d in dicts)) for k in dicts[0])


# ------------------------------------------------------------------------------------------
# Semantics check: the same weights and input through mmfuse and PyTorch
# ------------------------------------------------------------------------------------------


def check_forward(mmfuse, check_path, bench_net_check, inputs, workdir, device, timeout, log):
    import numpy as np

    dev = torch.device(device)
    torch.manual_seed(123)
    model = CaffeNet(bench_net_check, "TRAIN", dev, inplace=False, keep_blobs=True)
    # Non-trivial values where mmfuse would start from constants.
    with torch.no_grad():
        for name in model.mm_order:
            t = model.mm_params.get(name, model.mm_state.get(name))
            pname = name.rsplit(".", 1)[1]
            if pname == "variance":
                t.uniform_(0.5, 1.5)
            elif pname == "mean":
                t.normal_(0, 0.1)
            elif pname in ("gamma", "alpha"):
                t.uniform_(0.5, 1.5)
            elif pname == "beta":
                t.normal_(0, 0.1)
    wdir = os.path.join(workdir, "check_weights")
    os.makedirs(wdir, exist_ok=True)
    for name in model.mm_order:
        t = model.mm_params.get(name, model.mm_state.get(name))
        np.save(os.path.join(wdir, name + ".npy"), t.detach().cpu().numpy().astype(np.float32))
    wfile = os.path.join(workdir, "check.weights")
    run_cmd([mmfuse, "import-weights", "--model", check_path, wdir, wfile], timeout, "mmfuse import-weights")

    # Inputs: uniform data; labels random classes (some ignored where a loss ignores a label).
    g = torch.Generator().manual_seed(7)
    classes, ignore = None, None
    for L in model.layers:
        if L.type == "SoftmaxWithLoss":
            k = model.shapes[L.bottoms[0]][1]
            classes = k if classes is None else min(classes, k)
    for lp in bench_net_check.all("layer"):
        if lp.val("type") == "SoftmaxWithLoss" and lp.msg("loss_param").has("ignore_label"):
            ignore = lp.msg("loss_param").val("ignore_label")
    fed, args = {}, []
    idir = os.path.join(workdir, "check_inputs")
    os.makedirs(idir, exist_ok=True)
    for name, shape in inputs:
        shape = [int(d) for d in shape]
        if "label" in name:
            lab = torch.randint(0, classes or 2, shape, generator=g)
            if ignore is not None:
                lab[torch.rand(shape, generator=g) < 0.1] = ignore
            np.save(os.path.join(idir, name + ".npy"), lab.numpy().astype(np.int32))
            fed[name] = lab.long().to(dev)
        else:
            x = torch.rand(shape, generator=g)
            np.save(os.path.join(idir, name + ".npy"), x.numpy().astype(np.float32))
            fed[name] = x.to(dev)
        args += ["--input", "%s=%s" % (name, os.path.join(idir, name + ".npy"))]
    ddir = os.path.join(workdir, "check_dump")
    cmd = [mmfuse, "forward", "--model", check_path, "--weights", wfile, "--phase", "train", "--backward",
           "--dump", ddir] + args
    if device == "cuda":
        cmd += ["--gpu", "0"]
    run_cmd(cmd, timeout, "mmfuse forward")

    model.train()
    loss = model(fed)
    loss.backward()
    blobs = model.last_blobs

    def rel(a, b):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            if a.size == b.size:
                a = a.reshape(b.shape)
            else:
                return float("inf")
        scale = max(np.abs(b).max() if b.size else 0.0, 1e-12)
        return float(np.abs(a - b).max() / scale) if a.size else 0.0

    def rel2(pairs):
        """[(a, b, name)] -> sorted [(||a - b|| / ||b||, name)]: one flipped ReLU sign or argmax
        does not dominate it as it dominates a max. A gradient that is ~0 in theory (the bias
        of a convolution followed by batch-statistics BatchNorm) is measured against
        1e-3 x the RMS of all gradients instead of its own norm."""
        pairs = [(np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1), n) for a, b, n in pairs]
        total = sum(b.size for _, b, _ in pairs)
        rms = math.sqrt(sum(float(np.dot(b, b)) for _, b, _ in pairs) / max(total, 1))
        out = []
        for a, b, n in pairs:
            if a.size != b.size:
                out.append((float("inf"), n))
                continue
            floor = max(1e-3 * rms * math.sqrt(b.size), 1e-30)
            out.append((float(np.linalg.norm(a - b) / max(np.linalg.norm(b), floor)) if a.size else 0.0, n))
        return sorted(out, reverse=True)

    def load(name):
        path = os.path.join(ddir, name.replace("/", "_") + ".npy")
        return np.load(path) if os.path.exists(path) else None

    # Loss: sum of loss_weight * top over the loss tops.
    mm_loss = 0.0
    loss_terms = []
    for L in model.layers:
        for top, w in zip(L.tops, L.weights):
            if w:
                v = load(top)
                if v is None:
                    raise CmdError("mmfuse forward wrote no %s.npy" % top)
                mm_loss += w * float(np.sum(v))
                loss_terms.append((top, float(np.sum(v)), float(blobs[top].detach().sum())))
    pt_loss = float(loss.detach())
    loss_rel = abs(mm_loss - pt_loss) / max(abs(pt_loss), 1e-12)
    blob_errs = []
    for name, t in blobs.items():
        if t is None or name in model.input_names:
            continue
        v = load(name)
        if v is None:
            continue
        blob_errs.append((rel(t.detach().cpu().numpy(), v), name))
    pairs, missing = [], []
    for name, p in model.mm_params.items():
        v = load(name + ".grad")
        if v is None or p.grad is None:
            if v is not None and np.abs(v).max() > 0:
                missing.append((float("inf"), name + " (no PyTorch grad)"))
            continue
        pairs.append((p.grad.detach().cpu().numpy(), v, name))
    grad_errs = missing + rel2(pairs)
    blob_errs.sort(reverse=True)

    # MAX pooling routes each gradient to one argmax; where two inputs of a window differ by
    # less than the forward's rounding (stride-1 pooling of pooled maps, RefineNet's CRP), the
    # two frameworks may pick different ones. Second pass: PyTorch uses the argmax that mmfuse's
    # own pooling input gives (from the dump, where that blob is not rebound later).
    later_tops = {}
    for i, L in enumerate(model.layers):
        for b in L.bottoms:
            later_tops.setdefault((i, b), any(b in M.tops for M in model.layers[i + 1:]))
    pins = {}
    for i, L in enumerate(model.layers):
        if L.name in model.pool_geom and not later_tops[(i, L.bottoms[0])]:
            v = load(L.bottoms[0])
            if v is None:
                continue
            k, st, pd, ceil = model.pool_geom[L.name]
            _, idx = F.max_pool2d(torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)), k, st, pd, 1, ceil,
                                  return_indices=True)
            pins[L.name] = idx.to(dev)
    # Discrete decisions (ReLU signs, argmax) near a tie flip with rounding in either
    # framework, so gradients are also compared with a float64 PyTorch reference (same
    # weights, input and pinned argmax): mmfuse should be as close to it as PyTorch float32.
    model.pool_pin = pins
    for p in model.mm_params.values():
        p.grad = None
    model(fed).backward()
    ref = CaffeNet(bench_net_check, "TRAIN", dev, inplace=False, dtype=torch.float64)
    with torch.no_grad():
        for name in model.mm_order:
            src = model.mm_params.get(name, model.mm_state.get(name))
            dst = ref.mm_params.get(name, ref.mm_state.get(name))
            dst.copy_(torch.from_numpy(np.load(os.path.join(wdir, name + ".npy"))).to(dst))
            del src
    ref.pool_pin = pins
    fed64 = {k: (v.double() if v.is_floating_point() else v) for k, v in fed.items()}
    loss64 = ref(fed64)
    loss64.backward()
    mm_pairs, pt_pairs = [], []
    for name, p in ref.mm_params.items():
        v = load(name + ".grad")
        g32 = model.mm_params[name].grad
        if v is None or p.grad is None or g32 is None:
            continue
        r = p.grad.detach().cpu().numpy()
        mm_pairs.append((v, r, name))
        pt_pairs.append((g32.detach().cpu().numpy(), r, name))
    mm_vs64, pt_vs64 = rel2(mm_pairs), rel2(pt_pairs)
    model.pool_pin = {}

    log("  check-forward: loss mmfuse %.7g PyTorch %.7g rel diff %.2e" % (mm_loss, pt_loss, loss_rel))
    for top, a, b in loss_terms:
        log("    loss top %-16s mmfuse %.7g PyTorch %.7g" % (top, a, b))
    log("    blobs compared: %d, worst max|diff|/max|ref|: %s" % (
        len(blob_errs), ", ".join("%s %.1e" % (n, e) for e, n in blob_errs[:4])))
    log("    parameter gradients compared: %d, worst ||diff||/||ref||: %s" % (
        len(grad_errs), ", ".join("%s %.1e" % (n, e) for e, n in grad_errs[:4])))
    log("    against a float64 PyTorch reference (loss %.9g; argmax of %d MAX pooling layers pinned to "
        "mmfuse's): worst parameter gradient ||diff||/||ref||: mmfuse %s, PyTorch float32 %s" % (
            float(loss64.detach()), len(pins),
            "%.1e (%s)" % mm_vs64[0] if mm_vs64 else "n/a", "%.1e (%s)" % pt_vs64[0] if pt_vs64 else "n/a"))
    return {"pinned_pool_layers": len(pins), "loss_float64": float(loss64.detach()),
            "worst_grad_mmfuse_vs_float64": mm_vs64[0] if mm_vs64 else None,
            "worst_grad_pytorch32_vs_float64": pt_vs64[0] if pt_vs64 else None,
                        "loss_mmfuse": mm_loss, "loss_pytorch": pt_loss, "loss_rel_diff": loss_rel,
            "blobs_compared": len(blob_errs), "worst_blob": blob_errs[0] if blob_errs else None,
            "grads_compared": len(grad_errs), "worst_grad": grad_errs[0] if grad_errs else None}


# ------------------------------------------------------------------------------------------
# Workloads and the driver
# ------------------------------------------------------------------------------------------

WORKLOADS = OrderedDict([
    ("asymfusion101", {"zoo": ["asymfusion", "--depth", "101"],
                       "file": "models/asymfusion/nyudv2_resnet101.prototxt",
                       "precisions": ["tf32", "fp32"],
                       "about": "AsymFusion ResNet-101-RefineNet, NYUDv2 config: 2 modalities x batch 6, 500x500, 40 classes"}),
    ("mmtm18", {"zoo": ["mmtm", "--dataset", "synthetic-cls", "--blocks", "2,2,2,2", "--width", "64",
                        "--batch", "64", "--classes", "1000"],
                "size": 224, "precisions": ["tf32"],
                "about": "MMTM over two ResNet-18 streams (RGB 3ch + depth 1ch), batch 64, 224x224, 1000 classes"}),
    ("lenet", {"file": "models/lenet/lenet_train_val.prototxt", "precisions": ["tf32"],
               "about": "LeNet, batch 64, 1x28x28 (launch-bound; TF32 irrelevant)"}),
    ("asymfusion-synthetic", {"file": "models/asymfusion/synthetic.prototxt", "precisions": ["tf32"],
                              "about": "AsymFusion synthetic main-job net: 2 x batch 8, 64x64, 7 classes"}),
])


def parse_workloads(text, device):
    rows = []
    for item in [w.strip() for w in text.split(",") if w.strip()]:
        base, prec = item, None
        for p in ("tf32", "fp32"):
            if item.endswith("-" + p):
                base, prec = item[:-len(p) - 1], p
        if base not in WORKLOADS and base.endswith(".prototxt"):
            if not os.path.exists(base):
                raise SystemExit("no such prototxt: %s" % base)
            WORKLOADS[base] = {"file": os.path.abspath(base), "precisions": ["tf32"],
                               "about": "prototxt given on the command line"}
        if base not in WORKLOADS:
            raise SystemExit("unknown workload %r (known: %s; add -tf32 or -fp32 to pick one precision)"
                             % (item, ", ".join(WORKLOADS)))
        precs = [prec] if prec else WORKLOADS[base]["precisions"]
        if device == "cpu":
            precs = ["fp32"]
        for p in precs:
            if (base, p) not in rows:
                rows.append((base, p))
    return rows


def source_net(name, spec, mmfuse, workdir, timeout, log):
    if "zoo" in spec:
        try:
            out, _ = run_cmd([mmfuse, "zoo"] + spec["zoo"], timeout, "mmfuse zoo")
            path = os.path.join(workdir, re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".source.prototxt")
            with open(path, "w") as f:
                f.write(out)
            return parse_text(out, "mmfuse zoo " + " ".join(spec["zoo"])), "mmfuse zoo " + " ".join(spec["zoo"])
        except CmdError as e:
            if "file" not in spec:
                raise
            log("  (mmfuse zoo failed, using %s: %s)" % (spec["file"], str(e).split("\n")[0]))
    path = os.path.join(REPO, spec["file"])
    return read_prototxt(path), spec["file"]


def fmt(v, spec="%.2f"):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    return spec % v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mmfuse", default=os.path.join(REPO, "build", "mmfuse"))
    ap.add_argument("--workloads", default=None,
                    help="comma list of %s (suffix -tf32/-fp32 picks one precision); default: all on "
                         "cuda, lenet,asymfusion-synthetic on cpu" % ",".join(WORKLOADS))
    ap.add_argument("--iterations", type=int, default=None, help="timed steps (default 10 on cuda, 3 on cpu)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default=None,
                    help="default: cuda if PyTorch sees a GPU, else cpu")
    ap.add_argument("--batch-scale", type=float, default=1.0, help="scale every data batch size (min 1)")
    ap.add_argument("--size", type=int, default=None, help="override the image size of the data inputs")
    ap.add_argument("--json", default=None, help="write the table (and details) as JSON here")
    ap.add_argument("--workdir", default=None, help="folder for the generated prototxts (default: a temp dir)")
    ap.add_argument("--mmfuse-log", default=None, help="append every `mmfuse time` output (per-layer profile) here")
    ap.add_argument("--timeout", type=int, default=240, help="seconds per mmfuse subprocess")
    ap.add_argument("--check-forward", action="store_true",
                    help="compare loss, blobs and gradients of mmfuse and PyTorch on the same weights and input")
    ap.add_argument("--check-only", action="store_true", help="with --check-forward: skip the timing")
    ap.add_argument("--no-inplace", action="store_true",
                    help="PyTorch: no in-place ReLU (default: ReLU with top == bottom runs in place where safe)")
    ap.add_argument("--skip-mmfuse", action="store_true", help="time PyTorch only (no mmfuse time)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved rounds (mmfuse, PyTorch, mmfuse, ...); figures are medians over them "
                         "(default 3 on cpu, 1 on cuda)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for both: OMP_NUM_THREADS of mmfuse and torch.set_num_threads "
                         "(default: as the environment gives)")
    ap.add_argument("--no-families", action="store_true",
                    help="cpu: skip the per-layer-family table (a profiled PyTorch run per round)")
    args = ap.parse_args(argv)
    global MMFUSE_LOG, MMFUSE_ENV
    MMFUSE_LOG = args.mmfuse_log
    if args.threads:
        torch.set_num_threads(args.threads)
        MMFUSE_ENV = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: PyTorch sees no GPU")
    iterations = args.iterations or (10 if device == "cuda" else 3)
    args.rounds = max(1, args.rounds or (1 if device == "cuda" else 3))
    # Per-family times come from the host clock and the CPU profiler: CPU only.
    families = device == "cpu" and not args.no_families and not args.skip_mmfuse
    wl = args.workloads or (",".join(WORKLOADS) if device == "cuda" else "lenet,asymfusion-synthetic")
    rows_todo = parse_workloads(wl, device)
    workdir = args.workdir or tempfile.mkdtemp(prefix="vs_pytorch_")
    os.makedirs(workdir, exist_ok=True)
    mmfuse = os.path.abspath(args.mmfuse)

    def log(msg):
        print(msg, flush=True)

    if device == "cuda":
        torch.backends.cudnn.benchmark = True
        dev_name = torch.cuda.get_device_name(0)
    else:
        dev_name = "cpu (%d PyTorch threads)" % torch.get_num_threads()
    log("vs_pytorch: device %s, PyTorch %s%s, %d timed steps (+3 warm-up) x %d interleaved round(s), "
        "mmfuse OMP_NUM_THREADS=%s, workdir %s" % (
            dev_name, torch.__version__,
            ", cuDNN %s, cudnn.benchmark = True" % torch.backends.cudnn.version() if device == "cuda" else "",
            iterations, args.rounds, (MMFUSE_ENV or os.environ).get("OMP_NUM_THREADS", "unset"), workdir))
    log("  PyTorch step: zero_grad(set_to_none=True), forward, backward, SGD(lr 0.01 x lr_mult, momentum 0.9, "
        "weight_decay 5e-4 x decay_mult) step; ReLU in place: %s" % ("no" if args.no_inplace else "where the prototxt is"))
    log("  mmfuse step: `mmfuse time` whole iteration (forward + backward + its SGD step), median")

    results = []
    cache = {}
    for base, prec in rows_todo:
        spec = WORKLOADS[base]
        row = {"workload": base, "precision": prec if device == "cuda" else "fp32 (cpu)", "about": spec["about"],
               "mmfuse_ms": None, "pytorch_ms": None, "ratio": None, "mmfuse_peak_mib": None,
               "pytorch_peak_mib": None, "params_mmfuse": None, "params_pytorch": None, "status": "ok",
               "notes": []}
        results.append(row)
        log("[%s %s] %s" % (base, row["precision"], spec["about"]))
        try:
            tag = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(base)).replace(".prototxt", "")
            if base not in cache:
                src, origin = source_net(base, spec, mmfuse, workdir, args.timeout, log)
                size = args.size or spec.get("size")
                bench, inputs = make_bench_net(src, args.batch_scale, size)
                path = os.path.join(workdir, tag + ".bench.prototxt")
                with open(path, "w") as f:
                    f.write("# %s: generated by bench/vs_pytorch.py from %s\n" % (base, origin))
                    f.write(bench.dump() + "\n")
                learn, state, mm_shapes = mmfuse_check(mmfuse, path, args.timeout)
                # The PyTorch translation, built on the CPU once: parameter count and shapes.
                probe = CaffeNet(bench, "TRAIN", "cpu")
                mism = []
                for lname, ltype, tops in probe.top_shapes:
                    if lname in mm_shapes and ltype not in METRIC_TYPES:
                        mine = [(t, [int(d) for d in s]) for t, s in tops]
                        if mine != mm_shapes[lname]:
                            mism.append("%s: mmfuse %s PyTorch %s" % (lname, mm_shapes[lname], mine))
                cache[base] = (bench, inputs, path, learn, state, probe.learnable_count(), probe.state_count(), mism)
                del probe
            bench, inputs, path, learn, state, pt_learn, pt_state, mism = cache[base]
            row["params_mmfuse"], row["params_pytorch"] = learn, pt_learn
            row["bench_prototxt"] = path
            row["inputs"] = [[n, [int(d) for d in s]] for n, s in inputs]
            log("  inputs: %s" % ", ".join("%s %s" % (n, list(s)) for n, s in inputs))
            log("  learnable parameters: mmfuse %s, PyTorch %s%s; state (BN statistics): mmfuse %s, PyTorch %s" % (
                "{:,}".format(learn), "{:,}".format(pt_learn),
                "" if learn == pt_learn else "   <<< PARAM MISMATCH >>>", "{:,}".format(state), "{:,}".format(pt_state)))
            if learn != pt_learn:
                row["notes"].append("PARAM MISMATCH")
            if mism:
                log("  SHAPE MISMATCH in %d layers: %s" % (len(mism), "; ".join(mism[:5])))
                row["notes"].append("SHAPE MISMATCH (%d layers)" % len(mism))

            if args.check_forward:
                ck_src = os.path.join(workdir, tag + ".check.prototxt")
                src, _ = source_net(base, spec, mmfuse, workdir, args.timeout, lambda m: None)
                ck_net, ck_inputs = make_bench_net(src, args.batch_scale, args.size or spec.get("size"),
                                                   dropout_zero=True)
                with open(ck_src, "w") as f:
                    f.write(ck_net.dump() + "\n")
                cdir = os.path.join(workdir, tag + "_check")
                os.makedirs(cdir, exist_ok=True)
                if device == "cuda":  # `mmfuse forward` has no --precision: both at the defaults
                    log("  check-forward on CUDA: both at the default precision (%s)" % set_precision("default"))
                try:
                    row["check_forward"] = check_forward(mmfuse, ck_src, ck_net, ck_inputs, cdir, device,
                                                         args.timeout, log)
                except Exception as e:  # the check is informative; timing goes on
                    log("  check-forward FAILED: %s" % e)
                    row["check_forward"] = {"error": str(e)}
                    row["notes"].append("check-forward failed")
            if args.check_only:
                row["status"] = "check only"
                continue

            if device == "cuda":
                row["pytorch_precision_api"] = set_precision(prec)
            # Rounds interleave the two frameworks (mmfuse, PyTorch, mmfuse, ...), so that a change
            # of machine load hits both; each figure is the median over the rounds.
            mm_runs, pt_runs, mm_fams, pt_fams = [], [], [], []
            inplace = not args.no_inplace
            for rnd in range(args.rounds):
                if not args.skip_mmfuse and not row.get("mmfuse_failed"):
                    try:  # an mmfuse failure fails its cells; PyTorch is still timed
                        mt = mmfuse_time(mmfuse, path, iterations, device, prec, args.timeout)
                        mm_runs.append(mt)
                        if families:
                            mm_fams.append(mmfuse_families(mt))
                        if mt["note"] and mt["note"] not in row["notes"]:
                            row["notes"].append(mt["note"])
                        log("  round %d mmfuse:  median %.3f ms (mean %.3f), peak %s MiB  [%.0f s]" % (
                            rnd + 1, mt["median_ms"], mt["mean_ms"], fmt(mt["peak_mib"], "%.1f"), mt["wall_s"]))
                    except Exception as e:
                        row["mmfuse_failed"] = True
                        row["status"] = "FAIL"
                        row["error"] = "%s: %s" % (type(e).__name__, e)
                        log("  mmfuse FAIL: %s" % row["error"])
                t0 = time.perf_counter()
                pt, retry = None, None
                try:
                    pt = torch_time(bench, inputs, device, iterations, inplace)
                except RuntimeError as e:
                    if "inplace" not in str(e) or not inplace:
                        raise
                    retry = str(e).split("\n")[0]
                if pt is None:  # outside the except block, so that the first model is freed
                    log("  (PyTorch with in-place ReLU failed: %s; rerunning without)" % retry)
                    row["notes"].append("PyTorch without in-place ReLU")
                    inplace = False
                    gc.collect()
                    if device == "cuda":
                        torch.cuda.empty_cache()
                    pt = torch_time(bench, inputs, device, iterations, False)
                pt_runs.append(pt)
                if families:
                    pt_fams.append(torch_families(bench, inputs, device, iterations, inplace))
                log("  round %d PyTorch: median %.3f ms (mean %.3f%s), peak %s MiB, loss %.4g, %d of %d ReLUs in "
                    "place  [%.0f s]" % (
                        rnd + 1, pt["median_ms"], pt["mean_ms"],
                        ", host-clock median %.3f" % pt["wall_median_ms"] if "wall_median_ms" in pt else "",
                        fmt(pt["peak_mib"], "%.1f"), pt["loss"], pt["inplace_relus"], pt["relus"],
                        time.perf_counter() - t0))
            row["rounds"] = args.rounds
            if mm_runs and not row.get("mmfuse_failed"):
                row["mmfuse_ms"] = statistics.median(m["median_ms"] for m in mm_runs)
                row["mmfuse_mean_ms"] = statistics.median(m["mean_ms"] for m in mm_runs)
                peaks = [m["peak_mib"] for m in mm_runs if m["peak_mib"] is not None]
                row["mmfuse_peak_mib"] = max(peaks) if peaks else None
                row["mmfuse_command"] = mm_runs[0]["command"]
                row["mmfuse_round_ms"] = [m["median_ms"] for m in mm_runs]
                if mm_fams:
                    row["mmfuse_families"] = median_dict(mm_fams)
            pt = pt_runs[-1]
            row["pytorch_ms"] = statistics.median(p["median_ms"] for p in pt_runs)
            row["pytorch_mean_ms"] = statistics.median(p["mean_ms"] for p in pt_runs)
            row["pytorch_round_ms"] = [p["median_ms"] for p in pt_runs]
            row["pytorch_peak_mib"], row["pytorch_loss"] = pt["peak_mib"], pt["loss"]
            if pt_fams:
                row["pytorch_families"] = median_dict(pt_fams)
            if "wall_median_ms" in pt:
                row["pytorch_wall_median_ms"] = statistics.median(p["wall_median_ms"] for p in pt_runs)
                row["pytorch_peak_reserved_mib"] = pt["peak_reserved_mib"]
                row["pytorch_peak_incl_warmup_mib"] = pt["peak_incl_warmup_mib"]
            row["pytorch_inplace_relus"] = "%d of %d" % (pt["inplace_relus"], pt["relus"])
            if row["mmfuse_ms"] is not None:
                row["ratio"] = row["mmfuse_ms"] / row["pytorch_ms"]
        except Exception as e:
            row["status"] = "FAIL"
            row["pytorch_failed"] = True
            if not row.get("mmfuse_failed") and row["mmfuse_ms"] is None:
                row["mmfuse_failed"] = True
            row["error"] = ((row["error"] + "; ") if row.get("error") else "") + "%s: %s" % (type(e).__name__, e)
            log("  FAIL: %s: %s" % (type(e).__name__, e))
            if not isinstance(e, CmdError):
                log(tail(traceback.format_exc(), 12))
        if device == "cuda":
            gc.collect()
            torch.cuda.empty_cache()

    header = ["workload", "precision", "mmfuse median ms", "PyTorch median ms", "ratio mmfuse/PyTorch",
              "mmfuse peak MiB", "PyTorch peak MiB", "params"]
    lines = []
    for r in results:
        if r["params_mmfuse"] is None:
            params = "n/a"
        elif r["params_mmfuse"] == r["params_pytorch"]:
            params = "{:,}".format(r["params_mmfuse"])
        else:
            params = "PARAM MISMATCH mmfuse {:,} PyTorch {:,}".format(r["params_mmfuse"], r["params_pytorch"])
        mf, pf = r.get("mmfuse_failed"), r.get("pytorch_failed")
        cells = [r["workload"], r["precision"], "FAIL" if mf else fmt(r["mmfuse_ms"], "%.2f"),
                 "FAIL" if pf else fmt(r["pytorch_ms"], "%.2f"), "FAIL" if mf or pf else fmt(r["ratio"], "%.2f"),
                 "FAIL" if mf else fmt(r["mmfuse_peak_mib"], "%.0f"),
                 "FAIL" if pf else fmt(r["pytorch_peak_mib"], "%.0f"), params]
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for cells in lines:
        print(" | ".join(str(c).ljust(w) for c, w in zip(cells, widths)))
    for r in results:
        if r["notes"]:
            print("  %s %s: %s" % (r["workload"], r["precision"], "; ".join(r["notes"])))
    for r in results:
        print_families(r)
    if device == "cuda":
        print("PyTorch: CUDA-event median per step after 3 warm-ups, cudnn.benchmark = True; peak = "
              "max_memory_allocated over the timed steps (with the warm-ups: in the JSON).")
        print("mmfuse: host-clock median of `mmfuse time` (each step synchronised); peak = its caching "
              "allocator's peak allocated bytes over the whole run (warm-up included).")
    if args.json:
        meta = {"device": dev_name, "torch": torch.__version__, "iterations": iterations, "rounds": args.rounds,
                "mmfuse_omp_threads": (MMFUSE_ENV or os.environ).get("OMP_NUM_THREADS"),
                "cudnn_benchmark": device == "cuda", "workdir": workdir, "mmfuse": mmfuse,
                "batch_scale": args.batch_scale, "size": args.size, "inplace_relu": not args.no_inplace}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "header": header, "table": lines, "rows": results}, f, indent=1,
                      default=str)
        print("wrote %s" % args.json)
    return 1 if any(r["status"] == "FAIL" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
