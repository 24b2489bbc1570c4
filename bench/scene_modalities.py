#!/usr/bin/python3
"""What each modality of the rendered scenes tells, without a network: a per-pixel quadratic
discriminant (one Gaussian per class, features standardised) fitted on the training scenes and
scored on the test scenes of a `mmfuse make-dataset scenes` folder, from RGB features alone,
geometry features alone (normals, depth) and both. Prints pixel accuracy, mIoU and each class's
IoU. Features per pixel, each with its 5x5 box mean (and the RGB and depth 5x5 standard
deviations): RGB; camera-frame normal, depth, depth minus the image's median; plus the row.

    mmfuse make-dataset scenes --out DIR --count 400 --size 64 --seed 5
    /usr/bin/python3 bench/scene_modalities.py DIR

Needs numpy and PIL (Debian: python3-numpy, python3-pil). docs/datasets.md quotes its output.
"""
import sys

import numpy as np
from PIL import Image

CLASSES = ["ceiling", "floor", "wall", "wood box", "metal box", "wood cylinder", "ball", "slab"]


def box_mean(a, k=2):
    pad = np.pad(a, [(k, k), (k, k)] + [(0, 0)] * (a.ndim - 2), mode="edge")
    out = np.zeros_like(a)
    for dy in range(2 * k + 1):
        for dx in range(2 * k + 1):
            out += pad[dy:dy + a.shape[0], dx:dx + a.shape[1]]
    return out / (2 * k + 1) ** 2


def features(root, line):
    paths = line.split()  # rgb depth normal shading albedo edges label (train_all.txt)
    rgb = np.asarray(Image.open(f"{root}/{paths[0]}"), dtype=float) / 255
    depth = np.asarray(Image.open(f"{root}/{paths[1]}"), dtype=float) / 1000
    normal = np.asarray(Image.open(f"{root}/{paths[2]}"), dtype=float) / 127.5 - 1
    label = np.asarray(Image.open(f"{root}/{paths[6]}")).ravel()
    rows = np.broadcast_to(np.arange(rgb.shape[0])[:, None, None] / rgb.shape[0], depth.shape + (1,))
    rgb_mean = box_mean(rgb)
    rgb_std = np.sqrt(np.maximum(box_mean(rgb ** 2) - rgb_mean ** 2, 0))
    depth_mean = box_mean(depth)
    depth_std = np.sqrt(np.maximum(box_mean(depth ** 2) - depth_mean ** 2, 0))
    colour = np.concatenate([rgb, rgb_mean, rgb_std, rows], -1)
    geometry = np.concatenate([normal, box_mean(normal), depth[..., None], (depth - np.median(depth))[..., None],
                               depth_std[..., None], rows], -1)
    return colour.reshape(-1, colour.shape[-1]), geometry.reshape(-1, geometry.shape[-1]), label


def load(root, list_name):
    with open(f"{root}/{list_name}") as f:
        samples = [features(root, line) for line in f if line.strip()]
    return [np.concatenate([s[k] for s in samples]) for k in range(3)]


def quadratic_discriminant(x_train, y_train, x_test):
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    scores = []
    for c in range(len(CLASSES)):
        x = x_train[y_train == c]
        if len(x) < 50:  # too rare to fit (the ceiling is seldom in view)
            scores.append(np.full(len(x_test), -np.inf))
            continue
        cov = np.cov(x.T) + 1e-3 * np.eye(x.shape[1])
        d = x_test - x.mean(0)
        scores.append(-0.5 * np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d) - 0.5 * np.linalg.slogdet(cov)[1] +
                      np.log(len(x) / len(x_train)))
    return np.argmax(np.stack(scores, 1), 1)


def main():
    root = sys.argv[1]
    train, test = load(root, "train_all.txt"), load(root, "test_all.txt")
    y_train, y_test = train[2], test[2]
    print(f"{'features':10} {'pixel acc':>9} {'mIoU':>6}  " + " ".join(f"{c:>13}" for c in CLASSES))
    for name, cols in [("rgb", [0]), ("geometry", [1]), ("both", [0, 1])]:
        pred = quadratic_discriminant(np.concatenate([train[k] for k in cols], 1), y_train,
                                      np.concatenate([test[k] for k in cols], 1))
        ious = []
        for c in range(len(CLASSES)):
            union = ((pred == c) | (y_test == c)).sum()
            ious.append(((pred == c) & (y_test == c)).sum() / union if (y_test == c).any() else np.nan)
        print(f"{name:10} {100 * (pred == y_test).mean():9.2f} {100 * np.nanmean(ious):6.2f}  " +
              " ".join(f"{100 * v:13.1f}" for v in ious))


if __name__ == "__main__":
    main()
