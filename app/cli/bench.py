"""``smsagg bench <name>``: benchmarks that print their figures and the ratio against
a baseline measured in the same run (the machine is shared and noisy)."""

from __future__ import annotations

import json

import click

from app.bench import auth, bulk, dr_leg, e2e, faults, ingress, rest, throttle
from app.cli import common

BENCHMARKS = {"ingress": ingress.run, "e2e": e2e.run, "bulk": bulk.run, "throttle": throttle.run,
              "dr-leg": dr_leg.run, "rest": rest.run}


@click.group()
def bench() -> None:
    """Run a benchmark and print its figures."""


def _benchmark_command(name: str) -> click.Command:
    @click.option("--seconds", type=float, default=10.0, show_default=True, help="Measured time per round.")
    @click.option("--concurrency", type=int, default=32, show_default=True, help="Client connections.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the figures, last.")
    def command(seconds, concurrency, as_json) -> None:
        figures = BENCHMARKS[name](seconds=seconds, concurrency=concurrency, echo=click.echo)
        if as_json:
            click.echo(json.dumps(figures))

    return click.command(name, help=f"Run the {name} benchmark and print its figures.")(command)


for _name in BENCHMARKS:
    bench.add_command(_benchmark_command(_name))


@bench.command("web", hidden=True)
@click.option("--port", type=int, required=True)
@click.option("--workers", type=int, default=None, help="Default SMSAGG_WEB_WORKERS.")
@click.option("--threads", type=int, default=None, help="Default SMSAGG_WEB_THREADS.")
def web(port, workers, threads) -> None:
    """The ingress with the baseline endpoint (app.bench.web), on 127.0.0.1: the server
    the ingress and REST benchmarks measure, never the production one."""
    from app.bench.web import create_bench_app
    from app.web.server import serve

    settings = common.settings()
    settings.require_redis_url()
    serve("127.0.0.1", port, server=settings.web_server, workers=workers or settings.web_workers,
          threads=threads or settings.web_threads, max_request_line=settings.max_request_line,
          factory=create_bench_app)


@bench.command("metrics")
@click.option("--submits", type=int, default=300, show_default=True, help="Submits per round.")
@click.option("--rounds", type=int, default=20, show_default=True, help="Rounds without, then with, the hooks.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the figures, last.")
def metrics_command(submits, rounds, as_json) -> None:
    """What the metrics hooks cost a submit, against the same submits without them."""
    from app.bench.metrics import run

    figures = run(submits, rounds, click.echo)
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("auth")
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Measured time per round.")
@click.option("--concurrency", type=int, default=16, show_default=True, help="The client's connections.")
@click.option("--rate", type=float, default=20.0, show_default=True, help="The attacker's wrong passwords per second.")
@click.option("--spread", is_flag=True, help="The attacker comes from a new IPv6 /64 for every submit.")
@click.option("--unguarded", is_flag=True, help="Also run it with the failure limits off and the KDF unbounded.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the figures, last.")
def auth_command(seconds, concurrency, rate, spread, unguarded, as_json) -> None:
    """A client's accepted submits/s alone and while an attacker sends wrong passwords,
    and the ratio (docs/security.md; target 0.90 or more)."""
    figures = auth.run(seconds=seconds, concurrency=concurrency, echo=click.echo, rate=rate, spread=spread,
                        unguarded=unguarded)
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("faults")
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Measured time per round.")
@click.option("--concurrency", type=int, default=32, show_default=True, help="Client connections.")
@click.option("--scenario", "scenarios", multiple=True, type=click.Choice([*faults.SCENARIOS, "durability"]),
              help="The scenarios to run (repeatable; default: all of them).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the figures, last.")
def faults_command(seconds, concurrency, scenarios, as_json) -> None:
    """Faults under load, one at a time and combined: accepted, reached the SMSC, reported,
    duplicates and time to recover (docs/delivery.md)."""
    figures = faults.run(seconds=seconds, concurrency=concurrency, echo=click.echo, scenarios=scenarios)
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("topology")
@click.option("--messages", type=int, default=3000, show_default=True, help="Backlog drained per throughput round.")
@click.option("--rounds", type=int, default=2, show_default=True,
              help="Throughput rounds per layout, in turn (the best of each counts).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the figures, last.")
def topology_command(messages, rounds, as_json) -> None:
    """The gateway on several hosts (network namespaces; root): a worker host killed under
    load, then MT throughput with one worker host and with two (deploy/README.md)."""
    from app.bench.topology import TopologyUnavailable, run

    try:
        figures = run(click.echo, count=messages, rounds=rounds)
    except TopologyUnavailable as exc:
        raise click.ClickException(f"the topology cannot run here: {exc}") from exc
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("peers")
@click.option("--seconds", type=int, default=20, show_default=True, help="Measured load, after the warm-up.")
@click.option("--warmup", type=int, default=3, show_default=True, help="Warm-up load (its backlog drains first).")
@click.option("--connections", type=int, default=64, show_default=True, help="wrk's keep-alive connections.")
@click.option("--dlr", is_flag=True, help="Ask for DRs: smsagg's both states against Kannel's dlr-mask 11.")
@click.option("--dlr-final-only", is_flag=True, help="Ask for DRs, Kannel final only (dlr-mask 3).")
@click.option("--dr-mask", type=click.Choice(["all", "final", "both"]), default="all", show_default=True,
              help="With DRs, smsagg's account --dr-mask; both: one smsagg leg of each, compared.")
@click.option("--db", "database", type=click.Choice(["sqlite", "postgres"]), default="sqlite", show_default=True,
              help="smsagg's database (postgres: a database of the run's own on 127.0.0.1:5432).")
@click.option("--only", type=click.Choice(["smsagg", "kannel"]), default=None, help="Measure one peer alone.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the figures, last.")
def peers(seconds, warmup, connections, dlr, dlr_final_only, dr_mask, database, only, as_json) -> None:
    """smsagg and Kannel under the same wrk load against the same SMSC, in one run."""
    from app.bench.peers.run import PeersError, PeersOptions, run

    if dr_mask != "all" and not (dlr or dlr_final_only):
        raise click.UsageError("--dr-mask needs --dlr or --dlr-final-only")
    options = PeersOptions(seconds=seconds, warmup=warmup, connections=connections, dlr=dlr,
                           dlr_final_only=dlr_final_only, dr_mask=dr_mask, database=database, only=only)
    try:
        figures = run(options, click.echo)
    except PeersError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(figures))
    if not figures["passed"]:
        raise SystemExit(1)
