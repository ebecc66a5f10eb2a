"""The ``lumia`` command. It parses arguments and calls the same functions the services use.

Errors the user can fix print one line on stderr and exit 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from events.bus import redact
from lumia.config import ConfigError, Settings, load_settings

BUNDLED_BOTS = Path(__file__).resolve().parent.parent / "game_vault" / "bots"


class CliError(Exception):
    """A problem the user can fix; printed as one line."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        return asyncio.run(args.func(args, settings)) or 0
    except KeyboardInterrupt:
        return 130
    except (CliError, ConfigError) as exc:
        print(f"lumia: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the one place where anything left becomes one line
        from events.bus import BrokerUnavailable

        if isinstance(exc, BrokerUnavailable | OSError | ValueError):
            print(f"lumia: {exc}", file=sys.stderr)
            return 1
        raise


# -- services ---------------------------------------------------------------------------------------

async def _with_nats(settings: Settings, body: Callable[[Settings], Awaitable[int | None]],
                     port: int | None = 4222) -> int | None:
    """Run ``body`` against ``LUMIA_NATS_URL``, or an embedded nats-server under the data dir."""
    if settings.nats_urls:
        return await body(settings)
    from lumia.natsserver import EmbeddedNats

    server = EmbeddedNats(settings.data_dir / "nats", port=port)
    try:
        server.start()
    except Exception as exc:
        raise CliError(f"cannot start the embedded nats-server: {exc}") from None
    try:
        return await body(settings.with_overrides(nats_urls=(server.url,)))
    finally:
        server.stop()


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def cmd_services(args: argparse.Namespace, settings: Settings) -> int:
    from lumia.services import run_services

    roles = ("api", "runner", "forwarder") if args.command == "up" else (args.command,)
    if "api" in roles:
        from api.app import check_bind

        check_bind(settings)

    async def body(effective: Settings) -> int:
        stop = asyncio.Event()
        _stop_on_signals(stop)

        def ready(note: str) -> None:
            where = f"API on http://{effective.api_host}:{effective.api_port}" if "api" in roles else ""
            nats_where = ",".join(redact(url) for url in effective.nats_urls)
            print(f"lumia {args.command}: running ({', '.join(roles)}); NATS {nats_where}"
                  f"{'; ' + where if where else ''}{'; ' + note if note else ''}. Ctrl+C stops.", flush=True)

        await run_services(effective, roles, stop, on_ready=ready)
        return 0

    if args.command == "up":
        return await _with_nats(settings, body) or 0
    if not settings.nats_urls:
        raise CliError(f"`lumia {args.command}` joins an existing NATS: set LUMIA_NATS_URL (or use `lumia up`)")
    return await body(settings)


# -- play -------------------------------------------------------------------------------------------

async def cmd_play(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.lifecycle import build_job
    from events import RunRequested, new_run_id
    from lumia.services import choose_runtime
    from vault import DataDir, sha256

    script = Path(args.script)
    if not script.is_file():
        raise CliError(f"no such script: {script}")
    if args.train and args.game != "image":
        raise CliError("--train is only for the image game")
    settings = settings.with_overrides(runtime=args.runtime or settings.runtime)
    text = script.read_text(encoding="utf-8")
    event = RunRequested(run_id=new_run_id(), user_id=args.user, game=args.game, docker_id=1, training=args.train,
                         script_name=script.name, script=text, script_sha256=sha256(text.encode()),
                         seed=args.seed, source="api")
    data = DataDir(settings.data_dir)
    dataset = Path(args.dataset).resolve() if args.dataset else None
    model = Path(args.model_path).resolve() if args.model_path else None
    job = build_job(event, settings, data, dataset=dataset, model=model if not args.train else None)
    choice = await choose_runtime(settings)
    print(f"runtime: {choice.note}", file=sys.stderr)
    try:
        result = await choice.runtime.run(job)
    finally:
        await choice.runtime.close()
    if result.infrastructure_error:
        raise CliError(result.infrastructure_error)
    game = result.game or {}
    if args.train:
        target = model or data.model_path(1, "image", args.user)
        if result.model and result.exit_code == 0:
            from vault import atomic_write

            atomic_write(target, result.model)
            print(f"training: model saved to {target} ({len(result.model)} bytes) in {result.duration_s:.1f} s")
        else:
            print(f"training: no model (exit code {result.exit_code}, timed out {result.timed_out})")
        _print_output(result.output_tail)
        return 0 if result.model and result.exit_code == 0 else 1
    log_path = data.root / "play" / f"{event.run_id}-{args.game}.json"
    if result.log is not None:
        from vault import atomic_write

        atomic_write(log_path, result.log)
    print(f"outcome:  {game.get('outcome', 'error')}")
    print(f"score:    {game.get('score')}")
    print(f"moves:    {game.get('moves')}")
    print(f"duration: {game.get('duration_s', result.duration_s)} s")
    print(f"reason:   {game.get('reason', '')}")
    print(f"log:      {log_path if result.log is not None else '(none)'}")
    if args.show_output:
        _print_output(result.output_tail)
    return 0


def _print_output(text: str) -> None:
    if text.strip():
        print("script output (capped):")
        for row in text.rstrip().splitlines()[-20:]:
            print(f"  | {row}")


# -- talking to the API -----------------------------------------------------------------------------

def _api_url(settings: Settings, given: str | None) -> str:
    return (given or f"http://{settings.api_host}:{settings.api_port}").rstrip("/")


def _headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}


async def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    script = Path(args.script)
    if not script.is_file():
        raise CliError(f"no such script: {script}")
    url = _api_url(settings, args.api)
    async with httpx.AsyncClient(timeout=30, headers=_headers(settings)) as http:
        try:
            response = await http.post(f"{url}/v1/runs", files={"file": (script.name, script.read_bytes(),
                                                                          "text/x-python")},
                                       data={"userId": args.user, "game": args.game, "dockerId": str(args.docker_id),
                                             "training": str(args.train).lower(),
                                             **({"seed": str(args.seed)} if args.seed is not None else {})})
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the API at {url}: {exc}") from None
        if response.status_code != 202:
            raise CliError(f"the API refused the run ({response.status_code}): {_detail(response)}")
        run_id = response.json()["runId"]
        print(f"run {run_id} requested")
        if not args.follow:
            return 0
        return await _follow(http, url, run_id, timeout=args.timeout)


def _detail(response: Any) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text[:200]


async def _follow(http: Any, url: str, run_id: str, timeout: float) -> int:
    """Print the run's events as they arrive, until its outputs have been delivered or it failed."""
    seen = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await http.get(f"{url}/v1/runs/{run_id}/events")
        events = response.json().get("events", []) if response.status_code == 200 else []
        for item in events[seen:]:
            body = item["event"] or {}
            print(f"  {item['seq']:>6}  {body.get('type', '?'):<20} {_summary(body)}", flush=True)
        seen = max(seen, len(events))
        state = (await http.get(f"{url}/v1/runs/{run_id}")).json()
        if _settled(state):
            print(f"outcome: {state.get('outcome') or '-'} (score {state.get('score')}), status {state.get('status')}"
                  f"{', ' + state['reason'] if state.get('reason') else ''}")
            return 0 if state.get("status") == "exited" else 1
        await asyncio.sleep(0.3)
    raise CliError(f"run {run_id} did not finish within {timeout:g} s (it may still be running)")


def _settled(state: dict[str, Any]) -> bool:
    """Nothing more will happen to this run: it failed, or what it produced has been delivered."""
    if state.get("status") == "failed":
        return True
    if state.get("status") != "exited":
        return False
    if state.get("training"):
        return bool(state.get("backend_notified")) or not state.get("model_saved")
    return bool(state.get("log_forwarded") or state.get("log_forward_error"))


def _summary(body: dict[str, Any]) -> str:
    keys = ("outcome", "score", "exit_code", "reason", "path", "status", "node")
    return ", ".join(f"{k}={body[k]}" for k in keys if body.get(k) not in (None, "", []))


async def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    url = _api_url(settings, args.api)
    async with httpx.AsyncClient(timeout=10, headers=_headers(settings)) as http:
        try:
            if args.action == "show":
                response = await http.get(f"{url}/v1/runs/{args.run_id}")
            else:
                params = {k: v for k, v in (("user", args.user), ("game", args.game), ("status", args.status)) if v}
                response = await http.get(f"{url}/v1/runs", params=params)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the API at {url}: {exc}") from None
    if response.status_code != 200:
        raise CliError(f"{response.status_code}: {_detail(response)}")
    body = response.json()
    if args.action == "show":
        print(json.dumps(body, indent=2))
        return 0
    for run in body["runs"]:
        print(f"{run['run_id']}  {run['status']:<9} {run['game']:<8} {run['user_id']}  "
              f"{run.get('outcome') or '-':<5} {run.get('requested_at') or ''}")
    print(f"{body['total']} run(s)")
    return 0


# -- events, dead letters, projections (straight from the stream) ----------------------------------

async def _connected(settings: Settings, body: Callable[[Any, Settings], Awaitable[int]]) -> int:
    from events.bus import connect

    if not settings.nats_urls:  # the embedded server of `lumia up` in this data dir
        from lumia.natsserver import local_url

        settings = settings.with_overrides(nats_urls=(local_url(settings.data_dir / "nats", 4222),))
    nc = await connect(settings.nats_urls, name="lumia-cli", connect_timeout=2)
    try:
        return await body(nc.jetstream(timeout=10), settings)
    finally:
        await nc.close()


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--since {text!r}: use an ISO time (2026-12-03T10:00) or an age like 15m, 2h") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def cmd_events(args: argparse.Namespace, settings: Settings) -> int:
    from events.codec import schema

    if args.action == "schema":
        print(json.dumps(schema(), indent=2))
        return 0

    async def body(js: Any, settings: Settings) -> int:
        from events.bus import read_history, read_run
        from events.codec import to_builtins
        from events.subjects import ALL, run_subject
        from lumia.timeline import line

        subject = run_subject(args.run) if getattr(args, "run", None) else (args.subject or ALL)
        if args.action == "replay":
            count = 0
            if getattr(args, "run", None):
                history = _aiter(await read_run(js, settings.stream, args.run))
            else:
                history = read_history(js, settings.stream, subject, since=_since(args.since))
            async for stored in history:
                count += 1
                if args.json:
                    print(json.dumps({"seq": stored.seq, "subject": stored.subject,
                                      "event": to_builtins(stored.event) if stored.event else None,
                                      "problem": stored.problem}))
                else:
                    print(line(stored))
            if count == 0 and not args.json:
                print(f"no events on {subject}", file=sys.stderr)
                return 1
            return 0
        return await _tail(js, subject, args.json)

    return await _connected(settings, body)


async def _aiter(items: list[Any]) -> Any:
    for item in items:
        yield item


async def _tail(js: Any, subject: str, as_json: bool) -> int:
    from nats.js.api import DeliverPolicy

    from events.bus import StoredEvent
    from events.codec import MalformedEvent, UnknownEvent, decode, to_builtins
    from lumia.timeline import line

    stop = asyncio.Event()
    _stop_on_signals(stop)
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW)
    try:
        while not stop.is_set():
            try:
                msg = await sub.next_msg(timeout=1)
            except Exception:
                continue
            try:
                event, problem = decode(msg.data), None
            except (UnknownEvent, MalformedEvent) as exc:
                event, problem = None, str(exc)
            stored = StoredEvent(msg.metadata.sequence.stream, msg.subject, msg.metadata.timestamp, event, problem)
            print(json.dumps({"seq": stored.seq, "subject": stored.subject,
                              "event": to_builtins(event) if event else None}) if as_json else line(stored),
                  flush=True)
    finally:
        await sub.unsubscribe()
    return 0


