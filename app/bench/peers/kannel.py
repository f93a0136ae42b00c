"""Kannel (Debian's ``kannel`` package: bearerbox + smsbox) as the peer of
``smsagg bench peers``, configured as a production setup would be.

The generated ``kannel.conf`` (:func:`kannel_conf`) has:

* **core**: the admin port with a random password, the smsbox port, both on 127.0.0.1
  and allowing 127.0.0.1 only; a file store (``store-type = file``) and internal DLR
  storage in the run's folder; log-level 1 into the folder.
* **smsc**: one SMPP transceiver bind to the benchmark's SMSC, ``max-pending-submits``
  10 (Kannel's default window, as smsagg's), ``throughput = 0`` (no limit) and an
  empty ``system-type`` (bearerbox refuses to start without one).
* **smsbox** with ``sendsms`` on 127.0.0.1, and one **sendsms-user**.

Each message asks for its DRs with ``dlr-mask`` and a ``dlr-url`` naming its own id
(see ``send.lua``); bearerbox matches the SMSC's receipts and smsbox calls the URL.
Both boxes run with ``-v 4`` (panics only on stderr, as Debian's init script runs them).
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from app.bench.peers.procs import Processes

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
DLR_MASK_FINAL = 3  # 1 delivered + 2 failed
DLR_MASK_BOTH = 11  # ... + 8 SMSC acknowledged, the counterpart of smsagg's message_state 6


def installed() -> bool:
    return all(shutil.which(box) for box in ("bearerbox", "smsbox"))


def version() -> str:
    found = re.search(r"version `([^']+)'", subprocess.run(["bearerbox", "--version"], capture_output=True,
                                                           text=True).stdout)
    return found.group(1) if found else "unknown"


def _quoted(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class KannelConfig:
    folder: Path
    smsc_port: int
    admin_port: int
    smsbox_port: int
    sendsms_port: int
    admin_password: str
    user: str = "bench"
    password: str = "bench-password"
    window: int = 10
    log_level: int = 1


def kannel_conf(config: KannelConfig) -> str:
    """The whole kannel.conf for one run (module docstring)."""
    folder = config.folder
    groups = [
        ["group = core",
         f"admin-port = {config.admin_port}",
         "admin-interface = 127.0.0.1",
         f"admin-password = {_quoted(config.admin_password)}",
         f"status-password = {_quoted(config.admin_password)}",
         'admin-allow-ip = "127.0.0.1"',
         'admin-deny-ip = "*.*.*.*"',
         f"smsbox-port = {config.smsbox_port}",
         "smsbox-interface = 127.0.0.1",
         'box-allow-ip = "127.0.0.1"',
         'box-deny-ip = "*.*.*.*"',
         "store-type = file",
         f"store-location = {_quoted(folder / 'kannel.store')}",
         "dlr-storage = internal",
         f"log-file = {_quoted(folder / 'bearerbox.log')}",
         f"log-level = {config.log_level}"],
        ["group = smsc",
         "smsc = smpp",
         "smsc-id = bench",
         "host = 127.0.0.1",
         f"port = {config.smsc_port}",
         "transceiver-mode = true",
         'smsc-username = "kannel"',
         'smsc-password = "kannel"',
         'system-type = ""',
         f"max-pending-submits = {config.window}",
         "throughput = 0",
         f"log-file = {_quoted(folder / 'smsc.log')}",
         f"log-level = {config.log_level}"],
        ["group = smsbox",
         "bearerbox-host = 127.0.0.1",
         f"bearerbox-port = {config.smsbox_port}",
         f"sendsms-port = {config.sendsms_port}",
         "sendsms-interface = 127.0.0.1",
         f"log-file = {_quoted(folder / 'smsbox.log')}",
         f"log-level = {config.log_level}"],
        ["group = sendsms-user",
         f"username = {_quoted(config.user)}",
         f"password = {_quoted(config.password)}",
         "max-messages = 10",
         "concatenation = true"],
    ]
    return "# written by smsagg bench peers; every port on 127.0.0.1\n\n" + "\n\n".join(
        "\n".join(group) for group in groups) + "\n"


def smsc_links(status_xml: str) -> list[str]:
    """The status of each SMSC link in bearerbox's status.xml ("online 12s", ...)."""
    root = ElementTree.fromstring(status_xml)
    return [(smsc.findtext("status") or "") for smsc in root.iter("smsc")]


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with NO_PROXY.open(url, timeout=timeout) as reply:
            return reply.status, reply.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


