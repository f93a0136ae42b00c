"""The figures of ``smsagg bench peers``: pure arithmetic over what one leg observed
(no I/O, no clock: every time is passed in as an epoch), the exactly-once check, the
per-stage CPU budget and the printed table.

A leg is one peer (smsagg or Kannel) under the load: wrk's answers, the SMSC's counters
at the load's start, at its end and once the backlog drained, the DR callbacks the
receiver counted at those moments, and the CPU seconds of each process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from app.domain.states import FINAL_STATES, MessageState

WRK_LINE = re.compile(r"^WRK_JSON (\{.*\})\s*$", re.MULTILINE)

# What a DR callback's message_state means, per peer. smsagg sends the seed's states
# (6 when the SMSC acknowledged the message, then the final one); Kannel's dlr-url gets
# its %d: 1 delivered, 2 failed (final), 8 SMSC acknowledged, 16 SMSC rejected.
FINAL_CALLBACK_STATES = {"smsagg": frozenset(str(int(s)) for s in FINAL_STATES), "kannel": frozenset({"1", "2", "16"})}
ACK_CALLBACK_STATES = {"smsagg": frozenset({str(int(MessageState.ACCEPTED))}), "kannel": frozenset({"8"})}


@dataclass(frozen=True)
class WrkResult:
    """The WRK_JSON line printed by ``send.lua``."""

    accepted: int
    queued: int
    refused: int
    refusals: dict[str, int]
    requests: int
    seconds: float
    errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def ok(self) -> int:
        """Answers that mean "the gateway has it": accepted, or (Kannel) queued."""
        return self.accepted + self.queued


def parse_wrk(output: str) -> WrkResult:
    """The last WRK_JSON line of wrk's output; ValueError when there is none."""
    found = WRK_LINE.findall(output)
    if not found:
        raise ValueError(f"wrk printed no WRK_JSON line: {output[-500:]!r}")
    doc = json.loads(found[-1])
    return WrkResult(accepted=doc["accepted"], queued=doc["queued"], refused=doc["refused"],
                     refusals=dict(doc["refusals"]), requests=doc["requests"], seconds=doc["duration_us"] / 1e6,
                     errors={k: v for k, v in doc["errors"].items() if v}, latency_ms=dict(doc["latency_ms"]))


@dataclass(frozen=True)
class SmscCounts:
    """The SMSC's counters at one moment (``GET /stats``, see ``smsc.py``)."""

    messages: int
    distinct: int
    duplicated: int
    last_at: float | None
    per_second: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_stats(cls, doc: Mapping) -> SmscCounts:
        return cls(doc["messages"], doc["distinct"], doc["duplicated"], doc["last_at"],
                   {int(second): n for second, n in doc["per_second"]})


@dataclass(frozen=True)
class CallbackCounts:
    """DR callbacks of the load's messages, by kind ("final", "ack", "other")."""

    total: dict[str, int] = field(default_factory=dict)
    unique: dict[str, int] = field(default_factory=dict)
    last_at: dict[str, float] = field(default_factory=dict)

    @property
    def all(self) -> int:
        return sum(self.total.values())

    @property
    def duplicates(self) -> int:
        return self.all - sum(self.unique.values())


def callback_kind(peer: str, state: str) -> str:
    if state in FINAL_CALLBACK_STATES[peer]:
        return "final"
    if state in ACK_CALLBACK_STATES[peer]:
        return "ack"
    return "other"


def parse_callback_line(line: str) -> tuple[float, str, str, str] | None:
    """``<epoch>\\t<path>\\t<message_id>\\t<message_state>`` as ``app.bench.receiver``
    writes it; None for a line that is not one (e.g. cut short)."""
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 4 or not line.endswith("\n"):
        return None
    try:
        return float(parts[0]), parts[1], parts[2], parts[3]
    except ValueError:
        return None


class CallbackTally:
    """Counts callback lines of the ids starting with ``prefix``, per kind."""

    def __init__(self, peer: str, prefix: str):
        self.peer = peer
        self.prefix = prefix
        self._total: dict[str, int] = {}
        self._seen: dict[str, set[str]] = {}
        self._last_at: dict[str, float] = {}

    def add(self, lines: Iterable[str]) -> None:
        for line in lines:
            parsed = parse_callback_line(line)
            if parsed is None or not parsed[2].startswith(self.prefix):
                continue
            at, _path, message_id, state = parsed
            kind = callback_kind(self.peer, state)
            self._total[kind] = self._total.get(kind, 0) + 1
            self._seen.setdefault(kind, set()).add(message_id)
            self._last_at[kind] = max(at, self._last_at.get(kind, at))

    def counts(self) -> CallbackCounts:
        return CallbackCounts(dict(self._total), {k: len(v) for k, v in self._seen.items()}, dict(self._last_at))


