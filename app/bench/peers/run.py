"""Running ``smsagg bench peers``: the SMSC's self-test, then one leg per peer, then the
table (see the package docstring for what is measured and how)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from app.bench.harness import free_port, wait_for_port
from app.bench.peers import figures as fig
from app.bench.peers import kannel, smsc
from app.bench.peers.procs import (CpuMeter, Processes, cpu_seconds, descendants, host_busy_percent,
                                   host_cpu_ticks, is_loopback, listening_addresses, spent)
from app.bench.peers.smsagg import SmsaggPeer

LUA_SCRIPT = Path(__file__).with_name("send.lua")
RECIPIENT, SENDER = "12025550100", "12345"
RECEIPT_DELAY_S = 1.0  # as the reference harness: a receipt never outruns its submit_sm_resp
POLL_S = 0.25
QUIET_S = 2.0
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PeersError(RuntimeError):
    """The benchmark cannot run here (a tool missing, a peer that does not start)."""


@dataclass(frozen=True)
class PeersOptions:
    seconds: int = 20
    connections: int = 64
    threads: int = 1
    warmup: int = 3
    dlr: bool = False
    dlr_final_only: bool = False
    dr_mask: str = "all"
    """smsagg's account ``--dr-mask``: ``all``, ``final``, or ``both`` (a leg of each)."""
    database: str = "sqlite"
    only: str | None = None
    length: int = 120
    drain_limit: float = 180.0
    stall_s: float = 15.0
    selftest_s: float = 3.0

    @property
    def with_dlr(self) -> bool:
        return self.dlr or self.dlr_final_only

    @property
    def smsagg_masks(self) -> tuple[str, ...]:
        return ("all", "final") if self.dr_mask == "both" else (self.dr_mask,)

    @property
    def kannel_dlr_mask(self) -> int:
        if not self.with_dlr:
            return 0
        return kannel.DLR_MASK_FINAL if self.dlr_final_only else kannel.DLR_MASK_BOTH


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _tool_version(command: list[str], pattern: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else "unknown"


class Leg:
    """One peer under the load, with its own SMSC and (for DRs) receiver, in ``folder``."""

    def __init__(self, peer_name: str, options: PeersOptions, folder: Path, echo: Callable[[str], None],
                 dr_mask: str = "all"):
        self.peer_name = peer_name
        self.dr_mask = dr_mask
        self.options = options
        self.folder = folder
        self.echo = echo
        self.nonce = uuid.uuid4().hex[:6]
        self.processes = Processes(folder)
        self.callbacks_file = folder / "callbacks.tsv"
        self.notes: list[str] = []

    def say(self, text: str) -> None:
        self.echo(f"[{self.peer_name}] {text}")

    # --- the parts around the peer ---

    def _ask_smsc(self, path: str, timeout: float) -> dict:
        try:
            with NO_PROXY.open(f"http://127.0.0.1:{self.stats_port}{path}", timeout=timeout) as reply:
                return json.load(reply)
        except OSError as exc:
            raise PeersError(f"the SMSC stopped answering ({exc}); its log ends: "
                             f"{self.processes.log_tail('smsc', 500)!r}") from exc

    def smsc_stats(self) -> dict:
        return self._ask_smsc("/stats", timeout=10)

    def smsc_ids(self, prefix: str) -> dict[str, int]:
        return self._ask_smsc(f"/ids?prefix={prefix}", timeout=60)["ids"]

    def callback_lines(self, offset: int) -> tuple[list[str], int]:
        """Complete lines the receiver appended since ``offset``; the new offset."""
        if not self.callbacks_file.exists():
            return [], offset
        with open(self.callbacks_file, "rb") as f:
            f.seek(offset)
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]
        return complete.decode("utf-8", "replace").splitlines(keepends=True), offset + len(complete)

    def _start_around(self) -> None:
        dr_delay = RECEIPT_DELAY_S if self.options.with_dlr else 0.0
        smsc_port, self.stats_port = free_port(), free_port()
        self.smsc = self.processes.spawn("smsc", smsc.command(smsc_port, free_port(), self.stats_port, dr_delay))
        wait_for_port(smsc_port)
        wait_for_port(self.stats_port)
        self.smsc_port = smsc_port
        self.receiver = None
        self.receiver_port = None
        if self.options.with_dlr:
            self.receiver_port = free_port()
            self.receiver = self.processes.spawn("receiver", [sys.executable, "-m", "app.bench.receiver", "--port",
                                                              str(self.receiver_port), "--out",
                                                              str(self.callbacks_file)])
            wait_for_port(self.receiver_port)

    def _make_peer(self):
        if self.peer_name.startswith("smsagg"):
            return SmsaggPeer(self.folder, self.processes, free_port, database=self.options.database,
                              receiver_port=self.receiver_port, dr_mask=self.dr_mask)
        return kannel.KannelPeer(self.folder, self.processes, free_port, self.options.kannel_dlr_mask,
                                 self.receiver_port)

    # --- the steps ---

    def run(self) -> dict:
        with ExitStack() as stack:
            stack.callback(self.processes.stop_all)
            self._start_around()
            self.peer = peer = self._make_peer()
            if isinstance(peer, SmsaggPeer):
                stack.callback(peer.drop_database)
            stack.callback(self._stop_peer)
            started = time.monotonic()
            peer.start(self.smsc_port, wait_for_port)
            self._probe()
            self.say(f"up and delivering after {time.monotonic() - started:.1f} s; "
                     f"{self.smsc_stats()['binds']} SMPP bind(s) at the SMSC")
            self._check_loopback()
            if self.options.warmup:
                warm = self._wrk(self.options.warmup, f"w{self.nonce}")
                waited = self._settle()
                self.say(f"warm-up: {warm.ok:,} accepted in {warm.seconds:.1f} s; settled after {waited:.1f} s")
            return self._measure()

    def _stop_peer(self) -> None:
        if getattr(self, "peer", None) is not None and not getattr(self, "peer_stopped", False):
            self.peer_stopped = True
            self.peer.stop()

    def _probe(self) -> None:
        """One message end to end before any load."""
        message_id = f"p{self.nonce}-0"
        deadline = time.monotonic() + 60
        while not self.peer.probe(message_id, RECIPIENT, SENDER):
            if time.monotonic() > deadline:
                raise PeersError(f"{self.peer_name} never accepted the probe message")
            time.sleep(0.5)
        deadline = time.monotonic() + 90
        while self.smsc_stats()["distinct"] < 1:
            if time.monotonic() > deadline:
                raise PeersError(f"the probe message never reached the SMSC through {self.peer_name}")
            time.sleep(0.2)

    def _check_loopback(self) -> None:
        pids = {p.pid for p in self.processes.started}
        pids |= {d.pid for pid in list(pids) for d in descendants(pid)}
        wild = [a for a in listening_addresses(pids) if not is_loopback(a)]
        if wild:
            raise PeersError(f"{self.peer_name}: something listens beyond loopback: {wild}")

    def _wrk(self, seconds: int, tag: str) -> fig.WrkResult:
        options = self.options
        command = ["wrk", f"-t{options.threads}", f"-c{options.connections}", f"-d{seconds}s", "--timeout", "10s",
                   "-s", str(LUA_SCRIPT), self.peer.url, "--",
                   *self.peer.lua_arguments(RECIPIENT, SENDER, options.length, tag)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wrk_cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if done.returncode != 0:
            raise PeersError(f"wrk exited {done.returncode}: {done.stderr[-500:]}")
        return fig.parse_wrk(done.stdout)

    def _settle(self) -> float:
        """Wait until neither the SMSC nor the receiver has seen anything new for a while."""
        quiet_s = QUIET_S + (2 * RECEIPT_DELAY_S if self.options.with_dlr else 1.0)
        began = last_change = time.monotonic()
        offset = 0
        last = None
        while time.monotonic() - began < self.options.drain_limit:
            _lines, offset = self.callback_lines(offset)
            now = (self.smsc_stats()["messages"], offset)
            if now != last:
                last, last_change = now, time.monotonic()
            elif time.monotonic() - last_change >= quiet_s:
                break
            time.sleep(POLL_S)
        return time.monotonic() - began

    def _measure(self) -> dict:
        options, peer = self.options, self.peer
        tag = f"m{self.nonce}"
        groups = peer.cpu_processes()
        groups["smsc"] = [self.smsc.pid]
        if self.receiver is not None:
            groups["receiver"] = [self.receiver.pid]
        meter = CpuMeter(groups)
        tally = fig.CallbackTally(peer.name, tag) if options.with_dlr else None
        offset = self._skip_callbacks()
        smsc_start = fig.SmscCounts.from_stats(self.smsc_stats())
        cpu_start = meter.sample()
        self.say(f"load: {options.seconds} s, {options.connections} connections, {options.threads} wrk thread(s)")
        host_start = host_cpu_ticks()
        load_started = time.time()
        result = self._wrk(options.seconds, tag)
        load_ended = time.time()
        host_busy = host_busy_percent(host_start, host_cpu_ticks(), os.cpu_count() or 1)
        smsc_load_end = fig.SmscCounts.from_stats(self.smsc_stats())
        cpu_load_end = meter.sample()
        offset = self._tally(tally, offset)
        callbacks_load_end = tally.counts() if tally else None
        self.say(f"load done: {result.ok:,} accepted ({result.ok / result.seconds:,.0f}/s); "
                 f"{smsc_load_end.messages - smsc_start.messages:,} reached the SMSC during it; draining")
        samples = [(load_ended, cpu_load_end)]
        smsc_end, drained = self._drain(result, smsc_start, tally, offset, meter, samples)
        callbacks_end = tally.counts() if tally else None
        measured_until = max([smsc_end.last_at or load_ended, *(callbacks_end.last_at.values() if tally else [])])
        cpu_end = next((cpu for at, cpu in samples if at >= measured_until), samples[-1][1])
        ids = self.smsc_ids(tag)
        self._stop_peer()
        logged, submits = (peer.message_log(tag) if isinstance(peer, SmsaggPeer) else (None, None))
        once = fig.check_exactly_once(result.ok, options.connections, ids, logged)
        cpu_load = spent(cpu_start, cpu_load_end)
        cpu_total = spent(cpu_start, cpu_end)
        cpu_load["wrk"] = cpu_total["wrk"] = self.wrk_cpu_s
        observation = fig.LegObservation(
            peer=peer.name, wrk=result, load_started_at=load_started, load_ended_at=load_ended,
            smsc_start=smsc_start, smsc_load_end=smsc_load_end, smsc_end=smsc_end, cpu_load_s=cpu_load,
            cpu_total_s=cpu_total, measured_until=measured_until, callbacks_load_end=callbacks_load_end,
            callbacks_end=callbacks_end)
        figures = fig.leg_figures(observation)
        figures["drained"] = drained
        figures["host_busy_pct"] = round(host_busy, 1)
        figures["others_pct"] = round(max(0.0, host_busy - sum(figures["cpu_pct_during_load"].values())), 1)
        figures["exactly_once"] = {"passed": once.passed, "line": once.line(self.peer_name), "lost": once.lost,
                                   "duplicated": once.duplicated, "unexpected": once.unexpected}
        if submits is not None:
            figures["exactly_once"]["segment_submits"] = submits
            if submits != len(logged):
                figures["exactly_once"]["passed"] = False
                figures["exactly_once"]["line"] += f"; but {submits:,} segment submissions for {len(logged):,} messages"
        figures["callbacks_per_message"] = peer.callbacks_per_message
        if isinstance(peer, SmsaggPeer):
            figures["dr_mask"] = peer.dr_mask
        figures["notes"] = self.notes
        return figures

    def _skip_callbacks(self) -> int:
        return self.callbacks_file.stat().st_size if self.callbacks_file.exists() else 0

    def _tally(self, tally: fig.CallbackTally | None, offset: int) -> int:
        if tally is None:
            return offset
        lines, offset = self.callback_lines(offset)
        tally.add(lines)
        return offset

    def _drain(self, result, smsc_start, tally, offset, meter, samples) -> tuple[fig.SmscCounts, bool]:
        """Until every accepted message reached the SMSC (and, with DRs, got each of its
        callbacks) and nothing moved for ``QUIET_S``; or nothing moved for ``stall_s``;
        or ``drain_limit`` passed."""
        options = self.options
        began = last_change = time.monotonic()
        last = None
        while True:
            time.sleep(POLL_S)
            stats = self.smsc_stats()
            samples.append((time.time(), meter.sample()))
            offset = self._tally(tally, offset)
            counts = fig.SmscCounts.from_stats(stats)
            delivered = counts.distinct - smsc_start.distinct
            now = (counts.messages, offset)
            if now != last:
                last, last_change = now, time.monotonic()
            quiet = time.monotonic() - last_change
            complete = delivered >= result.ok and self._callbacks_complete(tally, delivered)
            if complete and quiet >= QUIET_S:
                return counts, True
            if quiet >= options.stall_s or time.monotonic() - began >= options.drain_limit:
                self.notes.append(f"the drain stopped after {time.monotonic() - began:.0f} s "
                                  f"({'stalled' if quiet >= options.stall_s else 'time limit'})")
                return counts, False

    def _callbacks_complete(self, tally: fig.CallbackTally | None, delivered: int) -> bool:
        if tally is None:
            return True
        counts = tally.counts()
        if counts.unique.get("final", 0) < delivered:
            return False
        return self.peer.callbacks_per_message < 2 or counts.unique.get("ack", 0) >= delivered


def _stop_on_sigterm(_signum, _frame) -> None:
    raise KeyboardInterrupt("SIGTERM")


FINAL_LEG = "smsagg-final"
"""The second smsagg leg of ``--dr-mask both``: the same setup with ``--dr-mask final``."""


def _legs(options: PeersOptions, echo) -> list[tuple[str, str]]:
    """(leg name, smsagg's DR mask) in the order they run."""
    wanted = [options.only] if options.only else ["smsagg", "kannel"]
    if "kannel" in wanted and not kannel.installed():
        if options.only == "kannel":
            raise PeersError("Kannel is not installed (Debian: apt install kannel kannel-extras)")
        echo("Kannel is not installed (Debian: apt install kannel kannel-extras): smsagg alone, no ratio")
        wanted.remove("kannel")
    legs = []
    for name in wanted:
        if name == "smsagg":
            first, *more = options.smsagg_masks
            legs.append((name, first))
            legs += [(FINAL_LEG, mask) for mask in more]
        else:
            legs.append((name, "all"))
    return legs


def run(options: PeersOptions, echo: Callable[[str], None]) -> dict:
    """Both legs and the report; ``result["passed"]`` is False when a message was lost
    or submitted twice."""
    if not wrk_available():
        raise PeersError("wrk is not installed (Debian: apt install wrk); smsagg bench peers needs it")
    legs = _legs(options, echo)
    cores = len(os.sched_getaffinity(0))
    mode = ("DRs, Kannel final only (dlr-mask 3)" if options.dlr_final_only else
            "DRs, both states (Kannel dlr-mask 11)" if options.dlr else "no DRs")
    if options.with_dlr:
        mode += f", smsagg --dr-mask {' and '.join(options.smsagg_masks)}"
    echo(f"smsagg bench peers: {options.seconds} s of load after {options.warmup} s of warm-up, "
         f"{options.connections} connections, {options.threads} wrk thread(s), {mode}, {options.database}, "
         f"{cores} cores, {time.strftime('%Y-%m-%d %H:%M')}")
    capacity = [smsc.measure_capacity(options.selftest_s, receipts=False, free_port=free_port, cpu_seconds=cpu_seconds)]
    if options.with_dlr:
        capacity.append(smsc.measure_capacity(options.selftest_s, receipts=True, free_port=free_port,
                                              cpu_seconds=cpu_seconds))
    for one in capacity:
        echo(one.describe())
    results: dict[str, dict] = {}
    folder = Path(tempfile.mkdtemp(prefix="smsagg-bench-peers-"))
    keep = False
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)  # so every started process is stopped
    try:
        for name, dr_mask in legs:
            leg_folder = folder / name
            leg_folder.mkdir()
            try:
                results[name] = Leg(name, options, leg_folder, echo, dr_mask).run()
            except Exception:
                keep = True
                echo(f"[{name}] failed; its logs are kept in {leg_folder}")
                raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return report(options, results, capacity, cores, echo)


