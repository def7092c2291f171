"""Password links on the command line: wrapping the links ``add``/``share``
print, and unwrapping the one a command is given (``format/password.py``).

A password never goes on the command line (it would land in the shell's
history and in ``ps``): it is prompted for (twice when a link is made) or
read from ``--password-file F`` (its first line).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from p2pshare.errors import UsageError

__all__ = [
    "PASSWORD",
    "PASSWORD_FILE",
    "STRENGTH",
    "link_password",
    "lock_links",
    "read_password",
    "unlock",
]

PASSWORD_FILE = click.option(
    "--password-file",
    "password_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Read the link's password from this file (its first line).",
)


PASSWORD = click.option(
    "--password",
    "password_prompt",
    is_flag=True,
    help="Protect the printed links with a password (prompted for, twice).",
)
STRENGTH = click.option(
    "--password-strength",
    type=click.Choice(["moderate", "sensitive"]),
    default="moderate",
    show_default=True,
    help="Argon2id cost of --password: sensitive is ~4x slower to guess (and to open).",
)


def link_password(
    prompt: bool, password_file: Path | None, strength: str
) -> tuple[bytes, tuple[int, int]] | None:
    """``add``/``share``: the password and Argon2id parameters to wrap the
    printed links with, or None."""
    from p2pshare.format.password import MODERATE, SENSITIVE

    if not prompt and password_file is None:
        return None
    params = SENSITIVE if strength == "sensitive" else MODERATE
    return read_password(password_file, confirm=True), params


def read_password(password_file: Path | None, *, confirm: bool) -> bytes:
    """The password from the file, or prompted for on the terminal.

    Raises:
        UsageError: no file and no terminal, an unreadable or empty one, or
            two different answers.
    """
    if password_file is not None:
        try:
            text = password_file.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--password-file: cannot read {password_file}") from exc
        if not text or not text[0]:
            raise UsageError(f"--password-file: {password_file} has no password")
        return text[0].encode()
    if not sys.stdin.isatty():
        raise UsageError("this needs a password: give --password-file F")
    answer = click.prompt("Password", hide_input=True, err=True)
    if confirm and click.prompt("Again", hide_input=True, err=True) != answer:
        raise UsageError("the two passwords differ")
    if not answer:
        raise UsageError("an empty password")
    return str(answer).encode()


def lock_links(links: list[str], password: bytes, params: tuple[int, int]) -> list[str]:
    """The links with their keys wrapped by ``password``."""
    from p2pshare.format import ShareLink, parse_link
    from p2pshare.format.password import wrap_key

    out = []
    for text in links:
        link = parse_link(text)
        if link.key is None:
            out.append(text)
            continue
        wrapped = wrap_key(link.key, password, params=params)
        out.append(
            str(
                ShareLink(
                    root_id=link.root_id,
                    peers=link.peers,
                    wrapped=wrapped,
                    ticket=link.ticket,
                )
            )
        )
    return out


def unlock(link_text: str, password_file: Path | None) -> str:
    """``link_text`` with its key, asking for the password when it is a
    password link (before anything touches the network).

    Raises:
        AccessDenied: a wrong password (exit 5).
    """
    from p2pshare.format import ShareLink
    from p2pshare.format.links import parse_any_link
    from p2pshare.format.password import unwrap_key

    link = parse_any_link(link_text)
    if not isinstance(link, ShareLink) or link.wrapped is None:
        return link_text
    key = unwrap_key(link.wrapped, read_password(password_file, confirm=False))
    return str(
        ShareLink(root_id=link.root_id, key=key, peers=link.peers, ticket=link.ticket)
    )
