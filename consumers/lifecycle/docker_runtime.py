"""Docker runtime: two containers per run that share only a network namespace.

    game container  lumia-<run>-game   trusted harness (uid 1000), network "none", writes /out/log.json
    user container  lumia-<run>-user   the user's script (uid 65534), joins the game container's
                                       network namespace (so localhost:5001 works and nothing else
                                       does), read-only root, /app read-only, /tmp a small tmpfs
    volume          lumia-<run>-app    the user's working directory; filled through the game
                                       container (archive put), mounted read-only for the user
    volume          lumia-<run>-train  training only: size-capped tmpfs holding model.pt; the game
                                       container keeps it mounted so the model can be read back

The user cannot see the game's processes, files or log (separate PID and mount namespaces), nor
anything of another run. Outputs come out through the Docker API (archive get), never a host path.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import tarfile
import time
import uuid

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError
from aiodocker.volumes import DockerVolume

from consumers.lifecycle.sandbox import (
    READY_LINE,
    OutputCapture,
    SandboxJob,
    SandboxResult,
    parse_result_line,
)

log = logging.getLogger("lumia.docker")

GAME_UID = "1000:1000"
USER_UID = "65534:65534"
TRAIN_MODEL_PATH = "/train/model.pt"
STOP_GRACE_S = 2.0
# Time allowed for everything around the game: creating, copying, reading back, removing.
SETUP_BUDGET_S = 60.0


class DockerUnavailable(RuntimeError):
    """The engine cannot be reached or the runner image is missing."""


def _tar(files: dict[str, bytes], uid: int = 0, dir_mode: int = 0o755, file_mode: int = 0o644) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        made: set[str] = set()
        for name, data in sorted(files.items()):
            parts = name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folder = "/".join(parts[:depth])
                if folder not in made:
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, dir_mode, uid, uid
                    archive.addfile(info)
                    made.add(folder)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), file_mode, uid, uid, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read_file(archive: tarfile.TarFile, limit: int) -> bytes | None:
    for member in archive.getmembers():
        if member.isfile():
            if member.size > limit:
                return None
            handle = archive.extractfile(member)
            return handle.read() if handle else None
    return None


class DockerRuntime:
    name = "docker"

    def __init__(self, image: str, node: str, docker: aiodocker.Docker | None = None,
                 game_images: dict[str, str] | None = None) -> None:
        self.image = image
        self.node = node
        # Per game overrides, e.g. the image game on the ML variant (torch) when it is present.
        self.game_images = dict(game_images or {})
        self._docker = docker or aiodocker.Docker()
        self._active: set[str] = set()
        self._stopped: set[str] = set()

    @classmethod
    async def connect(cls, image: str, node: str, ml_image: str | None = None) -> DockerRuntime:
        """Check the engine and the runner image; use the ML variant for the image game if present."""
        docker = aiodocker.Docker()
        game_images: dict[str, str] = {}
        try:
            await docker.version()
            await docker.images.inspect(image)
            ml_image = ml_image or f"{image.split(':')[0]}-ml:latest"  # as `lumia image build --ml` tags it
            with contextlib.suppress(DockerError):
                await docker.images.inspect(ml_image)
                game_images["image"] = ml_image
        except DockerError as exc:
            await docker.close()
            if exc.status == 404:
                raise DockerUnavailable(f"runner image {image} is missing: run `lumia image build`") from None
            raise DockerUnavailable(f"Docker engine error: {exc.message}") from None
        except Exception as exc:
            await docker.close()
            raise DockerUnavailable(f"Docker engine not reachable: {exc}") from None
        return cls(image, node, docker, game_images)

    def image_for(self, game: str) -> str:
        return self.game_images.get(game, self.image)

    async def close(self) -> None:
        await self._docker.close()

    # -- the port -------------------------------------------------------------------------------

    async def run(self, job: SandboxJob) -> SandboxResult:
        started = time.monotonic()
        result = SandboxResult()
        names = _Names(job.run_id, nonce=uuid.uuid4().hex[:8], training=job.training)
        labels = self._labels(job)
        self._active.add(job.run_id)
        game_output: _LinePump | None = None
        log_read: asyncio.Future[bytes | None] | None = None
        try:
            # Every Docker call is bounded: a stuck engine is the platform's failure, never a hung run.
            async with asyncio.timeout(job.limits.wall_s + job.limits.connect_timeout_s + SETUP_BUDGET_S):
                await self._create_volumes(job, names, labels)
                try:
                    game = await self._create_game(job, names, labels)
                except DockerError as exc:
                    if exc.status != 409:
                        raise
                    # A redelivered request whose earlier attempt left containers: start from a clean slate.
                    await self._remove_run(job.run_id, keep=names.volumes)
                    game = await self._create_game(job, names, labels)

                async def put_files() -> None:
                    await game.put_archive("/sandbox/app", _tar({job.script_name: job.script, **job.files}))
                    if job.manifest is not None:
                        await game.put_archive("/out", _tar({"manifest.json": job.manifest}, uid=1000))

                async def start_game() -> bool:
                    nonlocal game_output
                    if job.manifest is not None:
                        await put_files_task  # the game reads its manifest when it starts
                    if job.run_id in self._stopped:
                        return False
                    await game.start()
                    game_output = _LinePump(game)
                    return job.training or await game_output.wait_ready(job.limits.connect_timeout_s + 10)

                # Three independent steps at once: the files go in, the game starts, the user container is
                # created (it joins the game's network namespace only when it starts).
                put_files_task = asyncio.ensure_future(put_files())
                steps = await asyncio.gather(put_files_task, start_game(), self._create_user(job, names, labels),
                                             return_exceptions=True)
                for step in steps:
                    if isinstance(step, BaseException):
                        raise step
                _, ready, user = steps
                if job.run_id in self._stopped:
                    return result
                if not ready:
                    result.infrastructure_error = "game server did not become ready: " + (
                        game_output.tail() if game_output else "")
                    return result
                await user.start()
                user_output = _OutputPump(user, job.limits.output_kb * 1024)
                await self._wait_for_end(job, game, user, result)
                if not job.training:
                    # The game has exited: its log comes out while the script gets its grace.
                    log_read = asyncio.ensure_future(self._read(game, "/out/log.json", 64 * 1024 * 1024))
                    await self._end_script(user)
                await user_output.finish()
                result.output_tail = user_output.capture.text()
                result.output_truncated = user_output.capture.truncated
                state = (await user.show())["State"]
                result.oom_killed = bool(state.get("OOMKilled"))
                result.exit_code = state.get("ExitCode") if not state.get("Running") else None
                if log_read is None:
                    result.model = await self._read(game, TRAIN_MODEL_PATH, 512 * 1024 * 1024)
                else:
                    await game_output.finish()
                    result.game = game_output.result
                    result.log = await log_read
        except DockerError as exc:
            result.infrastructure_error = f"Docker: {exc.message}"
        except TimeoutError:
            result.infrastructure_error = "Docker engine did not answer in time"
        except (aiohttp.ClientError, OSError) as exc:
            result.infrastructure_error = f"Docker engine not reachable: {exc}"
        finally:
            if game_output is not None:
                game_output.cancel()
            if log_read is not None and not log_read.done():
                log_read.cancel()
            result.stopped = job.run_id in self._stopped
            self._stopped.discard(job.run_id)
            self._active.discard(job.run_id)
            result.duration_s = round(time.monotonic() - started, 3)
            # Shielded: a cancelled run still removes its containers (reconcile catches a crash).
            with contextlib.suppress(DockerError, aiohttp.ClientError, OSError, TimeoutError):
                await asyncio.shield(asyncio.wait_for(self._remove_run(job.run_id, names), SETUP_BUDGET_S))
        return result

    async def stop(self, run_id: str) -> bool:
        """Kill the user's script at once and give the game ``STOP_GRACE_S`` to write its log."""
        if run_id not in self._active:
            return False
        self._stopped.add(run_id)
        names = _Names(run_id)
        await asyncio.gather(self._end(names.user, kill=True), self._end(names.game, kill=False))
        return True

    async def _end(self, name: str, kill: bool) -> None:
        with contextlib.suppress(DockerError):
            container = self._docker.containers.container(name)
            if kill:
                await container.kill()
            else:
                await container.stop(t=int(STOP_GRACE_S))

    async def reconcile(self, live_run_ids: set[str]) -> list[str]:
        """Remove every sandbox (containers and volumes) of this node that belongs to no live run.

        Returns the run ids removed. Runs this runtime is executing right now count as live.
        """
        live = live_run_ids | self._active
        orphans: set[str] = set()
        node = {"label": [f"lumia.node={self.node}"]}
        for container in await self._containers(node):
            orphans.add(container["Labels"].get("lumia.run_id", ""))
        for volume in (await self._docker.volumes.list(filters=node)).get("Volumes") or []:
            orphans.add((volume.get("Labels") or {}).get("lumia.run_id", ""))
        orphans -= live
        for run_id in orphans:
            await self._remove_run(run_id)
        return sorted(orphans)

    # -- steps ----------------------------------------------------------------------------------

    def _labels(self, job: SandboxJob) -> dict[str, str]:
        return {
            "lumia.run_id": job.run_id,
            "lumia.user_id": job.user_id,
            "lumia.game": job.game,
            "lumia.node": self.node,
        }

    async def _create_volumes(self, job: SandboxJob, names: _Names, labels: dict[str, str]) -> None:
        await self._docker.volumes.create({"Name": names.app, "Labels": labels})
        if job.training:
            await self._docker.volumes.create({
                "Name": names.train,
                "Labels": labels,
                "Driver": "local",
                "DriverOpts": {"type": "tmpfs", "device": "tmpfs",
                               "o": f"size={job.limits.tmpfs_mb}m,uid=65534,gid=65534,mode=0700"},
            })

    def _common_host_config(self) -> dict[str, object]:
        return {
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "Privileged": False,
            "PublishAllPorts": False,
            "IpcMode": "private",
            "ShmSize": 16 * 1024 * 1024,
        }

    async def _create_game(self, job: SandboxJob, names: _Names, labels: dict[str, str]):
        mounts = [{"Type": "volume", "Source": names.app, "Target": "/sandbox/app"}]
        if job.training:
            # NoCopy: Docker would otherwise copy the image's /train (root, 0755) over the tmpfs options.
            mounts.append({"Type": "volume", "Source": names.train, "Target": "/train",
                           "VolumeOptions": {"NoCopy": True}})
            command = ["sleep", "infinity"]  # keeps the network namespace and the model volume alive
        else:
            manifest = "/out/manifest.json" if job.manifest is not None else None
            command = job.game_command("python3", "/out/log.json", manifest)
        config = {
            "Image": self.image_for(job.game),
            "Cmd": command,
            "User": GAME_UID,
            "WorkingDir": "/opt/lumia",
            "Labels": {**labels, "lumia.role": "game"},
            "Env": ["PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"],
            "HostConfig": {
                **self._common_host_config(),
                "NetworkMode": "none",
                "Mounts": mounts,
                "Memory": 256 * 1024 * 1024,
                "MemorySwap": 256 * 1024 * 1024,
                "NanoCpus": 1_000_000_000,
                "PidsLimit": 32,
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "4m", "max-file": "1"}},
            },
        }
        return await self._docker.containers.create(config, name=names.game)

    async def _create_user(self, job: SandboxJob, names: _Names, labels: dict[str, str]):
        limits = job.limits
        mounts = [{"Type": "volume", "Source": names.app, "Target": "/app", "ReadOnly": True}]
        if job.training:
            # NoCopy: Docker would otherwise copy the image's /train (root, 0755) over the tmpfs options.
            mounts.append({"Type": "volume", "Source": names.train, "Target": "/train",
                           "VolumeOptions": {"NoCopy": True}})
        memory = limits.memory_mb * 1024 * 1024
        config = {
            "Image": self.image_for(job.game),
            "Cmd": job.user_command(TRAIN_MODEL_PATH),
            "User": USER_UID,
            "WorkingDir": "/app",
            "Labels": {**labels, "lumia.role": "user"},
            "Env": [f"{key}={value}" for key, value in job.user_env().items()],
            "HostConfig": {
                **self._common_host_config(),
                "NetworkMode": f"container:{names.game}",
                "ReadonlyRootfs": True,
                "Mounts": mounts,
                "Tmpfs": {"/tmp": f"rw,nosuid,nodev,size={limits.tmpfs_mb}m,mode=1777",
                          "/run/lock": "rw,nosuid,nodev,size=1m"},
                "Memory": memory,
                "MemorySwap": memory,  # equal to Memory: no swap
                "NanoCpus": int(limits.cpus * 1_000_000_000),
                "PidsLimit": limits.pids,
                "Ulimits": [
                    {"Name": "nofile", "Soft": limits.open_files, "Hard": limits.open_files},
                    {"Name": "fsize", "Soft": limits.tmpfs_mb * 1024 * 1024, "Hard": limits.tmpfs_mb * 1024 * 1024},
                ],
                # The cap is ours (OutputCapture); the log file only bounds disk use. Two files, so a
                # follower survives a rotation (with one, Docker 20.10 ends the follow with an error).
                "LogConfig": {"Type": "json-file",
                              "Config": {"max-size": f"{max(1024, 2 * limits.output_kb)}k", "max-file": "2"}},
            },
        }
        return await self._docker.containers.create(config, name=names.user)

    async def _wait_for_end(self, job: SandboxJob, game, user, result: SandboxResult) -> None:
        """Wait for the game (training: the script) to end within the run's wall-clock limit."""
        watched = user if job.training else game
        try:
            async with asyncio.timeout(job.limits.wall_s):
                await watched.wait()
        except TimeoutError:
            result.timed_out = True
            # The script dies at once; the game gets a short grace to write its log (SIGTERM).
            with contextlib.suppress(DockerError):
                await user.kill()
            if not job.training:
                with contextlib.suppress(DockerError):
                    await game.stop(t=int(STOP_GRACE_S))
            with contextlib.suppress(DockerError):
                await watched.wait()

    @staticmethod
    async def _end_script(user) -> None:
        """The game is over: give the script a moment to exit on its own, then end it."""
        try:
            async with asyncio.timeout(STOP_GRACE_S):
                await user.wait()
        except TimeoutError:
            with contextlib.suppress(DockerError):
                await user.kill()
            with contextlib.suppress(DockerError):
                await user.wait()

    async def _read(self, container, path: str, limit: int) -> bytes | None:
        try:
            archive = await container.get_archive(path)
        except DockerError as exc:
            if exc.status == 404:
                return None
            raise
        with archive:
            return _read_file(archive, limit)

    async def _containers(self, filters: dict[str, list[str]]) -> list:
        return await self._docker.containers.list(all=True, filters=json.dumps(filters))

    async def _remove_run(self, run_id: str, names: _Names | None = None, keep: tuple[str, ...] = ()) -> None:
        """Remove a run's containers and volumes: by name when this runtime made them, else by label."""
        if names is not None:
            containers = [names.user, names.game]  # the user first: it lives in the game's namespace
            volumes = list(names.volumes)
        else:
            found = await self._containers({"label": [f"lumia.run_id={run_id}"]})
            found.sort(key=lambda container: container["Labels"].get("lumia.role") != "user")
            containers = [container.id for container in found]
            listed = await self._docker.volumes.list(filters={"label": [f"lumia.run_id={run_id}"]})
            volumes = [volume["Name"] for volume in listed.get("Volumes") or [] if volume["Name"] not in keep]
        async def delete(container: str) -> None:
            with contextlib.suppress(DockerError):
                await self._docker.containers.container(container).delete(force=True, v=True)

        await asyncio.gather(*(delete(container) for container in containers))
        for volume in volumes:
            with contextlib.suppress(DockerError):
                await DockerVolume(self._docker, volume).delete()


