"""``smsagg gms ...`` commands."""

import click


@click.group()
def gms() -> None:
    """Mobile services: apps, resource groups."""
