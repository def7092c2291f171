"""Save an SVG screenshot of the TUI in a realistic state: ``docs/tui.svg``.

Run through the wrapper, ``scripts/screenshot [--output PATH] [--size WxH]``,
which sets up the venv.

It starts the demo swarm (:class:`tui.demo.DemoSwarm`: two real background
nodes on 127.0.0.1 with temporary homes), has "your" node download the
sample file (so the node has a finished transfer and has talked to its
peer), then runs the app headless (``App.run_test``) on your node with the
sample folder's link open, waits until the folder's tree and a node sample
are on screen, and saves the screen. The swarm is removed afterwards.

Peer ids, ports and paths change from run to run: the picture is for the
README, not a snapshot test (those use tests/helpers/fake_backend.py).
Exits 1 with one line if something fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout, venv or not

from p2pshare.config import Home  # noqa: E402
from p2pshare.errors import P2PShareError  # noqa: E402
from tui.app import P2PShareApp  # noqa: E402
from tui.backend import ControlBackend  # noqa: E402
from tui.demo import LOOPBACK, DemoSwarm  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "tui.svg"
DEADLINE_S = 60.0
# On screen once the folder's listing is fetched and the node was sampled.
READY_MARKS = ("README.txt", "menu.txt", "peers")


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected WxH, e.g. 110x32"
        ) from None


async def _shoot(swarm: DemoSwarm, output: Path, size: tuple[int, int]) -> None:
    backend = ControlBackend(
        Home(swarm.you_home), listen=(LOOPBACK,), bootstrap=swarm.sharer_addrs
    )
    app = P2PShareApp(
        backend,
        link=swarm.folder_link,
        destination=Path.home() / "Downloads",
    )
    async with app.run_test(size=size) as pilot:
        deadline = time.monotonic() + DEADLINE_S
        while not all(mark in app.export_screenshot() for mark in READY_MARKS):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the TUI did not show {READY_MARKS} in time")
            await pilot.pause(0.2)
        await pilot.pause()
        app.save_screenshot(filename=output.name, path=str(output.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--size", type=_size, default=(110, 32), help="WxH")
    args = parser.parse_args()
    output: Path = args.output.resolve()

    def say(message: str) -> None:
        print(message, file=sys.stderr)

    try:
        with DemoSwarm(log=say) as swarm:
            downloads = swarm.root / "downloads"
            swarm.cli(swarm.you_home, "get", swarm.file_link, "-o", str(downloads))
            asyncio.run(_shoot(swarm, output, args.size))
    except (P2PShareError, TimeoutError, OSError) as exc:
        print(f"screenshot: {exc}", file=sys.stderr)
        return 1
    print(f"screenshot: wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