@dataclass(frozen=True)
class ExactlyOnce:
    """Every accepted message reached the SMSC exactly once."""

    accepted: int
    at_smsc: int
    lost: int
    duplicated: int
    unexpected: int
    in_message_log: int | None
    detail: str

    @property
    def passed(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected)

    def line(self, peer: str) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"exactly once, {peer}: {verdict}: {self.detail}"


def check_exactly_once(accepted: int, in_flight: int, smsc_ids: Mapping[str, int],
                       logged_ids: set[str] | None = None) -> ExactlyOnce:
    """``accepted``: what wrk counted as accepted; the requests in flight when wrk stopped
    (at most ``in_flight``, its connections) may have been accepted too, uncounted.
    ``smsc_ids``: id -> how often it reached the SMSC. ``logged_ids``: the ids the
    gateway's message log holds as accepted (smsagg), which are then the exact expectation."""
    at_smsc = set(smsc_ids)
    duplicated = sorted(i for i, n in smsc_ids.items() if n > 1)
    if logged_ids is None:
        lost_ids, unexpected_ids = [], []
        lost = max(0, accepted - len(at_smsc))
        unexpected = max(0, len(at_smsc) - accepted - in_flight)
        expected = f"{accepted:,} accepted (counted by wrk; up to {in_flight} more were in flight when it stopped)"
    else:
        lost_ids, unexpected_ids = sorted(logged_ids - at_smsc), sorted(at_smsc - logged_ids)
        lost = len(lost_ids) + max(0, accepted - len(logged_ids))  # wrk saw acceptances the log lacks
        unexpected = len(unexpected_ids)
        expected = f"{len(logged_ids):,} accepted in the message log ({accepted:,} counted by wrk)"
    detail = (f"{expected}; {len(at_smsc):,} distinct at the SMSC: {lost:,} missing, "
              f"{len(duplicated):,} more than once, {unexpected:,} unexpected")
    examples = (lost_ids + duplicated + unexpected_ids)[:3]
    if examples:
        detail += f" (e.g. {', '.join(examples)})"
    return ExactlyOnce(accepted, len(at_smsc), lost, len(duplicated), unexpected,
                       None if logged_ids is None else len(logged_ids), detail)


def zero_second_share(per_second: Mapping[int, int], start: float, last_at: float | None) -> float | None:
    """Of the whole seconds from ``start`` to the last submit_sm (messages were queued
    all along: the load was still arriving, or the backlog not yet drained), the share
    in which the SMSC received nothing."""
    if last_at is None:
        return None
    seconds = range(int(start) + 1, int(last_at))
    if not seconds:
        return 0.0
    return sum(1 for s in seconds if not per_second.get(s)) / len(seconds)


