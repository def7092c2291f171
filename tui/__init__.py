"""The p2pshare terminal UI (Textual), driving a node over its control socket.

Only :mod:`p2pshare.control` (through :mod:`tui.backend`) talks to the node;
screens and widgets see the :class:`tui.backend.NodeBackend` protocol.
"""
