"""Run ryu-manager on Python 3.11: the one shim Ryu 4.34 needs, then Ryu's own main().

    RYU_VENV/bin/python ryu_runner.py --ofp-listen-host ADDR --ofp-tcp-listen-port 6633 \
        ryu.app.simple_switch [more apps]

It runs under the Ryu venv's Python (Ryu's pins clash with os-ken's), so it is
started as a file and imports nothing from labctl. With eventlet 0.33.3 (0.30.2,
Ryu's era, fails on 3.11) `ryu.app.wsgi` cannot import eventlet.wsgi.ALREADY_HANDLED,
which newer eventlet removed; any object will do, Ryu only compares against it.
"""

import os
import sys


def main() -> None:
    # Run as a file, Python puts this directory first on sys.path: labctl's modules
    # (base, pox, apps ...) must not shadow anything Ryu imports.
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]
    from ryu.lib import hub

    hub.patch(thread=False)  # first, as ryu-manager does
    import eventlet.wsgi

    if not hasattr(eventlet.wsgi, "ALREADY_HANDLED"):
        eventlet.wsgi.ALREADY_HANDLED = object()
    from ryu.cmd import manager

    manager.main()


if __name__ == "__main__":
    main()
