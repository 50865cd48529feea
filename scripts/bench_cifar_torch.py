"""airbench94's (or, with `--recipe 96`, airbench96's) CIFAR-10 recipe written in PyTorch,
trained on the same offline CIFAR-10 copy bigjax reads: the peer that tells what the
data allows from what bigjax's port of the recipe (configs/cifar10_resnet.py,
models/speed_resnet.py) gives.

    pip install -e '.[bench]' && python scripts/bench_cifar_torch.py [--runs 3] [--data TAR]
    python scripts/bench_cifar_torch.py --smoke    # seconds on a CPU: checks it runs (CI)

The recipe (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU"), as its
paper and code describe it: a frozen 2x2 patch-whitening conv (24 channels, from the
eigenvectors of 5,000 training images' patch covariance, and their negatives) with a
trainable bias for 3 epochs, three groups of conv 3x3 -> max pool 2 -> BatchNorm -> GELU ->
conv 3x3 -> BatchNorm -> GELU (widths 64/256/256, dirac-initialised convs, BatchNorm
without scale, momentum 0.6, eps 1e-12), max pool 3, a bias-free linear head, logits x
1/9; Nesterov SGD (momentum 0.85) on the summed loss with lr 11.5 and weight decay 0.0153
per 1,024 examples (BatchNorm biases at 64x the rate, the same decay per step), batch
1,024, triangular schedule 0.2 -> 1 (23% of the steps) -> 0.07, label smoothing 0.2,
random flips and 2-pixel reflect-padded shifts re-drawn every epoch, lookahead every 5
steps on every float tensor of the state dict (BatchNorm buffers too; decay 0.95^5 x
progress^3, the slow copy at the end), 9.9 epochs; evaluated plain and with airbench's
level-2 test-time augmentation (mirror, and 1-pixel shifts both ways). On a GPU the
forward runs under bfloat16 autocast; on a CPU in float32. The images are decoded from
the tar once and normalised with the CIFAR-10 mean and std; the timing (`train_s`) runs
from the whitening init to the last step, data decoding and a 1-epoch warm-up run
excluded, as airbench times itself.

`--recipe 96`: airbench96's (legacy/airbench96.py; 96.0% on the original pixels):
widths 128/384/512, a third conv per group with the last two a residual pair (conv ->
BN -> GELU -> conv -> BN, + the group's pooled activations, -> GELU), 4-pixel shifts
and 12-pixel cutout (zeros after normalisation), lr 9.0 and weight decay 0.012 in the
same units, warmup 0.2 -> 1 over 10% of the steps then linear to 0, 37 epochs, and
BatchNorm at torch's default momentum 0.1 (`configs/cifar10_resnet.py:airbench96` in
bigjax). `--no_bias_decay`: the BatchNorm and whitening biases without weight decay, as
bigjax's default `optim.decay_exclude` has it (airbench decays them).

Flips are random, not airbench's alternating flips (bigjax's `pp.flip` is random too).
`--smoke`: 512 training and 256 test images (every class), 1 epoch at batch 64, one
run, no warm-up; its accuracies mean nothing. Needs torch (skipped with the reason
printed without it) and the tar (default `$BIGJAX_DATA_DIR/cifar10_jpg/cifar10_jpg.tar`).
Prints one line per run and, last, one JSON line with every number.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tarfile
import time

import numpy as np

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

# airbench's hyperparameters, lr and weight decay per 1,024 examples, decoupled from the
# momentum; `warmup`: the share of the steps from 0.2x to the peak; `end`: the last factor;
# `bn_momentum`: the running averages' decay, as Flax counts it (torch's momentum = 1 - it)
RECIPES = {
    "94": dict(widths=(64, 256, 256), depth=2, translate=2, cutout=0, lr=11.5, wd=0.0153,
               warmup=0.23, end=0.07, epochs=9.9, bn_momentum=0.6),
    "96": dict(widths=(128, 384, 512), depth=3, translate=4, cutout=12, lr=9.0, wd=0.012,
               warmup=0.1, end=0.0, epochs=37.0, bn_momentum=0.9),
}


def load_tar(path: str, device, limit: dict[str, int] | None = None) -> dict:
    """{"train"|"test": (images float [n, 3, 32, 32] normalised, labels int64 [n])} on
    `device`, from a tar of <split>/<class>/<image>.jpg; `limit`: at most that many images
    per split, spread over the classes."""
    import torch
    from PIL import Image

    with tarfile.open(path) as tar:
        members = [m for m in tar if m.isfile() and m.name.endswith(".jpg")]
        classes = sorted({m.name.split("/")[-2] for m in members})
        out = {}
        for split in ("train", "test"):
            chosen = [m for m in members if m.name.split("/")[-3] == split]
            if limit:
                chosen = chosen[::max(1, len(chosen) // limit[split])][:limit[split]]
            images = np.stack([np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read()))
                                          .convert("RGB")) for m in chosen])
            labels = np.array([classes.index(m.name.split("/")[-2]) for m in chosen])
            x = torch.tensor(images).permute(0, 3, 1, 2).float().div(255)
            mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
            out[split] = (((x - mean) / std).to(device), torch.tensor(labels).to(device))
    return out


def build_net(torch, nn, F, widths: tuple[int, int, int], depth: int,
              bn_momentum: float = 0.6):
    """The network (a fresh instance per call); `depth`: convs per group (2 or 3);
    `bn_momentum`: the BatchNorm running averages' decay (torch's momentum is 1 - it)."""

    class Norm(nn.BatchNorm2d):
        def __init__(self, channels):
            super().__init__(channels, eps=1e-12, momentum=1 - bn_momentum)
            self.weight.requires_grad = False

    class Conv(nn.Conv2d):
        def __init__(self, cin, cout, kernel=3, padding="same", bias=False):
            super().__init__(cin, cout, kernel, padding=padding, bias=bias)

        def reset_parameters(self):
            super().reset_parameters()
            if self.bias is not None:
                self.bias.data.zero_()
            w = self.weight.data
            torch.nn.init.dirac_(w[:w.size(1)])  # identity on the first in-channels

    class Group(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv1, self.norm1 = Conv(cin, cout), Norm(cout)
            self.conv2, self.norm2 = Conv(cout, cout), Norm(cout)
            if depth == 3:
                self.conv3, self.norm3 = Conv(cout, cout), Norm(cout)

        def forward(self, x):
            x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
            y = F.gelu(self.norm2(self.conv2(x)))
            if depth == 3:
                return F.gelu(x + self.norm3(self.conv3(y)))
            return y

    class SpeedResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.whiten = Conv(3, 24, 2, padding=0, bias=True)
            self.whiten.weight.requires_grad = False
            a, b, c = widths
            self.groups = nn.Sequential(Group(24, a), Group(a, b), Group(b, c))
            self.head = nn.Linear(c, 10, bias=False)

        def forward(self, x):
            x = self.groups(F.gelu(self.whiten(x)))
            return self.head(F.max_pool2d(x, 3).flatten(1)) / 9

    return SpeedResNet()


def init_whitening(torch, layer, images, eps: float = 5e-4) -> None:
    """The whitening conv's kernel from `images` [n, 3, 32, 32]: every 2x2 patch's
    (uncentred) covariance, eigenvectors / sqrt(eigenvalue + eps), and their negatives."""
    c = images.shape[1]
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, c, 2, 2)
    flat = patches.reshape(len(patches), -1).float()
    values, vectors = torch.linalg.eigh(flat.T @ flat / len(flat))
    values, vectors = values.flip(0).view(-1, 1, 1, 1), vectors.T.reshape(-1, c, 2, 2).flip(0)
    scaled = vectors / torch.sqrt(values + eps)
    layer.weight.data[:] = torch.cat((scaled, -scaled))


def augment(torch, F, x, generator, translate: int, cutout: int):
    """Random horizontal flips, shifts of up to `translate` pixels with reflect padding,
    and a `cutout`-pixel square of zeros (0: none), per image."""
    n, r = len(x), translate
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (r, r, r, r), mode="reflect")
    dy = torch.randint(0, 2 * r + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * r + 1, (n,), device=x.device, generator=generator)
    rows_first = torch.empty((n, x.shape[1], 32, 32 + 2 * r), device=x.device, dtype=x.dtype)
    for i in range(2 * r + 1):
        rows_first[dy == i] = padded[dy == i, :, i:i + 32]
    out = torch.empty_like(x)
    for j in range(2 * r + 1):
        out[dx == j] = rows_first[dx == j, :, :, j:j + 32]
    if cutout:
        top = torch.randint(0, 33 - cutout, (n, 1, 1, 1), device=x.device, generator=generator)
        left = torch.randint(0, 33 - cutout, (n, 1, 1, 1), device=x.device, generator=generator)
        grid = torch.arange(32, device=x.device)
        inside = (((grid.view(1, 1, 32, 1) - top) >= 0) & ((grid.view(1, 1, 32, 1) - top) < cutout)
                  & ((grid.view(1, 1, 1, 32) - left) >= 0)
                  & ((grid.view(1, 1, 1, 32) - left) < cutout))
        out = out.masked_fill(inside, 0)
    return out


def accuracy(torch, F, net, x, y, tta: int, autocast) -> float:
    """Test accuracy; `tta` 0: plain, 2: airbench's mirror + 1-pixel-shift views."""
    net.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in zip(x.split(2000), y.split(2000), strict=True):
            with autocast():
                def logits(z):
                    return net(z).float()

                out = logits(xb)
                if tta:
                    out = 0.5 * (out + logits(xb.flip(-1)))
                    pad = F.pad(xb, (1, 1, 1, 1), mode="reflect")
                    shifted = [pad[:, :, 0:32, 0:32], pad[:, :, 2:34, 2:34]]
                    out = 0.5 * out + 0.25 * sum(0.5 * (logits(z) + logits(z.flip(-1)))
                                                 for z in shifted)
            correct += (out.argmax(1) == yb).sum().item()
    net.train()
    return correct / len(y)


