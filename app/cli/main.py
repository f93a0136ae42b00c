"""The ``smsagg`` command line: a stable contract other tools script against.

Extend it; never rename a command or an option.
"""

from __future__ import annotations

import click

from app.cli import bench, callbacks, manage, run
from app.cli.common import OperatorErrorsGroup
from app.cli.queues import queues
from app.cli.smsc_sim import smsc_sim
from app.cli.mmsc_sim import mmsc_sim
from app.bulk.cli import attach as attach_bulk
from app.console.cli import attach as attach_console
from app.gms.cli import cometd, gms
from app.api.cli import apikey
from app.health import health


@click.group(cls=OperatorErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """smsagg: an SMS aggregation gateway."""


for command in (*run.COMMANDS, *manage.COMMANDS, bench.bench, gms, cometd, smsc_sim, mmsc_sim, *callbacks.COMMANDS,
                queues, apikey, health):
    main.add_command(command)
attach_bulk(main)
attach_console(main)
