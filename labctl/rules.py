"""The inventory's rules that a schema cannot say, one small function per concern.

Each rule takes the validated spec and whether every host runs simulated, and
returns problems as (path of keys, what is wrong). `RULES` runs them in order;
a driver or controller kind brings its own rules (`inventory_problems`), so a
new kind adds no rule here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labctl import mtu
from labctl.controllers import KINDS
from labctl.drivers import DRIVERS

if TYPE_CHECKING:
    from labctl.inventory import InventorySpec

Problem = tuple[tuple, str]
Rule = Callable[["InventorySpec", bool], list[Problem]]
RESERVED_NAMES = ("underlay", "controller")  # labctl's own namespaces


def _dotted(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def names_are_unique(spec: InventorySpec, simulate: bool) -> list[Problem]:
    """Hosts and VMs share one namespace of names (they name network namespaces)."""
    problems: list[Problem] = []
    seen: dict[str, tuple] = {}
    for host_name, host in spec.hosts.items():
        named = [(host_name, ("hosts", host_name))]
        named += [(vm_name, ("hosts", host_name, "vms", vm_name)) for vm_name in host.vms]
        for name, loc in named:
            if name in RESERVED_NAMES:
                problems.append((loc, f"{name!r} is reserved for labctl's own namespaces"))
            elif name in seen:
                problems.append((loc, f"name {name!r} is already used at {_dotted(seen[name])}"))
            seen.setdefault(name, loc)
    return problems


def vm_addresses(spec: InventorySpec, simulate: bool) -> list[Problem]:
    """Every VM has its own address, on the one L2 segment the lab is."""
    problems: list[Problem] = []
    seen: dict[Any, tuple] = {}
    subnet = None
    for host_name, host in spec.hosts.items():
        for vm_name, vm in host.vms.items():
            loc = ("hosts", host_name, "vms", vm_name, "ip")
            if vm.ip.ip in seen:
                problems.append((loc, f"address {vm.ip.ip} is already used at {_dotted(seen[vm.ip.ip])}"))
            seen.setdefault(vm.ip.ip, loc)
            if vm.ip.ip in (vm.ip.network.network_address, vm.ip.network.broadcast_address):
                problems.append((loc, f"{vm.ip} is the network or broadcast address of its subnet"))
            if subnet is None:
                subnet = (vm.ip.network, loc)
            elif vm.ip.network != subnet[0]:
                problems.append(
                    (
                        loc,
                        f"all VMs share one L2 segment: {vm.ip} is not in {subnet[0]} "
                        f"(set at {_dotted(subnet[1])})",
                    )
                )
    return problems


def underlay_addresses(spec: InventorySpec, simulate: bool) -> list[Problem]:
    """The underlay has room for every host and the controller; given addresses are in it, once."""
    subnet, hosts = spec.underlay.subnet, spec.hosts
    problems: list[Problem] = []
    if subnet.num_addresses - 2 < len(hosts) + 1:
        problems.append(
            (
                ("underlay", "subnet"),
                f"{subnet} has too few addresses for {len(hosts)} hosts and a controller",
            )
        )
    seen: dict[Any, str] = {}
    for host_name, host in hosts.items():
        if host.underlay_ip is None:
            continue
        loc = ("hosts", host_name, "underlay_ip")
        if host.underlay_ip not in subnet:
            problems.append((loc, f"{host.underlay_ip} is not in the underlay subnet {subnet}"))
        if host.underlay_ip in seen:
            problems.append((loc, f"{host.underlay_ip} is already used by {seen[host.underlay_ip]}"))
        seen.setdefault(host.underlay_ip, host_name)
    return problems


def mtu_in_range(spec: InventorySpec, simulate: bool) -> list[Problem]:
    """underlay.mtu and mtu are sane sizes, and the VMs keep a sane MTU inside the tunnel."""
    sane = f"from {mtu.MIN_MTU} to {mtu.MAX_MTU} bytes"
    underlay = spec.underlay.mtu
    if not mtu.MIN_MTU <= underlay <= mtu.MAX_MTU:
        return [(("underlay", "mtu"), f"expected an MTU {sane}, found {underlay}")]
    if spec.mtu is not None:
        if not mtu.MIN_MTU <= spec.mtu <= mtu.MAX_MTU:
            return [(("mtu",), f"expected an MTU {sane}, found {spec.mtu}")]
        return []
    left = mtu.guest_mtu(underlay, spec.tunnel_type)
    if left < mtu.MIN_MTU:
        overhead = mtu.tunnel_overhead(spec.tunnel_type)
        return [
            (
                ("underlay", "mtu"),
                f"{underlay} leaves the VMs {left} bytes inside a {spec.tunnel_type} tunnel "
                f"({overhead} bytes of headers); expected at least {mtu.MIN_MTU + overhead}",
            )
        ]
    return []


def hub_is_a_host(spec: InventorySpec, simulate: bool) -> list[Problem]:
    if spec.hub is None or spec.hub in spec.hosts:
        return []
    return [(("hub",), f"expected one of the hosts ({', '.join(spec.hosts)}), found {spec.hub!r}")]


def controller_apps(spec: InventorySpec, simulate: bool) -> list[Problem]:
    """Apps, app options and the OpenFlow version, as the controller's kind allows them."""
    ctl, kind = spec.controller, KINDS[spec.controller.kind]
    problems: list[Problem] = []
    if ctl.apps is not None and not kind.takes_apps:
        problems.append((("controller", "apps"), f"a {ctl.kind} controller takes no apps"))
    if not kind.takes_app_options:
        with_options = " and ".join(k.label for k in KINDS.values() if k.takes_app_options)
        for index, app in enumerate(ctl.apps or []):
            if app.startswith("--"):
                problems.append(
                    (("controller", "apps", index), f"app options like {app} are for {with_options} only")
                )
    if spec.openflow not in kind.openflow_versions:
        speaks = " and ".join(kind.openflow_versions)
        use = " or ".join(f'openflow: "{v}"' for v in kind.openflow_versions)
        problems.append(
            (("openflow",), f"{kind.label} speaks OpenFlow {speaks} only; use {use} or another kind")
        )
    return problems


