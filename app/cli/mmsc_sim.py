"""``smsagg mmsc-sim``: the MM7 MMSC simulator (``app.mm7.simulator``)."""

from __future__ import annotations

import mimetypes
from pathlib import Path

import click

from app.domain.mt_request import Attachment
from app.mm7.simulator import FINAL_OUTCOMES, ControlError, MmscConfig, inject_mo_via_control, run_mmsc_forever


def _outcomes(value: str) -> dict[str, float]:
    try:
        weights = {name.strip(): float(weight) for name, weight in
                   (item.split("=", 1) for item in value.split(",") if item.strip())}
    except ValueError as exc:
        raise click.BadParameter("use NAME=WEIGHT,... e.g. Retrieved=90,Rejected=10") from exc
    unknown = set(weights) - set(FINAL_OUTCOMES)
    if unknown:
        raise click.BadParameter(f"unknown outcome(s) {sorted(unknown)}; choose from {', '.join(FINAL_OUTCOMES)}")
    return weights


def _credentials(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        user, sep, password = value.partition(":")
        if not sep or not user:
            raise click.BadParameter(f"{value!r}: use USER:PASSWORD")
        pairs[user] = password
    return pairs


@click.group("mmsc-sim", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=2777, show_default=True)
@click.option("--credential", "credentials", multiple=True, metavar="USER:PASSWORD",
              help="HTTP Basic credentials accepted for submits (repeatable; none = accept any).")
@click.option("--vasp-url", help="Where delivery reports and MO go (the gateway's /carriers/<id>/mm7).")
@click.option("--vasp-user", help="HTTP Basic user for the VASP URL (the carrier id for smsagg).")
@click.option("--vasp-password", help="HTTP Basic password for the VASP URL (the carrier's webhook_token).")
@click.option("--dr-delay", type=float, default=1.0, show_default=True, help="Seconds before a delivery report.")
@click.option("--outcomes", default="Retrieved=1", show_default=True,
              help=f"MMStatus mix of the reports: {', '.join(FINAL_OUTCOMES)} weights.")
@click.option("--reject-prefix", default="", help="Answer 2002 (Address Error) for recipients with this prefix.")
@click.option("--status-code", type=int, default=1000, show_default=True,
              help="Answer every submit with this MM7 status (e.g. 4006); not 1xxx: nothing is stored.")
@click.option("--soap-fault", is_flag=True, help="Answer every submit with a SOAP fault (Server, 3000).")
@click.option("--malformed", is_flag=True, help="Answer every submit with HTTP 200 and a body that is no MM7.")
@click.option("--slow-ms", type=float, default=0.0, help="Delay every answer by this many ms.")
@click.pass_context
def mmsc_sim(ctx, host, port, credentials, vasp_url, vasp_user, vasp_password, dr_delay, outcomes, reject_prefix,
             status_code, soap_fault, malformed, slow_ms) -> None:
    """Run an MM7 MMSC simulator (Ctrl-C stops it)."""
    if ctx.invoked_subcommand is not None:
        return
    config = MmscConfig(
        host=host, port=port, credentials=_credentials(credentials), vasp_url=vasp_url, vasp_user=vasp_user,
        vasp_password=vasp_password, dr_delay=dr_delay, outcome_weights=_outcomes(outcomes),
        reject_destination_prefix=reject_prefix, status_code=status_code, soap_fault=soap_fault,
        malformed=malformed, response_delay_ms=slow_ms,
    )
    click.echo(f"MMSC simulator on http://{host}:{port}{config.path}; reports to {vasp_url or '(nowhere)'}")
    run_mmsc_forever(config)


def _attachment(path: str) -> Attachment:
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return Attachment(content_type, Path(path).read_bytes())


@mmsc_sim.command("inject-mo")
@click.option("--from", "sender", required=True, help="The handset's number.")
@click.option("--to", "recipient", required=True, help="The shortcode or number it sent to.")
@click.option("--text", default="", help="The MMS's text.")
@click.option("--attach", "files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A file to attach (repeatable; its type from its name).")
@click.option("--url", default="http://127.0.0.1:2777", show_default=True, help="The running simulator.")
def inject_mo(sender, recipient, text, files, url) -> None:
    """Make a running simulator send an MMS MO (DeliverReq) to the gateway."""
    if not text and not files:
        raise click.UsageError("give --text, --attach FILE, or both")
    try:
        status, accepted = inject_mo_via_control(url, sender, recipient, text, tuple(_attachment(f) for f in files))
    except (ControlError, OSError, ValueError) as exc:
        raise click.ClickException(f"simulator at {url}: {exc}") from exc
    click.echo(f"MO sent: the gateway answered {status}" + ("" if accepted else "; the simulator will send it again"))