def report(options: PeersOptions, results: dict[str, dict], capacity, cores: int, echo) -> dict:
    smsagg, kannel_figures = results.get("smsagg"), results.get("kannel")
    final_only = results.get(FINAL_LEG)
    for line in fig.format_table(smsagg, kannel_figures):
        echo(line)
    for line in fig.format_targets(smsagg, kannel_figures, options.dlr_final_only):
        echo(line)
    if final_only is not None:
        echo("smsagg with --dr-mask final (one callback per message) against --dr-mask all, same run:")
        for line in fig.format_table(final_only, smsagg, names=("final", "all")):
            echo(line)
        if kannel_figures:
            echo("smsagg with --dr-mask final against Kannel:")
            for line in fig.format_table(final_only, kannel_figures):
                echo(line)
        for line in fig.format_targets(final_only, kannel_figures, options.dlr_final_only):
            echo(line)
    for name, figures in results.items():
        echo(figures["exactly_once"]["line"])
        for note in figures["notes"]:
            echo(f"note ({name}): {note}")
    budget = None
    if smsagg is not None:
        budget = fig.stage_budget(kannel_figures, smsagg["callbacks_per_message"]) if kannel_figures else None
        for line in fig.format_budget(budget, fig.stage_costs(smsagg.get("cpu_ms_per_message", {}))):
            echo(line)
    for name, figures in results.items():
        per = figures.get("cpu_ms_per_message") or {}
        echo(f"{name} CPU per message, load + drain (ms): "
             + ", ".join(f"{p} {v:.3f}" for p, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.0005))
    passed = all(f["exactly_once"]["passed"] for f in results.values())
    return {
        "benchmark": "peers",
        "passed": passed,
        "options": {"seconds": options.seconds, "connections": options.connections, "threads": options.threads,
                    "warmup": options.warmup, "dlr": options.dlr, "dlr_final_only": options.dlr_final_only,
                    "db": options.database, "kannel_dlr_mask": options.kannel_dlr_mask,
                    "dr_mask": options.dr_mask},
        "smsc_selftest": [vars(c) | {"one_core_per_s": round(c.one_core_per_s)} for c in capacity],
        "smsagg": smsagg,
        "kannel": kannel_figures,
        "smsagg_final": final_only,
        "ratios": {k: v for k, v in _ratios(smsagg, kannel_figures).items() if v is not None},
        "ratios_final_to_all": {k: v for k, v in _ratios(final_only, smsagg).items() if v is not None},
        "ratios_final_to_kannel": {k: v for k, v in _ratios(final_only, kannel_figures).items() if v is not None},
        "budget": None if budget is None else {
            "mode": budget.mode, "target_per_s": round(budget.target_per_s, 1),
            "kannel_ms": round(budget.kannel_ms, 4), "kannel_harness_ms": round(budget.kannel_harness_ms, 4),
            "harness_ms": round(budget.harness_ms, 4), "allowance_ms": round(budget.allowance_ms, 4),
            "stages_ms": {k: round(v, 4) for k, v in budget.stages.items()},
            "measured_ms": {k: round(v, 4) for k, v in fig.stage_costs(smsagg["cpu_ms_per_message"]).items()}},
        "versions": _versions(bool(kannel_figures)),
        "cores": cores,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _ratios(smsagg: dict | None, kannel_figures: dict | None) -> dict:
    if not smsagg or not kannel_figures:
        return {}
    pairs = {"http_accepted_per_s": ("http_accepted_per_s",), "sustained_per_s": ("sustained_per_s",),
             "smsc_submit_per_s_during_load": ("smsc_submit_per_s_during_load",),
             "latency_p99_ms": ("latency_ms", "p99"),
             "final_per_s_incl_drain": ("dr", "final_per_s_incl_drain")}
    out = {}
    for name, path in pairs.items():
        ours, theirs = fig.lookup(smsagg, *path), fig.lookup(kannel_figures, *path)
        out[name] = round(ours / theirs, 3) if isinstance(ours, (int, float)) and theirs else None
    return out


def _versions(with_kannel: bool) -> dict:
    versions = {"smsagg": importlib.metadata.version("smsagg"), "python": sys.version.split()[0],
                "wrk": _tool_version(["wrk", "--version"], r"wrk (\S+)")}
    if with_kannel:
        versions["kannel"] = kannel.version()
    return versions
