"""Integration tests: real py-libp2p hosts in one trio process.

Policy (STYLE §13):

* **Loopback only, port 0.** Hosts listen on ``/ip4/127.0.0.1/tcp/0``; the
  bound port is read back from ``NodeHost.addrs()``. Nothing leaves the
  machine, and tests never collide on ports.
* **Readiness through ``nursery.start``, never ``sleep``.** ``open_host``
  returns only when the listeners are bound, the DHT runs and bootstrap is
  done; ``tests.helpers.nodes.open_test_nodes`` starts each node with
  ``nursery.start``. A test that needs something to happen waits for the
  event that proves it (a stream read, a lookup result), not for time.
* **A ``trio.fail_after`` deadline in every test**, so a hang fails fast
  with a traceback instead of reaching pytest's ``faulthandler_timeout``.
* Nodes come from function-scoped async context managers (the only scope
  pytest-trio supports) and are torn down by leaving them, which must close
  every socket (pitfall P9, checked by ``test_host.py``).
* Every module carries ``pytestmark = pytest.mark.integration`` so the suite
  can be deselected with ``-m 'not integration'``.

Coroutine tests are marked for trio by ``tests/conftest.py``.
"""

from __future__ import annotations