def _rate(count: float, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


@dataclass(frozen=True)
class LegObservation:
    """What one leg saw; every time an epoch."""

    peer: str
    wrk: WrkResult
    load_started_at: float
    load_ended_at: float
    smsc_start: SmscCounts
    smsc_load_end: SmscCounts
    smsc_end: SmscCounts
    cpu_load_s: dict[str, float]
    cpu_total_s: dict[str, float]
    measured_until: float
    callbacks_load_end: CallbackCounts | None = None
    callbacks_end: CallbackCounts | None = None


def leg_figures(obs: LegObservation) -> dict:
    """The figures of one leg, as printed and as ``--json`` carries them."""
    load_s = obs.wrk.seconds
    delivered = obs.smsc_end.distinct - obs.smsc_start.distinct
    last_at = obs.smsc_end.last_at
    drain_s = max(0.0, last_at - obs.load_ended_at) if last_at and delivered else 0.0
    wall = obs.load_ended_at - obs.load_started_at
    total_wall = obs.measured_until - obs.load_started_at
    cpu_pct = {p: round(100 * s / wall, 1) for p, s in obs.cpu_load_s.items()} if wall > 0 else {}
    per_message = {p: round(1000 * s / delivered, 4) for p, s in obs.cpu_total_s.items()} if delivered else {}
    peer_cpu_s = sum(s for p, s in obs.cpu_total_s.items() if p not in HARNESS_PROCESSES)
    zero_share = zero_second_share(obs.smsc_end.per_second, obs.load_started_at, last_at)
    figures = {
        "peer": obs.peer,
        "accepted": obs.wrk.ok,
        "http_refused": obs.wrk.refused,
        "http_refusals": obs.wrk.refusals,
        "http_errors": obs.wrk.errors,
        "load_s": round(load_s, 2),
        "http_accepted_per_s": _round(_rate(obs.wrk.ok, load_s)),
        "smsc_submit_per_s_during_load": _round(_rate(obs.smsc_load_end.messages - obs.smsc_start.messages, load_s)),
        "delivered": delivered,
        "drain_s": round(drain_s, 2),
        "sustained_per_s": _round(_rate(delivered, load_s + drain_s)),
        "latency_ms": obs.wrk.latency_ms,
        "zero_submit_seconds_share": _round(zero_share, 3),
        "cpu_pct_during_load": cpu_pct,
        "cpu_ms_per_message": per_message,
        "peer_cpu_ms_per_message": round(1000 * peer_cpu_s / delivered, 4) if delivered else None,
        "measured_s": round(total_wall, 2),
    }
    if obs.callbacks_end is not None:
        figures["dr"] = dr_figures(obs, load_s, delivered)
    return figures


def dr_figures(obs: LegObservation, load_s: float, delivered: int) -> dict:
    end, at_load_end = obs.callbacks_end, obs.callbacks_load_end or CallbackCounts()
    final = end.unique.get("final", 0)
    final_drain = max(0.0, end.last_at["final"] - obs.load_ended_at) if final else 0.0
    last_any = max(end.last_at.values(), default=obs.load_ended_at)
    all_drain = max(0.0, last_any - obs.load_ended_at)
    return {
        "final_callbacks": final,
        "final_per_s_during_load": _round(_rate(at_load_end.unique.get("final", 0), load_s)),
        "final_per_s_incl_drain": _round(_rate(final, load_s + final_drain)),
        "final_drain_s": round(final_drain, 2),
        "ack_callbacks": end.unique.get("ack", 0),
        "callbacks_all": end.all,
        "callbacks_all_per_s_incl_drain": _round(_rate(end.all, load_s + all_drain)),
        "other_callbacks": end.total.get("other", 0),
        "duplicates": end.duplicates,
        "missing_final": max(0, delivered - final),
    }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# --- the per-stage CPU budget (docs/performance.md) ---

TARGET_SHARE_OF_KANNEL = {"mt": 0.6, "dr": 0.8}
"""smsagg's targets against Kannel in the same run: end to end sustained (no DRs), and
final DR callbacks per second incl. the drain (with DRs)."""

STAGE_SHARES = {
    "mt": {"ingress": 0.50, "MT batch": 0.30, "receipt": 0.0, "callbacks": 0.0, "Redis": 0.12, "other": 0.08},
    "dr": {"ingress": 0.24, "MT batch": 0.14, "receipt": 0.16, "callbacks": 0.34, "Redis": 0.08, "other": 0.04},
}
"""How the CPU allowance per message is split between smsagg's stages (docs/performance.md
says why). "callbacks" covers both callbacks of a message (state 6 and the final one)."""

STAGE_PROCESSES = {"ingress": ("web",), "MT batch": ("worker-bulk",), "receipt": ("worker-inbound",),
                   "callbacks": ("worker-callbacks",), "Redis": ("redis",), "PostgreSQL": ("postgres",),
                   "other": ("worker-interactive", "beat", "cometd", "smsagg-up", "other")}
"""The PostgreSQL server's backends (``--db postgres``) have no share of their own: the
budget is for smsagg as it ships, on SQLite, whose work is inside the workers."""
HARNESS_PROCESSES = ("smsc", "receiver", "wrk")


@dataclass(frozen=True)
class Budget:
    """smsagg's CPU allowance per message, whole and per stage (docs/performance.md)."""

    mode: str
    kannel_per_s: float
    kannel_ms: float
    kannel_harness_ms: float
    harness_ms: float
    allowance_ms: float
    stages: dict[str, float]
    basis: str

    @property
    def share(self) -> float:
        return TARGET_SHARE_OF_KANNEL[self.mode]

    @property
    def target_per_s(self) -> float:
        return self.share * self.kannel_per_s

    def describe(self) -> str:
        return (f"budget ({self.mode}): target {self.share} x {self.basis} {self.kannel_per_s:,.0f} = "
                f"{self.target_per_s:,.0f}/s with the CPU Kannel had; Kannel spent {self.kannel_ms:.3f} ms per "
                f"message, the harness {self.kannel_harness_ms:.3f} ms with it and {self.harness_ms:.3f} ms with "
                f"smsagg: smsagg may spend ({self.kannel_ms:.3f} + {self.kannel_harness_ms:.3f}) / {self.share} - "
                f"{self.harness_ms:.3f} = {self.allowance_ms:.3f} ms per message")


KANNEL_PROCESSES = ("bearerbox", "smsbox")


def stage_budget(kannel: dict, smsagg_callbacks_per_message: int) -> Budget | None:
    """The per-stage budget from Kannel's figures of the same run (None when they lack
    what it needs). Kannel's leg reached its rate spending its CPU per message (its
    boxes plus the harness: SMSC, receiver, wrk); with the same CPU, smsagg reaches
    ``share`` of that rate if its boxes plus the harness spend at most 1/``share`` as
    much. The harness's cost with smsagg is Kannel's leg's cost per message for the
    SMSC and wrk, and per callback for the receiver, times smsagg's callbacks per
    message."""
    mode = "dr" if "dr" in kannel else "mt"
    if mode == "dr":
        rate, basis = kannel["dr"]["final_per_s_incl_drain"], "Kannel's final DR callbacks/s incl. drain"
    else:
        rate, basis = kannel["sustained_per_s"], "Kannel's end-to-end msg/s"
    per_message = kannel.get("cpu_ms_per_message") or {}
    if not rate or not all(p in per_message for p in KANNEL_PROCESSES):
        return None
    kannel_ms = sum(per_message[p] for p in KANNEL_PROCESSES)
    kannel_harness = sum(per_message.get(p, 0.0) for p in HARNESS_PROCESSES)
    harness = per_message.get("smsc", 0.0) + per_message.get("wrk", 0.0)
    if mode == "dr":
        kannel_callbacks = kannel["dr"]["callbacks_all"] / max(1, kannel["delivered"])
        per_callback = per_message.get("receiver", 0.0) / kannel_callbacks if kannel_callbacks else 0.0
        harness += per_callback * smsagg_callbacks_per_message
    allowance = (kannel_ms + kannel_harness) / TARGET_SHARE_OF_KANNEL[mode] - harness
    stages = {stage: share * allowance for stage, share in STAGE_SHARES[mode].items() if share}
    return Budget(mode, rate, kannel_ms, kannel_harness, harness, allowance, stages, basis)


def stage_costs(cpu_ms_per_message: Mapping[str, float]) -> dict[str, float]:
    """smsagg's measured CPU ms per message, per stage (its processes summed)."""
    return {stage: sum(cpu_ms_per_message.get(p, 0.0) for p in processes)
            for stage, processes in STAGE_PROCESSES.items()}


# --- the table ---

def _number(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def _ratio(ours, theirs) -> str:
    if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)) or not theirs:
        return "-"
    return f"{ours / theirs:.2f}"


