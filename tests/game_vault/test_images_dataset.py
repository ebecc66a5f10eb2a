"""Host-side dataset generation and the neutral evaluation pick (game_vault.images)."""

from __future__ import annotations

import json
from pathlib import Path

from game_vault.images import copy_images, generate_dataset, select_images, write_manifest


def test_dataset_pick_and_manifest(tmp_path: Path) -> None:
    dataset = generate_dataset(tmp_path / "data", seed=4, per_class=12, size=32)
    (dataset / "dogs" / "extra.JPG").write_bytes((dataset / "dogs" / "dog_000.png").read_bytes())
    (dataset / "dogs" / "notes.txt").write_text("not an image")
    selected = select_images(dataset, seed=9)
    assert selected == select_images(dataset, seed=9)
    assert len(selected) == 20 and len({image.source for image in selected}) == 20
    assert [image.path[:14] for image in selected] == [f"images/img_{i:02d}." for i in range(20)]
    assert all(image.source.suffix.lower() in {".png", ".jpg"} for image in selected)
    assert all((image.label, image.expected) in {(0, "cat"), (1, "dog")} for image in selected)
    assert all(image.source.parent.name == ("cats", "dogs")[image.label] for image in selected)
    assert not any("cat" in image.path or "dog" in image.path for image in selected)
    manifest = json.loads(write_manifest(selected, tmp_path / "manifest.json").read_text())
    assert manifest["classes"] == ["cat", "dog"]
    assert manifest["images"][0] == {"path": selected[0].path, "label": selected[0].label}
    copy_images(selected, tmp_path / "work")
    assert all((tmp_path / "work" / image.path).is_file() for image in selected)


def test_generation_is_reproducible(tmp_path: Path) -> None:
    first = generate_dataset(tmp_path / "a", seed=1, per_class=2, size=16)
    second = generate_dataset(tmp_path / "b", seed=1, per_class=2, size=16)
    for path in sorted(first.rglob("*.png")):
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes()
