"""Helpers of the interop tests (tests/interop/*.py): run the mmfuse binary, turn a zoo network
into a deploy net that `mmfuse forward` feeds from .npy files, read its dumped blobs."""
import os
import re
import subprocess
import sys

LAYER = re.compile(r"^layer \{\n.*?^\}\n", re.M | re.S)
DROPPED_TYPES = {"SoftmaxWithLoss", "Accuracy", "SegmentationMetric", "Silence"}


def skip(message):
    """CTest's SKIP_RETURN_CODE 77, with the reason."""
    print(f"SKIPPED: {message}")
    sys.exit(77)


def run(*argv, **kwargs):
    """Runs a command; its output goes to the test's log, a failure ends the test."""
    argv = [str(a) for a in argv]
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"FAILED: {' '.join(argv)} (exit {result.returncode})\n{result.stdout}{result.stderr}")
    return result.stdout


def layer_field(block, field):
    m = re.search(rf"^  {field}: \"([^\"]*)\"", block, re.M)
    return m.group(1) if m else None


def deploy(prototxt, inputs, last_layer=None):
    """`prototxt` with its data layers replaced by one Input layer of `inputs` [(blob, shape)],
    without losses and metrics, and cut after `last_layer` when given."""
    header = prototxt[: LAYER.search(prototxt).start()]
    text = header + 'layer {\n  name: "input"\n  type: "Input"\n'
    text += "".join(f'  top: "{name}"\n' for name, _ in inputs)
    text += "  input_param {" + "".join(
        " shape {" + "".join(f" dim: {d}" for d in shape) + " }" for _, shape in inputs) + " }\n}\n"
    for block in LAYER.findall(prototxt):
        kind = layer_field(block, "type")
        if kind.endswith("Data") or kind == "Input" or kind in DROPPED_TYPES:
            continue
        text += block
        if layer_field(block, "name") == last_layer:
            break
    return text


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def blob(dump_dir, name):
    import numpy as np  # here: a missing numpy is the scripts' reason to skip, reported by them
    return np.load(os.path.join(dump_dir, name.replace("/", "_") + ".npy"))


def close(what, got, want, tolerance=1e-4):
    """float32 agreement relative to the reference's scale; prints and returns the error."""
    import numpy as np
    if got.shape != want.shape:
        sys.exit(f"FAILED: {what}: shape {got.shape}, expected {want.shape}")
    scale = max(float(np.abs(want).max()), 1e-6)
    err = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) / scale
    print(f"{what}: {list(got.shape)}, max |difference| / max |reference| = {err:.2e}")
    if not err <= tolerance:
        sys.exit(f"FAILED: {what} differs by {err:.2e} (tolerance {tolerance:.0e})")
    return err