async def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    async def body(js: Any, settings: Settings) -> int:
        from events import DeadLettered
        from events.bus import read_history
        from events.subjects import DEAD_LETTERS

        letters = [s async for s in read_history(js, settings.stream, DEAD_LETTERS)
                   if isinstance(s.event, DeadLettered)]
        if args.action == "ls":
            for stored in letters:
                event = stored.event
                print(f"{event.stream_seq:>7}  {event.consumer:<12} {event.subject}  {event.reason}")
            print(f"{len(letters)} dead letter(s)")
            return 0
        if args.seq not in {letter.event.stream_seq for letter in letters}:
            raise CliError(f"stream sequence {args.seq} is not a dead letter (see `lumia dlq ls`)")
        original = await js.get_msg(settings.stream, seq=args.seq)
        # Re-drive: publish the original event again under a fresh message id (a deliberate retry).
        headers = {"Nats-Msg-Id": f"redrive.{args.seq}.{int(time.time())}"}
        ack = await js.publish(original.subject, original.data, headers=headers)
        print(f"re-drove seq {args.seq} ({original.subject}) as seq {ack.seq}")
        return 0

    return await _connected(settings, body)


async def cmd_projections(args: argparse.Namespace, settings: Settings) -> int:
    async def body(js: Any, settings: Settings) -> int:
        from consumers.projection import RunStore, rebuild

        states = await rebuild(js, settings.stream)
        store = await RunStore.open(js, settings.stream_replicas)
        for state in states.values():
            await store.put(state)
        print(f"rebuilt {len(states)} run state(s) from the stream")
        return 0

    return await _connected(settings, body)