def lookup(figures: dict | None, *path):
    value = figures
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


ROWS = [
    ("HTTP accepted/s during the load", ("http_accepted_per_s",), 0),
    ("submit_sm/s at the SMSC during the load", ("smsc_submit_per_s_during_load",), 0),
    ("drain after the load, s", ("drain_s",), 2),
    ("end to end sustained, msg/s (incl. drain)", ("sustained_per_s",), 0),
    ("HTTP latency p50, ms", ("latency_ms", "p50"), 1),
    ("HTTP latency p99, ms", ("latency_ms", "p99"), 1),
    ("HTTP latency max, ms", ("latency_ms", "max"), 1),
    ("seconds with 0 submit_sm while queued, %", ("zero_submit_seconds_pct",), 1),
    ("CPU per message, the peer's processes, ms", ("peer_cpu_ms_per_message",), 3),
    ("host CPU busy during the load, % (200 = all)", ("host_busy_pct",), 0),
    ("  of it, processes not of this leg, %", ("others_pct",), 0),
]
DR_ROWS = [
    ("final DR callbacks/s during the load", ("dr", "final_per_s_during_load"), 0),
    ("final DR callbacks/s incl. drain", ("dr", "final_per_s_incl_drain"), 0),
    ("DR callbacks sent, every kind", ("dr", "callbacks_all"), 0),
    ("DR callbacks sent/s, every kind, incl. drain", ("dr", "callbacks_all_per_s_incl_drain"), 0),
    ("duplicate DR callbacks", ("dr", "duplicates"), 0),
    ("final DR callbacks missing", ("dr", "missing_final"), 0),
]


