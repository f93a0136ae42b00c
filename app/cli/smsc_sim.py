"""``smsagg smsc-sim``: the SMPP 3.4 SMSC simulator (``app.smpp.simulator``)."""

from __future__ import annotations

import click

from app.cli.common import settings
from app.smpp.simulator import ControlError, SimulatorConfig, inject_mo_via_control, run_simulator_forever


def _outcomes(value: str) -> dict[str, float]:
    try:
        return {name.strip().upper(): float(weight) for name, weight in
                (item.split("=", 1) for item in value.split(",") if item.strip())}
    except ValueError as exc:
        raise click.BadParameter("use NAME=WEIGHT,... e.g. DELIVRD=90,UNDELIV=10") from exc


def _credentials(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        system_id, sep, password = value.partition(":")
        if not sep or not system_id:
            raise click.BadParameter(f"{value!r}: use SYSTEM_ID:PASSWORD")
        pairs[system_id] = password
    return pairs


@click.group("smsc-sim", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=2775, show_default=True)
@click.option("--control-port", type=int, default=None, help="Control channel (default: port + 1).")
@click.option("--credential", "credentials", multiple=True, metavar="SYSTEM_ID:PASSWORD",
              help="Accepted bind credentials (repeatable; none = accept any).")
@click.option("--dr-delay", type=float, default=1.0, show_default=True, help="Seconds before a receipt.")
@click.option("--outcomes", default="DELIVRD=1", show_default=True, help="Receipt mix, e.g. DELIVRD=90,UNDELIV=10.")
@click.option("--throttle", type=float, default=0.0, help="Answer ESME_RTHROTTLED above N submit_sm/s (0 = off).")
@click.option("--slow-ms", type=float, default=0.0, help="Delay every submit_sm_resp by this many ms.")
@click.option("--drop-after", type=int, default=0, help="Close the connection after every N submits (0 = off).")
@click.option("--reject-prefix", default="", help="Refuse destinations with this prefix (see --reject-status).")
@click.option("--reject-status", default="0x0B", show_default=True, callback=lambda _c, _p, v: int(v, 0),
              help="The command_status --reject-prefix answers (0x hex or decimal; 0x0B: ESME_RINVDSTADR).")
@click.option("--id-format", type=click.Choice(["hex", "decimal", "padded-decimal"]), default="hex", show_default=True)
@click.option("--journal", default=None, metavar="FILE",
              help="Append every message received to FILE (a JSON line each, written before its submit_sm_resp).")
@click.pass_context
def smsc_sim(ctx, host, port, control_port, credentials, dr_delay, outcomes, throttle, slow_ms, drop_after,
             reject_prefix, reject_status, id_format, journal) -> None:
    """Run an SMPP 3.4 SMSC simulator (Ctrl-C stops it)."""
    if ctx.invoked_subcommand is not None:
        return
    config = SimulatorConfig(
        host=host, port=port, control_port=control_port, credentials=_credentials(credentials), dr_delay=dr_delay,
        outcome_weights=_outcomes(outcomes), throttle_per_second=throttle, response_delay_ms=slow_ms,
        drop_after_submits=drop_after, reject_destination_prefix=reject_prefix,
        reject_status=reject_status, id_format=id_format,
        journal_path=journal,
    )
    click.echo(f"SMSC simulator on {host}:{port} (control {config.resolved_control_port})")
    run_simulator_forever(config)


@smsc_sim.command("inject-mo")
@click.option("--from", "source", required=True, help="The handset's number.")
@click.option("--to", "destination", required=True, help="The shortcode or number it texted.")
@click.option("--text", required=True)
@click.option("--data-coding", type=click.Choice(["0", "3", "8"]), default=None)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--control-port", type=int, default=None,
              help="The simulator's control port (default: that of the simulator 'smsagg up' runs, "
                   "else SMSAGG_SMSC_SIM_PORT + 1).")
def inject_mo(source, destination, text, data_coding, host, control_port) -> None:
    """Make a running simulator send an MO (deliver_sm) to the bound gateway."""
    control_port = control_port or _default_control_port()
    try:
        parts = inject_mo_via_control(host, control_port, source, destination, text,
                                      int(data_coding) if data_coding else None)
    except (ControlError, OSError) as exc:
        raise click.ClickException(f"simulator at {host}:{control_port}: {exc}") from exc
    click.echo(f"MO injected in {parts} part(s)")


def _default_control_port() -> int:
    config = settings()
    gateway = config.running_gateway
    if gateway is not None and gateway.smsc_sim_control_port:
        return gateway.smsc_sim_control_port
    return config.smsc_sim_port + 1
