#!/usr/bin/env python3
"""CTest pretrained_resnet: scripts/convert-torchvision-resnet on small torchvision ResNets with
random weights (built here; nothing is downloaded), loaded into the zoo's networks, whose
forward must reproduce torchvision's in float32:
  - AsymFusion's convention: a shared bottleneck ResNet over two modality-stacked inputs with
    private BatchNorm ([2, C] parameters, both rows from the same BN); each modality's encoder
    output equals torchvision's on that modality's input;
  - MMTM's: two basic-block streams (rgb, 3 channels; depth, 1 channel) each from its own copy,
    classifier included; each stream's logits equal torchvision's (depth repeated over RGB).

    tests/interop/pretrained_resnet.py MMFUSE WORK_DIR

Skipped (exit 77) without PyTorch and torchvision."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nets  # noqa: E402

try:
    import numpy as np
    import torch
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
except ImportError as e:
    nets.skip(f"needs numpy, PyTorch and torchvision ({e}); Debian: python3-torch python3-torchvision")

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CONVERT = os.path.join(ROOT, "scripts", "convert-torchvision-resnet")


def random_resnet(block, layers, num_classes, seed):
    """A torchvision ResNet whose BatchNorms hold random statistics and affine parameters (a
    fresh one has mean 0, variance 1: a wrong mapping of them would go unnoticed)."""
    torch.manual_seed(seed)
    model = ResNet(block, layers, num_classes=num_classes)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def convert(model, work, name, *flags):
    sd_path = os.path.join(work, name + ".pth")
    torch.save(model.state_dict(), sd_path)
    out = os.path.join(work, name + ".weights")
    print(nets.run(sys.executable, CONVERT, "--state-dict", sd_path, out, *flags).strip())
    return out


def asymfusion(mmfuse, work):
    model = random_resnet(Bottleneck, [2, 1, 1, 1], 1000, seed=1)
    weights = convert(model, work, "asymfusion", "--modalities", "2")
    n, size = 2, 64
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2 * n, 3, size, size)).astype(np.float32)  # [rgb; depth], stacked
    net = nets.run(mmfuse, "zoo", "asymfusion", "--dataset", "synthetic", "--blocks", "2,1,1,1", "--width", "64",
                   "--fusion", "none", "--modalities", "2", "--frozen-bn")
    model_path = nets.write(os.path.join(work, "asymfusion.prototxt"),
                            nets.deploy(net, [("data", x.shape)], last_layer="layer4.0.relu3"))
    np.save(os.path.join(work, "x.npy"), x)
    dump = os.path.join(work, "asymfusion_dump")
    nets.run(mmfuse, "forward", "--model", model_path, "--weights", weights,
             "--input", "data=" + os.path.join(work, "x.npy"), "--dump", dump)
    got = nets.blob(dump, "layer4.0.add")
    encoder = torch.nn.Sequential(*list(model.children())[:-2])  # without avgpool and fc
    with torch.no_grad():
        for m, modality in enumerate(["rgb", "depth"]):
            want = encoder(torch.from_numpy(x[m * n:(m + 1) * n])).numpy()
            nets.close(f"AsymFusion encoder, modality {m} ({modality})", got[m * n:(m + 1) * n], want)


def mmtm(mmfuse, work):
    classes = 6
    model = random_resnet(BasicBlock, [1, 1, 1, 1], classes, seed=2)
    weights = convert(model, work, "mmtm", "--streams", "rgb,depth", "--in-channels", "3,1", "--fc")
    n, size = 2, 64
    rng = np.random.default_rng(2)
    rgb = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    depth = rng.standard_normal((n, 1, size, size)).astype(np.float32)
    net = nets.run(mmfuse, "zoo", "mmtm", "--dataset", "synthetic-cls", "--blocks", "1,1,1,1", "--width", "64",
                   "--stages", "", "--classes", str(classes))
    model_path = nets.write(os.path.join(work, "mmtm.prototxt"),
                            nets.deploy(net, [("rgb", rgb.shape), ("depth", depth.shape)]))
    np.save(os.path.join(work, "rgb.npy"), rgb)
    np.save(os.path.join(work, "depth.npy"), depth)
    dump = os.path.join(work, "mmtm_dump")
    nets.run(mmfuse, "forward", "--model", model_path, "--weights", weights,
             "--input", "rgb=" + os.path.join(work, "rgb.npy"), "--input", "depth=" + os.path.join(work, "depth.npy"),
             "--dump", dump)
    with torch.no_grad():
        nets.close("MMTM stream rgb, logits", nets.blob(dump, "rgb.fc"), model(torch.from_numpy(rgb)).numpy())
        want = model(torch.from_numpy(depth).repeat(1, 3, 1, 1)).numpy()
        nets.close("MMTM stream depth (1 channel), logits", nets.blob(dump, "depth.fc"), want)


def refusals(work):
    """What is not a torchvision ResNet, or cannot be adapted, is refused with its reason."""
    import subprocess
    model = random_resnet(BasicBlock, [1, 1, 1, 1], 10, seed=3)
    sd = model.state_dict()
    sd["classifier.weight"] = torch.zeros(10, 512)
    torch.save(sd, os.path.join(work, "not_resnet.pth"))
    torch.save(model.state_dict(), os.path.join(work, "resnet.pth"))
    for source, flags, expected in [
            ("not_resnet.pth", [], "'classifier.weight' [10, 512] is not part of a torchvision ResNet"),
            ("resnet.pth", ["--streams", "rgb,depth", "--in-channels", "3,2"], "--in-channels 2 is not 1 or 3"),
            ("resnet.pth", ["--streams", "rgb,depth", "--in-channels", "3"], "gives 1 values for 2 stream(s)")]:
        out = os.path.join(work, "refused.weights")
        result = subprocess.run([sys.executable, CONVERT, "--state-dict", os.path.join(work, source), out, *flags],
                                capture_output=True, text=True)
        if result.returncode == 0 or expected not in result.stderr or os.path.exists(out):
            sys.exit(f"FAILED: expected a refusal with '{expected}', got exit {result.returncode}:\n{result.stderr}")
        print(f"refused: {result.stderr.strip().splitlines()[-1]}")


def main():
    mmfuse, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    torch.set_num_threads(2)
    asymfusion(mmfuse, work)
    mmtm(mmfuse, work)
    refusals(work)
    print("pretrained_resnet: passed")


if __name__ == "__main__":
    main()