def format_table(smsagg: dict | None, kannel: dict | None, names: tuple[str, str] = ("smsagg", "Kannel")) -> list[str]:
    """One line per figure: smsagg, Kannel and smsagg/Kannel; then CPU% per process.
    ``names`` heads the two columns when the pair is another one (smsagg's final-only
    leg against its every-state leg)."""
    for figures in (smsagg, kannel):
        if figures and figures.get("zero_submit_seconds_share") is not None:
            figures["zero_submit_seconds_pct"] = round(100 * figures["zero_submit_seconds_share"], 1)
    width = 44
    ours_name, theirs_name = names
    lines = [f"{'figure':<{width}} {ours_name:>12} {theirs_name:>12} {f'{ours_name}/{theirs_name}':>14}"]
    rows = ROWS + (DR_ROWS if lookup(smsagg, "dr") or lookup(kannel, "dr") else [])
    for label, path, digits in rows:
        ours, theirs = lookup(smsagg, *path), lookup(kannel, *path)
        lines.append(f"{label:<{width}} {_number(ours, digits):>12} {_number(theirs, digits):>12} "
                     f"{_ratio(ours, theirs):>14}")
    lines.append("CPU % of one core during the load (200 = both cores):")
    for name, figures in ((ours_name, smsagg), (theirs_name, kannel)):
        cpu = lookup(figures, "cpu_pct_during_load")
        if cpu:
            busiest = sorted(cpu.items(), key=lambda kv: -kv[1])
            lines.append(f"  {name}: " + ", ".join(f"{p} {v:.0f}" for p, v in busiest))
    return lines


def format_budget(budget: Budget | None, measured: Mapping[str, float]) -> list[str]:
    """smsagg's CPU ms per message per stage next to the budget (when there is one)."""
    lines = ["smsagg CPU per message, load + drain (ms):"]
    if budget is not None:
        lines.append("  " + budget.describe())
    lines.append(f"  {'stage':<12} {'measured':>9} {'budget':>9} {'measured/budget':>16}")
    for stage, cost in measured.items():
        if stage == "PostgreSQL" and not cost:
            continue
        allowed = budget.stages.get(stage) if budget else None
        ratio = f"{cost / allowed:.2f}" if allowed else "-"
        lines.append(f"  {stage:<12} {cost:>9.3f} {_number(allowed, 3) if allowed else '-':>9} {ratio:>16}")
    total = sum(measured.values())
    lines.append(f"  {'all stages':<12} {total:>9.3f} {_number(budget.allowance_ms, 3) if budget else '-':>9} "
                 f"{(f'{total / budget.allowance_ms:.2f}' if budget and budget.allowance_ms > 0 else '-'):>16}")
    return lines


def format_targets(smsagg: dict | None, kannel: dict | None, final_only: bool) -> list[str]:
    """The issue's targets, each with this run's value and whether it was met. The DR
    target is Kannel's final callbacks only, so it is judged in ``--dlr-final-only`` runs."""
    if not smsagg:
        return []
    checks = []
    with_dr = "dr" in smsagg
    if kannel and not with_dr:
        checks.append(("HTTP accepted/s >= 0.6 x Kannel", "http_accepted_per_s", 0.6))
        checks.append(("end to end sustained >= 0.6 x Kannel", "sustained_per_s", 0.6))
    if kannel and with_dr and final_only:
        checks.append(("final DR callbacks/s incl. drain >= 0.8 x Kannel", ("dr", "final_per_s_incl_drain"), 0.8))
    lines = ["targets:"]
    for label, path, share in checks:
        path = path if isinstance(path, tuple) else (path,)
        ours, theirs = lookup(smsagg, *path), lookup(kannel, *path)
        ratio = ours / theirs if ours is not None and theirs else 0.0
        lines.append(f"  {label}: {ratio:.2f} x, {'met' if ratio >= share else 'not met'}")
    p99 = lookup(smsagg, "latency_ms", "p99")
    lines.append(f"  HTTP p99 < 100 ms: {_number(p99, 1)} ms, {'met' if p99 is not None and p99 < 100 else 'not met'}")
    return lines

