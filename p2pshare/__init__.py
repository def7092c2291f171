"""p2pshare: peer-to-peer, end-to-end encrypted file sharing.

Layers (imports point down only): ``cli`` → ``control`` → ``node`` →
``config`` → ``protocol`` / ``store`` → ``format`` → ``errors``.
See DESIGN.md and docs/.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
