#!/usr/bin/env python3
"""CTest onnx_export: `mmfuse export-onnx` checked by onnx itself.

For LeNet, a small AsymFusion net (channel shuffle, pixel shift, private BatchNorm, RefineNet
decoder, ensemble), a small MMTM net, and a net of every other exported layer type (Caffe's
standard layers, the fusion layers with M = 3 and partial receivers): random weights (random
BatchNorm statistics and ensemble weights included) are written, the model is exported with
them, passes onnx.checker's full check, and an ONNX evaluation of it on random inputs reproduces
`mmfuse forward` of the same net (its data layers replaced by an Input layer) in float32. Every
committed network under models/ also exports and passes the checker (the NYUDv2 ResNet-101/152
at reduced width: the same graph, a 470 MB file at full width).

The evaluation is onnx.reference.ReferenceEvaluator where onnx has it (>= 1.13), else
tests/interop/onnx_eval.py: each operator written from the ONNX specification on numpy and
torch.nn.functional, independent of mmfuse's exporter.

    tests/interop/onnx_export.py MMFUSE WORK_DIR

Skipped (exit 77) without onnx (Debian: python3-onnx), or without both onnx.reference and torch."""
import glob
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nets  # noqa: E402

try:
    import numpy as np
    import onnx
except ImportError as e:
    nets.skip(f"needs numpy and onnx ({e}); Debian: python3-onnx")
try:
    from onnx.reference import ReferenceEvaluator

    def evaluate(model, feeds):
        names = [o.name for o in model.graph.output]
        return dict(zip(names, ReferenceEvaluator(model).run(None, feeds)))
    EVALUATOR = f"onnx.reference.ReferenceEvaluator (onnx {onnx.__version__})"
    EVALUATE_REFERENCE = evaluate
