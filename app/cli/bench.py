"""``smsagg bench <name>``: benchmarks that print their figures and the ratio against
a baseline measured in the same run (the machine is shared and noisy)."""

from __future__ import annotations

import json

import click

from app.bench import bulk, dr_leg, e2e, ingress, rest, throttle

BENCHMARKS = {"ingress": ingress.run, "e2e": e2e.run, "bulk": bulk.run, "throttle": throttle.run,
              "dr-leg": dr_leg.run, "rest": rest.run}


@click.command()
@click.argument("name", type=click.Choice(sorted(BENCHMARKS)))
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Measured time per round.")
@click.option("--concurrency", type=int, default=32, show_default=True, help="Client connections.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the figures, last.")
def bench(name, seconds, concurrency, as_json) -> None:
    """Run a benchmark and print its figures."""
    figures = BENCHMARKS[name](seconds=seconds, concurrency=concurrency, echo=click.echo)
    if as_json:
        click.echo(json.dumps(figures))
