"""The ``deskhand-console`` commands, one module per group, and what they share.

The groups: ``account`` (login, logout, whoami, passwd, totp), ``tickets`` (ticket, sla),
``sessions`` (session, requests, pickup), ``remote`` (control, snapshot), ``files`` (send,
fetch, transfers, cancel) and ``audit``. Each offers its commands as
:class:`~tech_console.commands.command.Command` values; :mod:`tech_console.cli` puts them
on one parser. What several groups share has one home each: ``arguments`` (argparse types),
``output`` (printing), ``context`` (the resolved broker, token and credentials file),
``exit_codes`` (which failure ends a command with which status), ``session_text`` (how a
session reads) and ``transfer_bars`` (progress bars on stderr).
"""