except ImportError:
    try:
        import onnx_eval
    except ImportError as e:
        nets.skip(f"onnx {onnx.__version__} has no onnx.reference and torch is absent ({e}): nothing evaluates ONNX")
    evaluate = onnx_eval.run
    EVALUATE_REFERENCE = None
    EVALUATOR = f"tests/interop/onnx_eval.py (onnx {onnx.__version__} has no onnx.reference)"

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def weights_writer():
    """write_net_weights of scripts/convert-torchvision-resnet: one writer of .weights files."""
    path = os.path.join(ROOT, "scripts", "convert-torchvision-resnet")
    loader = importlib.machinery.SourceFileLoader("convert_torchvision_resnet", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module.write_net_weights


def random_weights(model, rng):
    """Random values for every parameter the export holds (initializers marked "mmfuse
    parameter", named and shaped as in a .weights file)."""
    params = []
    for t in model.graph.initializer:
        if t.doc_string != "mmfuse parameter":
            continue
        shape, kind = tuple(t.dims), t.name.rsplit(".", 1)[-1]
        if kind == "variance":
            v = rng.uniform(0.5, 2.0, shape)
        elif kind in ("mean", "beta"):
            v = rng.uniform(-0.5, 0.5, shape)
        elif kind == "gamma":
            v = rng.uniform(0.5, 1.5, shape)
        elif kind == "alpha":
            v = rng.standard_normal(shape)
        elif len(shape) >= 2:  # He-like bounds keep a deep net's activations in range
            v = rng.uniform(-1, 1, shape) * np.sqrt(6.0 / np.prod(shape[1:]))
        else:
            v = rng.uniform(-0.2, 0.2, shape)
        params.append((t.name, v.astype(np.float32)))
    return params


def check(mmfuse, work, name, prototxt, inputs, shape_only=(), is_deploy=False, tolerance=1e-4):
    """Exports `prototxt` with random weights and compares ONNX's outputs with mmfuse's.
    `shape_only` blobs (a label an Interp takes its size from) are fed to mmfuse, not to ONNX."""
    print(f"--- {name}")
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    model_path = nets.write(os.path.join(work, name + ".prototxt"), prototxt)
    deploy_path = model_path if is_deploy else nets.write(os.path.join(work, name + "_deploy.prototxt"),
                                                          nets.deploy(prototxt, list(inputs) + list(shape_only)))
    first = os.path.join(work, name + "_init.onnx")
    nets.run(mmfuse, "export-onnx", "--model", model_path, first)
    weights = os.path.join(work, name + ".weights")
    WRITE_WEIGHTS(weights, name, random_weights(onnx.load(first), rng))
    out = os.path.join(work, name + ".onnx")
    print(nets.run(mmfuse, "export-onnx", "--model", model_path, "--weights", weights, out).rstrip())
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    feeds, flags = {}, []
    for blob, shape in inputs:
        feeds[blob] = rng.standard_normal(shape).astype(np.float32)
        np.save(os.path.join(work, f"{name}_{blob}.npy"), feeds[blob])
        flags += ["--input", f"{blob}={os.path.join(work, f'{name}_{blob}.npy')}"]
    for blob, shape in shape_only:
        np.save(os.path.join(work, f"{name}_{blob}.npy"), np.zeros(shape, np.float32))
        flags += ["--input", f"{blob}={os.path.join(work, f'{name}_{blob}.npy')}"]
    graph_inputs = [i.name for i in model.graph.input]
    if sorted(graph_inputs) != sorted(feeds):
        sys.exit(f"FAILED: {name}: graph inputs {graph_inputs}, expected {sorted(feeds)}")
    dump = os.path.join(work, name + "_dump")
    nets.run(mmfuse, "forward", "--model", deploy_path, "--weights", weights, "--dump", dump, *flags)
    outputs = evaluate(model, feeds)
    for blob, value in outputs.items():
        nets.close(f"{name}: {blob}", np.asarray(value), nets.blob(dump, blob), tolerance)


# Every exported layer type the zoo nets leave out, with M = 3 modalities, partial receivers,
# a non-default keep ratio and more pixel-shift groups than directions.
LAYER_TYPES = """name: "layer_types"
layer { name: "data" type: "Input" top: "rgb" top: "depth" top: "thermal"
        input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } } }
layer { name: "stack" type: "ModalityStack" bottom: "rgb" bottom: "depth" bottom: "thermal" top: "x" }
layer { name: "conv" type: "Convolution" bottom: "x" top: "conv"
        convolution_param { num_output: 14 kernel_size: 3 pad: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { modalities: 3 } }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "leaky" type: "ReLU" bottom: "conv" top: "conv" relu_param { negative_slope: 0.1 } }
layer { name: "cs" type: "ChannelShuffle" bottom: "conv" top: "cs"
        channel_shuffle_param { modalities: 3 keep_ratio: 0.5 receivers: 0 receivers: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "cs" top: "conv2"
        convolution_param { num_output: 14 kernel_size: 3 pad: 2 dilation: 2 group: 2 bias_term: false } }
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "conv2" batch_norm_param { affine: true modalities: 3 } }
layer { name: "ps" type: "PixelShift" bottom: "conv2" bottom: "conv" top: "ps"
        pixel_shift_param { modalities: 3 groups: 6 shift: 2 receivers: 1 } }
layer { name: "ps_all" type: "PixelShift" bottom: "ps" bottom: "cs" top: "ps_all" pixel_shift_param { modalities: 3 } }
layer { name: "bn_shared" type: "BatchNorm" bottom: "ps_all" top: "ps_all" batch_norm_param { affine: true } }
layer { name: "pool_ave" type: "Pooling" bottom: "ps_all" top: "pool_ave" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "pool_pad" type: "Pooling" bottom: "ps_all" top: "pool_pad"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR } }
layer { name: "pool_max" type: "Pooling" bottom: "ps_all" top: "pool_max" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "pool_drop" type: "Pooling" bottom: "ps_all" top: "pool_drop"
        pooling_param { pool: MAX kernel_size: 3 stride: 5 pad: 1 } }
layer { name: "pools" type: "Eltwise" bottom: "pool_ave" bottom: "pool_pad" bottom: "pool_max" top: "pools"
        eltwise_param { operation: SUM coeff: 0.5 coeff: -1 coeff: 2 } }
layer { name: "bn_caffe" type: "BatchNorm" bottom: "pools" top: "pools" }
layer { name: "scale_caffe" type: "Scale" bottom: "pools" top: "pools" scale_param { bias_term: true } }
layer { name: "deconv" type: "Deconvolution" bottom: "pools" top: "deconv"
        convolution_param { num_output: 6 kernel_size: 5 stride: 2 pad: 1 } }
layer { name: "crop" type: "Crop" bottom: "deconv" bottom: "x" top: "crop" crop_param { axis: 2 offset: 1 } }
layer { name: "gpool" type: "Pooling" bottom: "crop" top: "gpool" pooling_param { pool: MAX global_pooling: true } }
layer { name: "gflat" type: "Flatten" bottom: "gpool" top: "gflat" }
layer { name: "scale2" type: "Scale" bottom: "crop" bottom: "gflat" top: "scaled2" scale_param { axis: 0 } }
layer { name: "sig" type: "Sigmoid" bottom: "crop" top: "sig" }
layer { name: "lrn_across" type: "LRN" bottom: "crop" top: "lrn_across" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }
layer { name: "lrn_within" type: "LRN" bottom: "lrn_across" top: "lrn_within"
        lrn_param { local_size: 3 alpha: 0.3 beta: 0.6 norm_region: WITHIN_CHANNEL } }
layer { name: "in_private" type: "InstanceNorm" bottom: "lrn_within" top: "in_private"
        instance_norm_param { modalities: 3 } }
layer { name: "in_running" type: "InstanceNorm" bottom: "in_private" top: "in_running"
        instance_norm_param { modalities: 3 track_running_stats: true } }
layer { name: "tanh" type: "TanH" bottom: "in_running" top: "tanh" }
layer { name: "mmtm" type: "MMTM" bottom: "gflat" bottom: "tanh" top: "mm_vec" top: "mm_map"
        mmtm_param { ratio: 2 gate_scale: 1.5 } }
layer { name: "prod" type: "Eltwise" bottom: "sig" bottom: "tanh" bottom: "crop" top: "prod" eltwise_param { operation: PROD } }
layer { name: "max" type: "Eltwise" bottom: "sig" bottom: "tanh" top: "max" eltwise_param { operation: MAX } }
layer { name: "cat" type: "Concat" bottom: "prod" bottom: "max" top: "cat" }
layer { name: "slice" type: "Slice" bottom: "cat" top: "part_a" top: "part_b" slice_param { slice_point: 5 } }
layer { name: "split" type: "Split" bottom: "part_a" top: "a1" top: "a2" }
layer { name: "up" type: "Interp" bottom: "a1" top: "up" interp_param { zoom_factor: 2 pad_beg: -1 pad_end: -1 } }
layer { name: "near" type: "Interp" bottom: "a2" top: "near" interp_param { height: 7 width: 17 mode: NEAREST } }
layer { name: "half" type: "Interp" bottom: "part_b" top: "half" interp_param { height: 9 width: 5 align_corners: false } }
layer { name: "drop" type: "Dropout" bottom: "half" top: "half" }
layer { name: "flat" type: "Flatten" bottom: "half" top: "flat" }
layer { name: "ip" type: "InnerProduct" bottom: "flat" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "ip_axis" type: "InnerProduct" bottom: "near" top: "ip_axis" inner_product_param { num_output: 4 axis: 2 transpose: true } }
layer { name: "reshape" type: "Reshape" bottom: "ip" top: "logits" reshape_param { shape { dim: 6 dim: 5 dim: 1 } } }
layer { name: "softmax" type: "Softmax" bottom: "logits" top: "prob" }
layer { name: "ensemble" type: "ModalityEnsemble" bottom: "logits" top: "ensemble" modality_ensemble_param { modalities: 3 } }
layer { name: "views" type: "ModalitySplit" bottom: "up" top: "up_rgb" top: "up_depth" top: "up_thermal" }
layer { name: "tile" type: "ModalityTile" bottom: "ensemble" top: "tiled" modality_param { modalities: 2 } }
"""


# What has no exact ONNX form is refused, naming the file, line, layer and shapes. (The
# `pool_drop` layer above, whose CEIL rounding drops a last window, has one: floor mode.)
REFUSED = [
    ("pool_pad_overhang", 'layer { name: "pool" type: "Pooling" bottom: "x" top: "y"\n'
     '  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }\n',
     "3: layer 'pool' (Pooling) (bottoms [1, 2, 6, 6]): average pooling with padding"),
    ("bn_batch_stats", 'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y"\n'
     '  batch_norm_param { use_global_stats: false } }\n',
     "3: layer 'bn' (BatchNorm) (bottoms [1, 2, 6, 6]): use_global_stats: false"),
]


def refusals(mmfuse, work):
    print("--- refusals")
    for name, body, expected in REFUSED:
        head = ('name: "refused"\n'
                'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 6 dim: 6 } } }\n')
        path = nets.write(os.path.join(work, name + ".prototxt"), head + body)
        result = subprocess.run([mmfuse, "export-onnx", "--model", path, os.path.join(work, name + ".onnx")],
                                capture_output=True, text=True)
        written = os.path.exists(os.path.join(work, name + ".onnx"))
        if result.returncode == 0 or expected not in result.stderr or written:
            sys.exit(f"FAILED: {name}: expected a refusal with '{expected}', got exit {result.returncode}:\n"
                     f"{result.stdout}{result.stderr}")
        print(f"{name}: {result.stderr.strip()}")


def committed_models(mmfuse, work):
    """Every network under models/ exports and passes the checker; NYUDv2 at reduced width."""
    print("--- every network under models/")
    models = sorted(p for p in glob.glob(os.path.join(ROOT, "models", "**", "*.prototxt"), recursive=True)
                    if not p.endswith("_solver.prototxt"))
    # The NYUDv2 data layer opens its list and first images when the net is built: a stand-in.
    nets.run(mmfuse, "make-dataset", "synthetic-rgbd", "--out", os.path.join(work, "data", "nyudv2"), "--train", "1",
             "--test", "1", "--size", "48")
    # The translation generators read the rendered scenes' lists: a stand-in too.
    nets.run(mmfuse, "make-dataset", "scenes", "--out", os.path.join(work, "data", "scenes"), "--train", "1",
             "--test", "1", "--size", "64")
    for path in models:
        rel = os.path.relpath(path, ROOT)
        if "nyudv2_resnet" in rel:
            depth = rel.split("nyudv2_resnet")[1].split(".")[0]
            net = nets.run(mmfuse, "zoo", "asymfusion", "--depth", depth, "--width", "4", "--decoder-width", "4",
                           "--frozen-bn", "--crop", "64", "--batch", "1")
            path = nets.write(os.path.join(work, f"nyudv2_resnet{depth}_narrow.prototxt"), net)
            rel += " (width 4)"
        out = os.path.join(work, os.path.basename(path).replace(".prototxt", ".onnx"))
        nets.run(mmfuse, "export-onnx", "--model", path, out, cwd=work)
        model = onnx.load(out)
        onnx.checker.check_model(model, full_check=True)
        print(f"{rel}: {len(model.graph.node)} nodes, outputs {[o.name for o in model.graph.output]}: checker passed")


def evaluator_self_check():
    """tests/interop/onnx_eval.py against onnx's own node test cases (onnx.backend.test.case.node:
    small models with ONNX's expected outputs): every case of an operator it implements either
    matches or uses a form it refuses (Unsupported); each operator matches at least one case."""
    import collections
    import importlib
    from onnx.backend.test.case import node as node_cases
    for op in onnx_eval.OPS:  # the case modules are named after the operators, lower case
        try:
            module = {"BatchNormalization": "batchnorm", "InstanceNormalization": "instancenorm"}.get(op, op.lower())
            importlib.import_module("onnx.backend.test.case.node." + module)
        except ImportError:
            pass
    matched = collections.Counter()
    for case in node_cases._NodeTestCases:
        ops = {n.op_type for n in case.model.graph.node}
        if not ops <= set(onnx_eval.OPS):
            continue
        for inputs, outputs in case.data_sets:
            if any(np.asarray(w).dtype.kind != "f" for w in outputs):
                break  # integer arithmetic: mmfuse's graphs compute in float32 only
            feeds = {i.name: v for i, v in zip(case.model.graph.input, inputs)}
            try:
                got = onnx_eval.run(case.model, feeds)
            except onnx_eval.Unsupported:
                break
            for out, want in zip(case.model.graph.output, outputs):
                if not np.allclose(got[out.name], want, rtol=1e-5, atol=1e-6):
                    sys.exit(f"FAILED: onnx_eval disagrees with onnx's test case {case.name} on {out.name}")
            matched.update(ops)
    missing = sorted(set(onnx_eval.OPS) - set(matched))
    if missing:
        sys.exit(f"FAILED: onnx_eval's {missing} met no onnx test case in a form it implements")
    print(f"onnx_eval: reproduces onnx's node test cases for each of its {len(matched)} operators "
          f"({sum(matched.values())} operator uses)")


def main():
    global WRITE_WEIGHTS
    mmfuse, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    print(f"evaluator: {EVALUATOR}")
    if evaluate is not EVALUATE_REFERENCE:
        evaluator_self_check()
    WRITE_WEIGHTS = weights_writer()
    with open(os.path.join(ROOT, "models", "lenet", "lenet_train_val.prototxt")) as f:
        check(mmfuse, work, "lenet", f.read(), [("data", (64, 1, 28, 28))])
    asym = nets.run(mmfuse, "zoo", "asymfusion", "--dataset", "synthetic", "--blocks", "2,2,1,2", "--width", "8",
                    "--decoder-width", "8", "--batch", "2", "--crop", "32", "--stages", "1,2,4")
    check(mmfuse, work, "asymfusion", asym, [("data", (4, 3, 32, 32))], shape_only=[("label", (2, 32, 32))])
    mmtm = nets.run(mmfuse, "zoo", "mmtm", "--dataset", "synthetic-cls", "--blocks", "1,1,1,1", "--width", "8",
                    "--batch", "2", "--stages", "2,3,4")
    check(mmfuse, work, "mmtm", mmtm, [("rgb", (2, 3, 64, 64)), ("depth", (2, 1, 64, 64))])
    check(mmfuse, work, "layer_types", LAYER_TYPES, [(b, (2, 3, 12, 12)) for b in ("rgb", "depth", "thermal")],
          is_deploy=True)
    refusals(mmfuse, work)
    committed_models(mmfuse, work)
    print("onnx_export: passed")


if __name__ == "__main__":
    main()
