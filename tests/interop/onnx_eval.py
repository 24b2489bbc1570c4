"""A node-by-node evaluator of ONNX graphs for the interop tests, where onnx has no
onnx.reference.ReferenceEvaluator (it came with onnx 1.13; Debian 12 ships 1.12).

Each operator is written from the ONNX operator specification (opset 13,
https://onnx.ai/onnx/operators/) on numpy, with torch.nn.functional for the windowed sums of
convolution and pooling: an implementation of ONNX's semantics independent of mmfuse's
exporter and kernels. Values are computed in float64, so that the reference is more exact than
the float32 run it checks. Only the operators `mmfuse export-onnx` writes are here; any other
is an error, never a guess."""
import numpy as np
import torch
import torch.nn.functional as F
import onnx
from onnx import numpy_helper


class Unsupported(Exception):
    """An operator, attribute or input form that `mmfuse export-onnx` never writes."""


def _need(condition, what):
    if not condition:
        raise Unsupported(what)


def _attrs(node):
    out = {}
    for a in node.attribute:
        out[a.name] = onnx.helper.get_attribute_value(a)
        if isinstance(out[a.name], bytes):
            out[a.name] = out[a.name].decode()
    return out


def _t(x):
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


def _explicit_pads(x, kernel, strides, pads, ceil_mode, value):
    """x padded by `pads` (ONNX order: begins then ends) and, with ceil_mode, on the end side as
    far as the last window reaches (ONNX: out = ceil((in + pads - kernel) / stride) + 1)."""
    spatial = x.shape[2:]
    nd = len(spatial)
    widths = [(0, 0), (0, 0)]
    outs = []
    for d in range(nd):
        span = spatial[d] + pads[d] + pads[d + nd] - kernel[d]
        out = (-(-span // strides[d]) if ceil_mode else span // strides[d]) + 1
        need = (out - 1) * strides[d] + kernel[d]
        extra = max(0, need - (spatial[d] + pads[d] + pads[d + nd]))
        widths.append((pads[d], pads[d + nd] + extra))
        outs.append(out)
    return np.pad(x, widths, constant_values=value), outs


def conv(x, w, b=None, **a):
    _need(x.ndim == 4 and a.get("auto_pad", "NOTSET") == "NOTSET", "Conv beyond 2-d explicit pads")
    kernel = list(w.shape[2:])
    pads = a.get("pads", [0] * (2 * len(kernel)))
    xp, _ = _explicit_pads(x, kernel, a.get("strides", [1] * len(kernel)), pads, False, 0.0)
    y = F.conv2d(_t(xp), _t(w), None if b is None else _t(b), stride=a.get("strides", 1),
                 dilation=a.get("dilations", 1), groups=a.get("group", 1))
    return y.numpy()


def conv_transpose(x, w, b=None, **a):
    # y[o] = sum over inputs i of x[i] * w at o = i * stride - pad_begin + k * dilation (spec's
    # shape: stride * (in - 1) + output_padding + (kernel - 1) * dilation + 1 - pads).
    pads = a.get("pads", [0, 0, 0, 0])
    _need(x.ndim == 4 and pads[0] == pads[2] and pads[1] == pads[3] and "output_shape" not in a
          and a.get("auto_pad", "NOTSET") == "NOTSET", "ConvTranspose beyond 2-d explicit symmetric pads")
    y = F.conv_transpose2d(_t(x), _t(w), None if b is None else _t(b), stride=a.get("strides", 1),
                           padding=(pads[0], pads[1]), output_padding=a.get("output_padding", 0),
                           groups=a.get("group", 1), dilation=a.get("dilations", 1))
    return y.numpy()


def _pool_supported(x, a):
    _need(x.ndim == 4 and a.get("auto_pad", "NOTSET") == "NOTSET" and a.get("dilations", [1, 1]) == [1, 1]
          and a.get("storage_order", 0) == 0, "pooling beyond 2-d explicit pads")


def max_pool(x, **a):
    _pool_supported(x, a)
    k, s = a["kernel_shape"], a.get("strides", [1, 1])
    xp, _ = _explicit_pads(x, k, s, a.get("pads", [0, 0, 0, 0]), a.get("ceil_mode", 0), -np.inf)
    return F.max_pool2d(_t(xp), k, s).numpy()


def average_pool(x, **a):
    _pool_supported(x, a)
    k, s, pads = a["kernel_shape"], a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
    ceil = a.get("ceil_mode", 0)
    total, _ = _explicit_pads(x, k, s, pads, ceil, 0.0)
    sums = F.avg_pool2d(_t(total), k, s).numpy() * (k[0] * k[1])
    # The divisor: the window's elements inside the input (count_include_pad = 0) or inside the
    # input and its pads (1); never the extension past the pads that ceil_mode reaches.
    if a.get("count_include_pad", 0):
        inside = np.ones((1, 1, x.shape[2] + pads[0] + pads[2], x.shape[3] + pads[1] + pads[3]))
        mask = np.pad(inside, [(0, 0), (0, 0), (0, total.shape[2] - inside.shape[2]),
                               (0, total.shape[3] - inside.shape[3])])
    else:
        mask, _ = _explicit_pads(np.ones((1, 1) + x.shape[2:]), k, s, pads, ceil, 0.0)
    counts = F.avg_pool2d(_t(mask), k, s).numpy() * (k[0] * k[1])
    return sums / counts


def gemm(a_, b_, c_=None, **a):
    A = a_.T if a.get("transA", 0) else a_
    B = b_.T if a.get("transB", 0) else b_
    y = a.get("alpha", 1.0) * (A @ B)
    return y if c_ is None else y + a.get("beta", 1.0) * c_


def batch_normalization(x, scale, bias, mean, var, **a):
    _need(not a.get("training_mode", 0), "BatchNormalization training_mode")
    shape = (1, -1) + (1,) * (x.ndim - 2)
    r = lambda v: v.reshape(shape)  # noqa: E731
    return (x - r(mean)) / np.sqrt(r(var) + a.get("epsilon", 1e-5)) * r(scale) + r(bias)


def instance_normalization(x, scale, bias, epsilon=1e-5):
    # Each sample's each channel over its spatial dims (biased variance).
    axes = tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return scale.reshape(shape) * (x - mean) / np.sqrt(var + epsilon) + bias.reshape(shape)


def slice_(x, starts, ends, axes=None, steps=None):
    axes = list(range(len(starts))) if axes is None else [int(v) for v in axes]
    steps = [1] * len(starts) if steps is None else [int(v) for v in steps]
    _need(all(step == 1 for step in steps), "Slice steps other than 1")
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis + x.ndim if axis < 0 else axis
        dim = x.shape[axis]
        start = int(start) + dim if start < 0 else int(start)
        end = int(end) + dim if end < 0 else int(end)
        index[axis] = slice(min(max(start, 0), dim), min(max(end, 0), dim))
    return x[tuple(index)]


def split(x, sizes=None, axis=0):
    axis = axis + x.ndim if axis < 0 else axis
    _need(sizes is not None, "Split without sizes")
    bounds = np.cumsum([0] + [int(s) for s in sizes])
    return [x.take(range(bounds[i], bounds[i + 1]), axis=axis) for i in range(len(sizes))]


def _resize_matrix(n_in, n_out, scale, mode, transform, nearest_mode):
    """The [n_out, n_in] matrix of a 1-d resize (Resize is separable per axis); scale = n_out / n_in."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        if transform == "align_corners":
            x = 0.0 if n_out == 1 else o * (n_in - 1) / (n_out - 1)
        elif transform == "pytorch_half_pixel":
            x = (o + 0.5) / scale - 0.5 if n_out > 1 else 0.0
        elif transform == "half_pixel":
            x = (o + 0.5) / scale - 0.5
        elif transform == "asymmetric":
            x = o / scale
        else:
            raise Unsupported(f"coordinate_transformation_mode {transform}")
        if mode == "nearest":
            _need(nearest_mode == "floor", f"nearest_mode {nearest_mode}")
            m[o, min(max(int(np.floor(x)), 0), n_in - 1)] = 1.0
        else:  # linear: the coordinate clamped to the input, then the two neighbours
            _need(mode == "linear", f"Resize mode {mode}")
            x = min(max(x, 0.0), n_in - 1)
            lo = int(np.floor(x))
            hi = min(lo + 1, n_in - 1)
            m[o, lo] += 1.0 - (x - lo)
            m[o, hi] += x - lo
    return m


def resize(x, roi=None, scales=None, sizes=None, **a):
    _need(x.ndim == 4 and a.get("exclude_outside", 0) == 0, "Resize of other than 4-d, exclude_outside")
    # mmfuse writes sizes; with scales, ONNX's coordinates use the unrounded in * scale.
    _need(sizes is not None and len(sizes), "Resize by scales")
    sizes = [int(v) for v in sizes]
    scales = [sizes[d] / x.shape[d] for d in range(4)]
    _need(sizes[:2] == list(x.shape[:2]), "Resize of N or C")
    mode = a.get("mode", "nearest")
    transform = a.get("coordinate_transformation_mode", "half_pixel")
    nearest = a.get("nearest_mode", "round_prefer_floor")
    mh = _resize_matrix(x.shape[2], sizes[2], scales[2], mode, transform, nearest)
    mw = _resize_matrix(x.shape[3], sizes[3], scales[3], mode, transform, nearest)
    return np.einsum("oh,nchw,pw->ncop", mh, x, mw)


def reshape(x, shape, allowzero=0):
    _need(all(int(d) > 0 for d in shape), "Reshape with 0 or -1")  # mmfuse writes every dim
    return x.reshape([int(d) for d in shape])


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def lrn(x, size, alpha=1e-4, beta=0.75, bias=1.0):
    # The sum of squares over channels [c - floor((size-1)/2), c + ceil((size-1)/2)], zero
    # beyond the edges: y = x / (bias + alpha / size * sum)^beta.
    sq = np.pad(x * x, [(0, 0), ((size - 1) // 2, size // 2)] + [(0, 0)] * (x.ndim - 2))
    window = sum(sq[:, i:i + x.shape[1]] for i in range(size))
    return x / (bias + alpha / size * window) ** beta


def pad(x, pads, value=None, mode="constant"):
    _need(mode == "constant", f"Pad mode {mode}")
    n = x.ndim
    return np.pad(x, [(int(pads[d]), int(pads[d + n])) for d in range(n)],
                  constant_values=0.0 if value is None else float(value))


OPS = {
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    "MaxPool": max_pool,
    "AveragePool": average_pool,
    "GlobalAveragePool": lambda x: x.mean(axis=tuple(range(2, x.ndim)), keepdims=True),
    "GlobalMaxPool": lambda x: x.max(axis=tuple(range(2, x.ndim)), keepdims=True),
    "Gemm": gemm,
    "BatchNormalization": batch_normalization,
    "InstanceNormalization": instance_normalization,
    "Reshape": reshape,
    "Identity": lambda x: x,
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a / b,
    "Sqrt": np.sqrt,
    "Pow": lambda a, b: np.power(a, b),
    "LRN": lrn,
    "Sum": lambda *xs: sum(xs[1:], xs[0]),
    "Max": lambda *xs: np.maximum.reduce(xs),
    "Relu": lambda x: np.maximum(x, 0),
    "LeakyRelu": lambda x, alpha=0.01: np.where(x >= 0, x, alpha * x),
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "Tanh": np.tanh,
    "Softmax": softmax,
    "Concat": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "Split": split,
    "Slice": slice_,
    "Pad": pad,
    "Resize": resize,
    "ReduceMean": lambda x, axes=None, keepdims=1: x.mean(axis=None if axes is None else tuple(axes),
                                                        keepdims=bool(keepdims)),
    "Tile": lambda x, repeats: np.tile(x, [int(r) for r in repeats]),
}


def run(model, feeds):
    """The graph's outputs {name: float64 array} for `feeds` {input name: array}."""
    values = {t.name: numpy_helper.to_array(t).astype(np.float64) if numpy_helper.to_array(t).dtype.kind == "f"
              else numpy_helper.to_array(t) for t in model.graph.initializer}
    values.update({k: np.asarray(v, dtype=np.float64) for k, v in feeds.items()})
    for node in model.graph.node:
        if node.op_type not in OPS:
            raise Unsupported(f"operator {node.op_type} (node {node.name})")
        inputs = [values[i] if i else None for i in node.input]
        while inputs and inputs[-1] is None:
            inputs.pop()
        attrs = _attrs(node)
        if node.op_type == "Split":
            out = split(inputs[0], inputs[1] if len(inputs) > 1 else None, attrs.get("axis", 0))
        elif node.op_type == "Pad":
            out = pad(*inputs, mode=attrs.get("mode", "constant"))
        elif node.op_type == "Resize":
            out = resize(*(inputs + [None] * (4 - len(inputs))), **attrs)
        else:
            out = OPS[node.op_type](*inputs, **attrs)
        outs = out if isinstance(out, list) else [out]
        _need(len([o for o in node.output if o]) <= len(outs), f"{node.op_type}'s optional outputs")
        for name, value in zip(node.output, outs):
            values[name] = value
    return {o.name: values[o.name] for o in model.graph.output}
