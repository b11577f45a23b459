"""Run os-ken apps as a controller process (os-ken has no manager command of its own).

    python -m labctl.controllers.osken_runner --ofp-listen-host ADDR \
        --ofp-tcp-listen-port 6633 --log-file FILE l2_learning [more apps]

Bundled short names (see apps.BUNDLED) or any importable os-ken app module.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from os_ken.lib import hub

    hub.patch(thread=False)

    from os_ken import cfg, log
    from os_ken.base.app_manager import AppManager  # before controller: os-ken's import order
    from os_ken.controller import controller  # noqa: F401 - registers the --ofp-* options

    from labctl.controllers.apps import BUNDLED

    _error_messages_keep_the_session()

    conf = cfg.CONF
    conf.register_cli_opts([cfg.MultiStrOpt("app", positional=True, default=[], help="apps to run")])
    conf(args=sys.argv[1:] if argv is None else argv, project="os_ken", default_config_files=[])
    log.init_log()
    apps = [BUNDLED.get(name, name) for name in conf.app] or [BUNDLED["l2_learning"]]
    manager = AppManager.get_instance()
    manager.load_apps(apps)
    services = manager.instantiate_apps(**manager.create_contexts())
    try:
        hub.joinall(services)
    finally:
        manager.close()


def _error_messages_keep_the_session() -> None:
    """os-ken's own error handler compares every error message's type with
    OFPET_EXPERIMENTER, which its OpenFlow 1.0 module lacks: the AttributeError ends
    the switch's session at the first error a 1.0 switch sends. 1.0 has no
    experimenter error type; a value no 1.0 error carries keeps it on its usual path."""
    from os_ken.ofproto import ofproto_v1_0

    if not hasattr(ofproto_v1_0, "OFPET_EXPERIMENTER"):
        ofproto_v1_0.OFPET_EXPERIMENTER = 0xFFFF


if __name__ == "__main__":
    main()