class KannelPeer:
    """bearerbox and smsbox for one leg, in ``folder``."""

    name = "kannel"

    def __init__(self, folder: Path, processes: Processes, free_port, dlr_mask: int, receiver_port: int | None):
        self.folder = folder
        self.processes = processes
        self.free_port = free_port
        self.dlr_mask = dlr_mask
        self.receiver_port = receiver_port
        self.config: KannelConfig | None = None
        self.bearerbox = self.smsbox = None

    @property
    def callbacks_per_message(self) -> int:
        return {0: 0, DLR_MASK_FINAL: 1, DLR_MASK_BOTH: 2}[self.dlr_mask]

    def start(self, smsc_port: int, wait_port) -> None:
        self.config = config = KannelConfig(self.folder, smsc_port, self.free_port(), self.free_port(),
                                            self.free_port(), "admin-" + secrets.token_hex(6))
        conf = self.folder / "kannel.conf"
        conf.write_text(kannel_conf(config))
        self.bearerbox = self.processes.spawn("bearerbox", ["bearerbox", "-v", "4", str(conf)])
        wait_port(config.admin_port)
        wait_port(config.smsbox_port)
        self.smsbox = self.processes.spawn("smsbox", ["smsbox", "-v", "4", str(conf)])
        wait_port(config.sendsms_port)
        deadline = time.monotonic() + 60
        while not self._online():
            if time.monotonic() > deadline or self.bearerbox.poll() is not None:
                raise RuntimeError("Kannel's SMSC link never came online: "
                                   + self.processes.log_tail("bearerbox", 500) + self._smsc_log_tail())
            time.sleep(0.2)

    def _smsc_log_tail(self) -> str:
        log = self.folder / "smsc.log"
        return log.read_text(errors="replace")[-500:] if log.exists() else ""

    def _online(self) -> bool:
        status, body = _get(f"http://127.0.0.1:{self.config.admin_port}/status.xml?password="
                            + urllib.parse.quote(self.config.admin_password))
        try:
            links = smsc_links(body) if status == 200 else []
        except ElementTree.ParseError:
            return False
        return bool(links) and all(link.startswith("online") for link in links)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.sendsms_port}"

    def probe(self, message_id: str, recipient: str, sender: str) -> bool:
        query = urllib.parse.urlencode({"username": self.config.user, "password": self.config.password,
                                        "to": recipient, "from": sender, "text": f"{message_id} probe"})
        status, body = _get(f"{self.url}/cgi-bin/sendsms?{query}")
        return status == 202

    def lua_arguments(self, recipient: str, sender: str, length: int, tag: str) -> list[str]:
        prefix = suffix = ""
        if self.dlr_mask:
            prefix = urllib.parse.quote(f"http://127.0.0.1:{self.receiver_port}/kannel?message_id=", safe="")
            suffix = urllib.parse.quote("&message_state=%d", safe="")
        return ["kannel", self.config.user, self.config.password, recipient, sender, str(length), tag,
                str(self.dlr_mask), prefix, suffix]

    def cpu_processes(self) -> dict[str, list[int]]:
        return {"bearerbox": [self.bearerbox.pid], "smsbox": [self.smsbox.pid]}

    def stop(self) -> None:
        """smsbox first, then bearerbox (it unbinds from the SMSC and flushes its store)."""
        for box in (self.smsbox, self.bearerbox):
            if box is not None:
                self.processes.stop(box, timeout=40)