def train(data: dict, seed: int, epochs: float, batch: int, device, recipe: dict,
          bias_decay: bool = True) -> dict:
    """One training run of `recipe` (one of RECIPES); its accuracies and times.
    `bias_decay=False`: no weight decay on the BatchNorm and whitening biases (bigjax's
    default `optim.decay_exclude`); airbench decays them."""
    import contextlib

    import torch
    import torch.nn.functional as F
    from torch import nn

    cuda = device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", torch.bfloat16) if cuda else contextlib.nullcontext()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    x, y = data["train"]
    net = build_net(torch, nn, F, recipe["widths"], recipe["depth"],
                    recipe["bn_momentum"]).to(device)
    net = net.to(memory_format=torch.channels_last)
    momentum = 0.85
    per_kilo_step = 1024 * (1 + 1 / (1 - momentum))  # airbench's decoupling of lr from momentum
    lr, wd = recipe["lr"] / per_kilo_step, recipe["wd"] * batch / per_kilo_step
    lr_bias = 64 * lr
    named = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
    norm_biases = [p for k, p in named if "norm" in k]  # BatchNorm has no trained scale
    other_biases = [p for k, p in named if "norm" not in k and k.endswith("bias")]
    weights = [p for k, p in named if "norm" not in k and not k.endswith("bias")]
    bias_wd = wd if bias_decay else 0.0
    optimizer = torch.optim.SGD([dict(params=norm_biases, lr=lr_bias,
                                      weight_decay=bias_wd / lr_bias),
                                 dict(params=other_biases, lr=lr, weight_decay=bias_wd / lr),
                                 dict(params=weights, lr=lr, weight_decay=wd / lr)],
                                momentum=momentum, nesterov=True)
    steps_per_epoch = len(x) // batch
    total = math.ceil(steps_per_epoch * epochs)
    schedule = np.interp(np.arange(1 + total), [0, int(recipe["warmup"] * total), total],
                         [0.2, 1.0, recipe["end"]])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: schedule[i])
    decays = 0.95 ** 5 * (np.arange(total + 1) / total) ** 3
    slow = {k: v.clone() for k, v in net.state_dict().items()}
    sync()
    start = time.perf_counter()
    init_whitening(torch, net.whiten, x[:5000])
    step = 0
    for epoch in range(math.ceil(epochs)):
        net.whiten.bias.requires_grad = epoch < 3
        order = torch.randperm(len(x), device=device, generator=generator)
        augmented = augment(torch, F, x, generator, recipe["translate"], recipe["cutout"])
        for b in range(steps_per_epoch):
            rows = order[b * batch:(b + 1) * batch]
            with autocast():
                out = net(augmented[rows].contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(out.float(), y[rows], label_smoothing=0.2,
                                   reduction="none").sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step % 5 == 0 or step >= total:
                decay = 1.0 if step >= total else float(decays[step])
                with torch.no_grad():
                    for k, v in net.state_dict().items():
                        if v.is_floating_point():
                            slow[k].lerp_(v, 1 - decay)
                            v.copy_(slow[k])
            if step >= total:
                break
    sync()
    train_s = time.perf_counter() - start
    xt, yt = data["test"]
    return {"seed": seed, "steps": total, "train_s": train_s,
            "accuracy": accuracy(torch, F, net, xt, yt, 0, autocast),
            "accuracy_tta": accuracy(torch, F, net, xt, yt, 2, autocast)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="training runs (seeds 0, 1, ...)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="94",
                        help="airbench94's or airbench96's hyperparameters and network")
    parser.add_argument("--no_bias_decay", action="store_true",
                        help="no weight decay on the biases (bigjax's default decay_exclude)")
    parser.add_argument("--epochs", type=float, default=None,
                        help="override the recipe's (94: 9.9, 96: 37)")
    parser.add_argument("--data", default=None, help="the CIFAR-10 JPEG tar (default: "
                        "$BIGJAX_DATA_DIR/cifar10_jpg/cifar10_jpg.tar)")
    parser.add_argument("--smoke", action="store_true", help="CI: a small subset, one epoch")
    args = parser.parse_args(argv)
    path = args.data or os.path.join(os.environ.get("BIGJAX_DATA_DIR", ""), "cifar10_jpg",
                                     "cifar10_jpg.tar")
    try:
        import torch
    except ImportError:
        print(json.dumps({"skipped": "torch is not installed (pip install -e '.[bench]')"}))
        return 0
    if not os.path.isfile(path):
        raise SystemExit(f"--data: no CIFAR-10 tar at {path!r}; set BIGJAX_DATA_DIR or --data.")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    limit = {"train": 512, "test": 256} if args.smoke else None
    data = load_tar(path, device, limit)
    load_s = time.perf_counter() - start
    recipe = RECIPES[args.recipe]
    epochs = args.epochs or recipe["epochs"]
    epochs, batch, runs = (1.0, 64, 1) if args.smoke else (epochs, 1024, args.runs)
    if not args.smoke:
        train(data, 99, 1.0, batch, device, recipe)  # warm-up: cuDNN's algorithm search
    results = []
    for seed in range(runs):
        results.append(train(data, seed, epochs, batch, device, recipe,
                             bias_decay=not args.no_bias_decay))
        r = results[-1]
        print(f"seed {seed}: {r['steps']} steps in {r['train_s']:.2f} s, test accuracy "
              f"{100 * r['accuracy']:.2f}%, with TTA {100 * r['accuracy_tta']:.2f}%", flush=True)
    tta = [r["accuracy_tta"] for r in results]
    print(json.dumps({"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                      "torch": torch.__version__, "images": {k: len(v[1]) for k, v in data.items()},
                      "load_s": load_s, "recipe": args.recipe,
                      "bias_decay": not args.no_bias_decay, "epochs": epochs,
                      "batch": batch, "smoke": args.smoke,
                      "runs": results, "accuracy_tta_mean": float(np.mean(tta)),
                      "accuracy_tta_std": float(np.std(tta))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
