"""Host-side image helpers: a small learnable cat/dog dataset and the 20-image evaluation pick.

Runs on the host (it may use Pillow and numpy), never inside the game server. Labels follow
torchvision ``ImageFolder``: class folders in sorted order, so ``cats`` = 0 and ``dogs`` = 1; the log
names label 0 ``cat`` and label 1 ``dog`` (protocol §8.1).
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
EXPECTED_NAMES = ("cat", "dog")
_CLASS_FOLDERS = ("cats", "dogs")


@dataclass(frozen=True)
class SelectedImage:
    """One evaluation prompt: where the file is, the neutral path the client sees, its label."""

    source: Path
    path: str
    label: int
    expected: str


def generate_dataset(out_dir: Path | str, seed: int = 0, per_class: int = 60, size: int = 128) -> Path:
    """Write ``cats/*.png`` and ``dogs/*.png``: warm striped images vs cool blotchy ones, with noise.

    The two classes differ in colour and texture statistics, so a nearest-centroid or logistic
    regression on downscaled pixels learns them; the noise keeps it from being a lookup.
    """
    import numpy as np
    from PIL import Image

    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for label, folder in enumerate(_CLASS_FOLDERS):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            if label == 0:  # stripes in warm tones
                base = np.array([185, 125, 70]) + rng.normal(0, 25, 3)
                angle = rng.uniform(0, np.pi)
                frequency = rng.uniform(6, 14)
                phase = rng.uniform(0, 2 * np.pi)
                wave = np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + phase)
                pattern = 40 * wave
            else:  # soft blotches in cool tones
                base = np.array([105, 115, 150]) + rng.normal(0, 25, 3)
                coarse = rng.normal(0, 1, (8, 8))
                blotches = np.kron(coarse, np.ones((size // 8 + 1, size // 8 + 1)))[:size, :size]
                pattern = 30 * blotches
            pixels = base[None, None, :] + pattern[:, :, None] + rng.normal(0, 20, (size, size, 3))
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
            image.save(out / folder / f"{folder[:-1]}_{index:03d}.png")
    return out


def _class_images(dataset_dir: Path) -> list[list[Path]]:
    folders = sorted(path for path in dataset_dir.iterdir() if path.is_dir())
    return [sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES) for folder in folders]


def select_images(dataset_dir: Path | str, seed: int, count: int = 20) -> list[SelectedImage]:
    """Pick ``count`` images as legacy did (a random class per pick), without repeats.

    Each gets a neutral relative path (``images/img_07.png``) that says nothing about its class.
    """
    rng = random.Random(seed)
    pools = [list(images) for images in _class_images(Path(dataset_dir))]
    if sum(len(pool) for pool in pools) < count:
        raise ValueError(f"{dataset_dir} holds fewer than {count} images")
    selected = []
    for index in range(count):
        label = rng.choice([label for label, pool in enumerate(pools) if pool])
        source = pools[label].pop(rng.randrange(len(pools[label])))
        neutral = f"images/img_{index:02d}{source.suffix.lower()}"
        selected.append(SelectedImage(source=source, path=neutral, label=label, expected=EXPECTED_NAMES[label]))
    return selected


def manifest_bytes(selected: list[SelectedImage]) -> bytes:
    """The manifest the image server reads with ``--images``: neutral paths and their labels."""
    manifest = {
        "images": [{"path": image.path, "label": image.label} for image in selected],
        "classes": list(EXPECTED_NAMES),
    }
    return (json.dumps(manifest, indent=2) + "\n").encode("utf-8")


def write_manifest(selected: list[SelectedImage], path: Path | str) -> Path:
    target = Path(path)
    target.write_bytes(manifest_bytes(selected))
    return target


def copy_images(selected: list[SelectedImage], work_dir: Path | str) -> None:
    """Place the selected files under their neutral paths in the script's working directory."""
    for image in selected:
        target = Path(work_dir) / image.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image.source, target)
