"""The ``p2pshare`` command line.

The only package that configures logging and turns errors into exit codes:
every :class:`~p2pshare.errors.P2PShareError` becomes one line on stderr and
its documented exit code (see ``errors.py`` and the README); a traceback is
shown only with ``--debug``. Standard output carries only results (links,
listings, JSON), so it can be piped.

``app`` holds the group and the error mapping, ``local`` the commands on
the home's shares, ``net`` the network and node commands, ``get``
downloads, ``sync`` keeping a folder equal to a live link, ``seeds`` the
seed commands and replication, ``vouchers`` issuing and redeeming vouchers;
``session`` and ``offline`` are the one path every command takes to a node
(the home's, one run for the command, or the store alone), ``runtime`` how
a node runs in this process.
"""

from p2pshare.cli import cat, get, local, net, seeds, sync, vouchers
from p2pshare.cli.app import cli, main

__all__ = ["cat", "cli", "get", "local", "main", "net", "seeds", "sync", "vouchers"]