class _Names:
    """Containers are named from the run id alone; volumes also carry a per-attempt nonce, so a
    redelivered run never finds the files (or the model) of an earlier attempt."""

    def __init__(self, run_id: str, nonce: str = "", training: bool = True) -> None:
        self.game = f"lumia-{run_id}-game"
        self.user = f"lumia-{run_id}-user"
        self.app = f"lumia-{run_id}-app-{nonce}"
        self.train = f"lumia-{run_id}-train-{nonce}"
        self.volumes = (self.app, self.train) if training else (self.app,)


class _LinePump:
    """Reads the game container's stdout: the ready line, the result line, a tail for errors."""

    def __init__(self, container) -> None:
        self.ready = asyncio.Event()
        self.result: dict[str, object] | None = None
        self._lines: list[str] = []
        self._task = asyncio.create_task(self._pump(container))

    async def _pump(self, container) -> None:
        pending = ""
        with contextlib.suppress(DockerError):
            async for chunk in container.log(stdout=True, stderr=True, follow=True):
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    self._take(line.strip())
        if pending:
            self._take(pending.strip())

    def _take(self, line: str) -> None:
        if line == READY_LINE:
            self.ready.set()
        elif (parsed := parse_result_line(line)) is not None:
            self.result = parsed
        self._lines = [*self._lines[-20:], line]

    async def wait_ready(self, timeout: float) -> bool:
        ready = asyncio.create_task(self.ready.wait())
        await asyncio.wait({ready, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        return self.ready.is_set()

    async def finish(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        self._task.cancel()

    def cancel(self) -> None:
        self._task.cancel()

    def tail(self) -> str:
        return " | ".join(line for line in self._lines if line)[-500:]


class _OutputPump:
    """Counts and caps the user's stdout and stderr (Docker frames, not lines)."""

    def __init__(self, container, cap: int) -> None:
        self.capture = OutputCapture(cap)
        self._task = asyncio.create_task(self._pump(container))

    async def _pump(self, container) -> None:
        with contextlib.suppress(DockerError):
            async for chunk in container.log(stdout=True, stderr=True, follow=True):
                self.capture.feed(chunk.encode("utf-8", "replace"))

    async def finish(self, timeout: float = 3.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        self._task.cancel()