def controller_serves_every_switch(spec: InventorySpec, simulate: bool) -> list[Problem]:
    """A kind with a fixed number of switch sessions cannot serve a lab with more bridges:
    the ones past the limit would never connect, and `up` would time out waiting."""
    kind = KINDS[spec.controller.kind]
    if kind.max_switches is None or len(spec.hosts) <= kind.max_switches:
        return []
    return [
        (
            ("controller", "kind"),
            f"{kind.label} serves at most {kind.max_switches} switches ({kind.max_switches_source}), "
            f"and this lab has {len(spec.hosts)} hosts, a bridge each: use at most {kind.max_switches} "
            "hosts or another kind (os-ken has no such limit)",
        )
    ]


def controller_kind_rules(spec: InventorySpec, simulate: bool) -> list[Problem]:
    return KINDS[spec.controller.kind].inventory_problems(spec, simulate)


def simulated_or_real(spec: InventorySpec, simulate: bool) -> list[Problem]:
    """Simulated hosts live in namespaces on this machine: they cannot reach real ones."""
    simulated = [name for name, h in spec.hosts.items() if h.driver == "sim"]
    if simulate or not simulated:
        return []
    return [
        (
            ("hosts", simulated[0], "driver"),
            "a lab is either simulated or real: simulated hosts cannot reach real ones "
            "(give every host a real driver, or run the lab with --sim)",
        )
    ]


def real_hosts_reach_the_controller(spec: InventorySpec, simulate: bool) -> list[Problem]:
    if simulate or spec.controller.address is not None:
        return []
    return [
        (
            ("controller", "address"),
            "real hosts need the controller's address on their underlay "
            "(labctl runs it on this machine unless kind: remote)",
        )
    ]


def controller_placement(spec: InventorySpec, simulate: bool) -> list[Problem]:
    """controller.host: a managed controller on one of the lab's simulated hosts."""
    ctl, loc = spec.controller, ("controller", "host")
    if ctl.host is None:
        return []
    if ctl.host not in spec.hosts:
        return [(loc, f"expected one of the hosts ({', '.join(spec.hosts)}), found {ctl.host!r}")]
    if not KINDS[ctl.kind].managed:
        return [
            (loc, f"a {ctl.kind} controller runs wherever someone else runs it; host is for one labctl runs")
        ]
    if not simulate:
        return [
            (
                loc,
                "a controller on a real host is not supported yet: leave host out (labctl runs it on "
                "this machine at controller.address) or run the lab simulated (--sim)",
            )
        ]
    if ctl.address is not None:
        return [
            (
                ("controller", "address"),
                f"a controller on {ctl.host} listens on {ctl.host}'s underlay address; leave address out",
            )
        ]
    return []


def host_fields_fit_their_driver(spec: InventorySpec, simulate: bool) -> list[Problem]:
    """A field one driver kind declares, set on a host of another kind, is a mistake."""
    declared: dict[str, list[str]] = {}
    for kind in DRIVERS.values():
        for field in kind.host_fields:
            declared.setdefault(field, []).append(kind.name)
    problems: list[Problem] = []
    for host_name, host in spec.hosts.items():
        own = DRIVERS[host.driver].host_fields
        for field, kinds in declared.items():
            value = getattr(host, field)
            if field in own or value == type(host).model_fields[field].default:
                continue
            owner = DRIVERS[kinds[0]].host_fields[field]
            message = owner.misplaced or f"{field} is for {' and '.join(kinds)} hosts, not {host.driver}"
            problems.append((("hosts", host_name, field), message.format(value=value)))
    return problems


def driver_kind_rules(spec: InventorySpec, simulate: bool) -> list[Problem]:
    problems: list[Problem] = []
    for name, host in spec.hosts.items():
        problems += DRIVERS[host.driver].inventory_problems(name, host, simulate)
    return problems


def driver_kind_lab_rules(spec: InventorySpec, simulate: bool) -> list[Problem]:
    kinds = dict.fromkeys(DRIVERS[host.driver] for host in spec.hosts.values())
    return [problem for kind in kinds for problem in kind.lab_problems(spec, simulate)]


RULES: tuple[Rule, ...] = (
    names_are_unique,
    vm_addresses,
    underlay_addresses,
    mtu_in_range,
    hub_is_a_host,
    controller_apps,
    controller_serves_every_switch,
    controller_kind_rules,
    simulated_or_real,
    real_hosts_reach_the_controller,
    controller_placement,
    host_fields_fit_their_driver,
    driver_kind_rules,
    driver_kind_lab_rules,
)


def problems(spec: InventorySpec, simulate: bool) -> list[Problem]:
    """Every rule's problems. `simulate`: --sim or simulate: true, or every host is simulated."""
    simulate = simulate or all(h.driver == "sim" for h in spec.hosts.values())
    return [problem for rule in RULES for problem in rule(spec, simulate)]
