"""``lumia image build``: the sandbox images, built locally and never pulled.

The base is ``LUMIA_BASE_IMAGE``: by default ``lumia-base:bookworm``, a minimal Debian made by
``images/make-base.sh`` (debootstrap + docker import) when it is missing. Elsewhere a registry image
such as ``python:3.12-slim`` can be named, provided it is already present. The runner image adds the
game harness on top (``images/runner/Dockerfile``); ``--ml`` adds Debian's torch for image training.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import tarfile
from pathlib import Path

import aiodocker
from aiodocker.exceptions import DockerError

from lumia.config import Settings

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "images"


class ImageBuildError(RuntimeError):
    pass


def _context(dockerfile: Path) -> bytes:
    """Build context: the Dockerfile and the game harness, nothing else (no data, no caches)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(dockerfile, arcname="Dockerfile")
        for path in sorted((REPO / "game_vault").rglob("*")):
            if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
                continue
            archive.add(path, arcname=path.relative_to(REPO).as_posix(), recursive=False)
    return gzip.compress(buffer.getvalue())


async def _build(docker: aiodocker.Docker, dockerfile: Path, tag: str, base: str) -> None:
    print(f"building {tag} on {base} ...", flush=True)
    try:
        await docker.images.build(fileobj=io.BytesIO(_context(dockerfile)), encoding="gzip", tag=tag,
                                  buildargs={"BASE": base}, rm=True, forcerm=True, pull=False)
    except DockerError as exc:
        raise ImageBuildError(f"building {tag} failed: {exc.message}") from None
    print(f"built {tag}", flush=True)


async def _exists(docker: aiodocker.Docker, tag: str) -> bool:
    try:
        await docker.images.inspect(tag)
    except DockerError:
        return False
    return True


async def build_images(settings: Settings, base: str | None = None, ml: bool = False) -> None:
    base = base or settings.base_image
    docker = aiodocker.Docker()
    try:
        try:
            await docker.version()
        except Exception as exc:
            raise ImageBuildError(f"Docker engine not reachable: {exc}") from None
        if not await _exists(docker, base):
            if base != Settings().base_image:
                raise ImageBuildError(f"base image {base} is not present and is never pulled; load it first")
            process = await asyncio.create_subprocess_exec("bash", str(IMAGES / "make-base.sh"), base)
            if await process.wait() != 0:
                raise ImageBuildError("making the base image failed (see above)")
        await _build(docker, IMAGES / "runner" / "Dockerfile", settings.runner_image, base)
        if ml:
            ml_tag = f"{settings.runner_image.split(':')[0]}-ml:latest"
            await _build(docker, IMAGES / "runner" / "Dockerfile.ml", ml_tag, settings.runner_image)
    finally:
        await docker.close()