async def cmd_image(args: argparse.Namespace, settings: Settings) -> int:
    from lumia.images import build_images

    await build_images(settings, base=args.base, ml=args.ml)
    return 0


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from lumia.demo import run_demo

    return await run_demo(settings, game=args.game, script=Path(args.script) if args.script else None)


# -- argument parsing -------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lumia", description="Lumia Cluster Manager")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    for name, text in (("up", "everything on this machine (embedded NATS unless LUMIA_NATS_URL)"),
                       ("api", "the REST API and the run-state projection"),
                       ("runner", "sandboxes and drop-folder watchers of this node"),
                       ("forwarder", "delivery of logs and training notifications to the backend")):
        commands.add_parser(name, help=text).set_defaults(func=cmd_services)

    play = commands.add_parser("play", help="play one game locally and print the outcome")
    play.add_argument("game", choices=("snake", "connect4", "image"))
    play.add_argument("script")
    play.add_argument("--seed", type=int, default=0)
    play.add_argument("--runtime", choices=("docker", "process"))
    play.add_argument("--user", default="000000000000000000000001", help="userId to run as (24 hex)")
    play.add_argument("--train", action="store_true", help="image only: train instead of evaluating")
    play.add_argument("--dataset", help="image data set folder (one sub-folder per class)")
    play.add_argument("--model-path", help="where the model is read (evaluation) or written (training)")
    play.add_argument("--show-output", action="store_true", help="print the script's captured output")
    play.set_defaults(func=cmd_play)

    submit = commands.add_parser("submit", help="submit a script through the API")
    submit.add_argument("script")
    submit.add_argument("--game", required=True)
    submit.add_argument("--user", required=True)
    submit.add_argument("--docker-id", type=int, default=1)
    submit.add_argument("--train", action="store_true")
    submit.add_argument("--seed", type=int)
    submit.add_argument("--follow", action="store_true", help="print progress until the run ends")
    submit.add_argument("--timeout", type=float, default=600)
    submit.add_argument("--api", help="API base URL (default from LUMIA_API_HOST/PORT)")
    submit.set_defaults(func=cmd_submit)

    events = commands.add_parser("events", help="read the event stream")
    actions = events.add_subparsers(dest="action", required=True)
    tail = actions.add_parser("tail", help="print new events as they arrive")
    tail.add_argument("--subject")
    tail.add_argument("--json", action="store_true")
    replay = actions.add_parser("replay", help="print stored events in order")
    replay.add_argument("--run")
    replay.add_argument("--since", help="ISO time or an age such as 15m")
    replay.add_argument("--subject")
    replay.add_argument("--json", action="store_true")
    actions.add_parser("schema", help="JSON Schema of every event")
    events.set_defaults(func=cmd_events)

    runs = commands.add_parser("runs", help="runs, through the API")
    run_actions = runs.add_subparsers(dest="action", required=True)
    ls = run_actions.add_parser("ls")
    ls.add_argument("--user")
    ls.add_argument("--game")
    ls.add_argument("--status")
    show = run_actions.add_parser("show")
    show.add_argument("run_id")
    runs.add_argument("--api")
    runs.set_defaults(func=cmd_runs)

    dlq = commands.add_parser("dlq", help="dead letters")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    dlq_actions.add_parser("ls")
    retry = dlq_actions.add_parser("retry")
    retry.add_argument("seq", type=int, help="stream sequence of the dead-lettered message")
    dlq.set_defaults(func=cmd_dlq)

    projections = commands.add_parser("projections", help="read models")
    projection_actions = projections.add_subparsers(dest="action", required=True)
    projection_actions.add_parser("rebuild")
    projections.set_defaults(func=cmd_projections)

    image = commands.add_parser("image", help="sandbox images")
    image_actions = image.add_subparsers(dest="action", required=True)
    build = image_actions.add_parser("build", help="build the base (if missing) and runner images")
    build.add_argument("--base", help="base image (default LUMIA_BASE_IMAGE, built by debootstrap if missing)")
    build.add_argument("--ml", action="store_true", help="also build the ML variant (Debian torch)")
    image.set_defaults(func=cmd_image)

    demo = commands.add_parser("demo", help="run the whole pipeline once on a bundled bot")
    demo.add_argument("--game", default="snake", choices=("snake", "connect4", "image"))
    demo.add_argument("--script")
    demo.set_defaults(func=cmd_demo)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
