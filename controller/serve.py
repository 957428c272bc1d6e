"""barrierd serving a checked site: poll every PLC, serve the control socket and what the site file asks for, stop
cleanly on SIGTERM; a refusal (no socket, another barrierd, an unsupported site, a bad audit key) starts nothing."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

import controller.structlog_without_rich  # noqa: F401  # before structlog: barrierd's process loads no rich
import structlog

from config import SiteConfig
from controller.audit import AuditKeyError
from controller.auth import Caller, role_for, user_name
from controller.commands import build_registry
from controller.control_socket import ControlServer
from controller.event_store import EventStore
from controller.logging_setup import configure_logging
from controller.instance_lock import InstanceLockError, single_instance
from controller.paths import NoDefaultSocket, default_socket, default_state_dir
from controller.site import Site, UnsupportedConfig
from controller.systemd import Notifier
from hal import event_loop

if TYPE_CHECKING:
    from controller.centre_lockdown import CentreLockdown
    from controller.mqtt_publish import MqttPublisher
    from controller.panel import Panel

log = structlog.get_logger("barrierd")

EXIT_CONFIG = 2  # nothing started: what barrierd was given cannot be served


async def serve(cfg: SiteConfig, socket_path: Path, state_dir: Path) -> None:
    """Run until SIGTERM or SIGINT; on start the PLCs are read and nothing is commanded."""
    store = EventStore(state_dir / "events.sqlite")
    site = Site(cfg, store)
    registry = build_registry()
    daemon_uid = os.geteuid()

    def identify(pid: int, uid: int, gid: int) -> Caller:
        role = role_for(uid, gid, cfg.access, daemon_uid)
        return Caller(uid=uid, gid=gid, pid=pid, user=user_name(uid), role=role)

    async def dispatch(request: dict, caller: Caller) -> dict:
        return (await registry.dispatch(site, request, caller)).as_dict()

    control = ControlServer(socket_path, dispatch, identify)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    log.info("audit_head", when="start", **store.audit_heads())  # a copy of the seals outside the database
    if store.storage.problem is not None:  # supervise all the same; securing commands still go through
        log.error("barrierd_cannot_record", problem=store.storage.problem, state_dir=str(state_dir))
    store.record_event("daemon", "site", "barrierd started", pid=os.getpid(), config=cfg.site.name)
    store.sync()  # the signed head from the start, not only after the first command
    retrying = asyncio.create_task(store.storage.keep_retrying(), name="store-retry")
    syncing = asyncio.create_task(store.keep_synced(), name="store-sync")
    await site.start()
    await control.start()
    log.info("barrierd_ready", site=cfg.site.name, socket=str(socket_path), state_dir=str(state_dir),
             plcs=len(cfg.plc), devices=len(cfg.device))
    publisher = _start_publisher(cfg, site) if cfg.mqtt is not None else None
    centre = _start_centre(cfg, site) if cfg.centre is not None else None
    panel = await _start_panel(cfg, site) if cfg.panel is not None else None
    gc.freeze()  # start-up's objects live as long as barrierd: no full collection walks them again (~40 ms each)
    systemd = Notifier()
    systemd.notify(READY=1, STATUS=f"supervising {len(cfg.device)} devices on {len(cfg.plc)} PLCs")
    watchdog = asyncio.create_task(systemd.watchdog(site.health_problem), name="systemd-watchdog")
    try:
        await stop.wait()
    finally:
        log.info("barrierd_stopping")
        systemd.notify(STOPPING=1)
        watchdog.cancel()
        retrying.cancel()
        syncing.cancel()
        await control.stop()
        if panel is not None:
            await panel.stop()
        if centre is not None:
            await centre.stop()
        if publisher is not None:
            await publisher.stop()  # every device published unknown, the site offline
        await site.stop()
        store.record_event("daemon", "site", "barrierd stopped", pid=os.getpid())
        log.info("audit_head", when="stop", **store.audit_heads())
        store.close()
        log.info("barrierd_stopped")


def _start_publisher(cfg: SiteConfig, site: Site) -> MqttPublisher:
    """MQTT publication, fed by every recorded event (imported here: aiomqtt costs memory where unused)."""
    from controller.mqtt_publish import MqttPublisher

    assert cfg.mqtt is not None
    publisher = MqttPublisher(cfg.mqtt, site)
    site.store.listeners.append(publisher.on_event)
    site.status_extras["mqtt"] = publisher.as_dict
    publisher.start()
    return publisher


def _start_centre(cfg: SiteConfig, site: Site) -> CentreLockdown:
    """The centre's group lockdown, on its own connection to the [mqtt] broker (the loader requires one)."""
    from controller.centre_lockdown import CentreLockdown

    assert cfg.centre is not None and cfg.mqtt is not None
    centre = CentreLockdown(cfg.centre, cfg.mqtt, site, build_registry())
    site.status_extras["centre"] = centre.as_dict
    centre.start()
    return centre


async def _start_panel(cfg: SiteConfig, site: Site) -> Panel | None:
    """The guard's panel, commanding through the same registry as the control socket; if it cannot listen
    (or its TLS files cannot be read), supervision goes on without it (imported here: aiohttp, libpam)."""
    from controller.panel import Panel

    assert cfg.panel is not None
    panel = Panel(cfg.panel, site, build_registry())
    try:
        await panel.start()
    except OSError as exc:  # ssl.SSLError and a missing file are OSErrors too
        log.error("panel_unavailable", host=cfg.panel.host, port=cfg.panel.port, error=str(exc))
        await panel.stop()
        return None
    return panel


def run(cfg: SiteConfig, args: Namespace) -> int:
    """Serve `cfg` with barrierd's arguments until SIGTERM: 0, or EXIT_CONFIG with the reason on stderr."""
    try:
        socket_path, state_dir = args.socket or default_socket(), args.state_dir or default_state_dir()
        with single_instance(state_dir, socket_path):  # before the socket or the store is touched
            event_loop.run(serve(cfg, socket_path, state_dir), precise=bool(cfg.bus))  # RTU: microsecond silences
    except (NoDefaultSocket, InstanceLockError) as exc:
        print(f"barrierd: {exc}; nothing started", file=sys.stderr)
        return EXIT_CONFIG
    except UnsupportedConfig as exc:
        print(f"barrierd: {args.config}: {exc}; nothing started", file=sys.stderr)
        return EXIT_CONFIG
    except AuditKeyError as exc:
        print(f"barrierd: {exc}; nothing started", file=sys.stderr)
        return EXIT_CONFIG
    return 0
