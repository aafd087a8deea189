"""The `omnihub` command: serve, worker, db, managers, tokens, channels, maintenance.

One module per command group; this one holds the top-level group and hangs the
groups on it. What every command shares (settings, running a coroutine, one
transaction) is in `hub.cli.base`.
"""

from __future__ import annotations

import click

from hub.cli.channels import channels
from hub.cli.db import db
from hub.cli.maintenance import maintenance
from hub.cli.managers import managers
from hub.cli.serve import serve, worker
from hub.cli.tokens import tokens


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """omnihub: every client request from email, Telegram, web forms and calls in one place."""


for command in (serve, worker, db, managers, tokens, channels, maintenance):
    main.add_command(command)
