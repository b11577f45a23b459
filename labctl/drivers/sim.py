"""The simulated host: a network namespace running its own ovsdb-server and
ovs-vswitchd with the userspace datapath; VMs are namespaces with a veth into
the lab bridge; an underlay segment (a Linux bridge in its own namespace)
joins the hosts, and GRE runs as OVS's native userspace tunnelling.

Userspace tunnelling needs the host's underlay address on an OVS bridge:
`br-phy` holds the underlay port (eth0) and carries that address, so
`ovs-appctl ovs/route/show` and `tnl/arp/show` see it.

A simulated kvm host with `guests: libvirt` runs real QEMU guests instead of
namespace VMs: a libvirtd inside the host (libvirtd.py) and the kvm driver's own
guest code (libvirt_guests.py) pointed at it, so libvirt plugs each guest's vnetN
into the host's br0 exactly as on a real KVM host.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

from labctl import unixctl
from labctl.drivers import simnet
from labctl.drivers.base import ControllerSite, DoctorCheck, Driver, LabSession, PlannedStep
from labctl.drivers.naming import vm_port_name
from labctl.drivers.sim_guests import RealGuests
from labctl.errors import ProvisionError
from labctl.faults import Fault, Hides
from labctl.model import VM
from labctl.ovs import AddBridge, AddPort, OvsCommand
from labctl.processes import (
    ProcessId,
    identify_as,
    in_unnamed_netns,
    named_netns_inode,
    netns_inode,
    read_pidfile,
    stop,
)
from labctl.state import LabState
from labctl.transport.base import Transport
from labctl.transport.netns import NetnsTransport

PHYS_BRIDGE = "br-phy"
UNDERLAY_PORT = "eth0"
VM_NIC = "eth0"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
OVS_DAEMONS = ("ovsdb-server", "ovs-vswitchd")


def underlay_netns(session: LabSession) -> str:
    return simnet.netns_name(session.lab.name, "underlay")


def ensure_underlay(session: LabSession, existing: set[str]) -> None:
    """The shared segment: one Linux bridge in its own namespace."""
    ns = underlay_netns(session)
    simnet.ensure_netns(session.state, ns, existing)
    segment = simnet.link_states(ns).get(simnet.UNDERLAY_BRIDGE)
    if segment is None:  # also after an up killed right here
        simnet.ip_batch(
            ns,
            [f"link add {simnet.UNDERLAY_BRIDGE} type bridge", f"link set {simnet.UNDERLAY_BRIDGE} up"],
            ns,
        )
        session.report.changed("underlay", f"segment {session.lab.underlay} ({ns})")
    elif not segment.up:
        simnet.ip_batch(ns, [f"link set {simnet.UNDERLAY_BRIDGE} up"], ns)
        session.report.changed("underlay", f"bridge {simnet.UNDERLAY_BRIDGE} set up again")


def attach_to_underlay(session: LabSession, netns: str, port: str, address: str) -> bool:
    """eth0 in `netns`, plugged into the underlay bridge as `port`; both ends take the
    underlay's MTU, which the tunnel packets may fill.

    An eth0 that carries an address (the controller's) gets a MAC made from it: made
    again after a fault, it keeps the MAC every host's ARP entry names, which a TCP
    session keeps confirming, so it would never be looked up again."""
    plen, mtu = session.lab.underlay.prefixlen, session.lab.underlay_mtu
    addr_lines = [f"addr replace {address}/{plen} dev {UNDERLAY_PORT}"] if address else []
    return simnet.ensure_veth(
        netns,
        UNDERLAY_PORT,
        underlay_netns(session),
        port,
        peer_lines=[f"link set {port} mtu {mtu} master {simnet.UNDERLAY_BRIDGE} up"],
        lines=[*addr_lines, f"link set {UNDERLAY_PORT} mtu {mtu} up"],
        mac=_mac_of(address) if address else None,
    )


def _mac_of(address: str) -> str:
    """A locally administered MAC that shows the address, as VMs get theirs: 02:00:0a:fa:00:fe."""
    return "02:00:" + ":".join(f"{octet:02x}" for octet in ipaddress.IPv4Address(address).packed)


def _controller_link_faults(session: LabSession, present: set[str]) -> list[Fault]:
    """The controller's own namespace and its link onto the underlay, with its address."""
    ns = simnet.netns_name(session.lab.name, "controller")
    if ns not in present:  # the controller runs on in it, holding the underlay's end of its link
        cannot = "up cannot make it again while the controller runs on in it: labctl down, then labctl up"
        return [Fault(f"the controller's namespace {ns} is missing", cannot, hides=Hides.UNDERLAY)]
    link = simnet.link_states(ns).get(UNDERLAY_PORT)
    here = f"the controller's underlay link {UNDERLAY_PORT}"
    address = f"{session.lab.controller.address}/{session.lab.underlay.prefixlen}"
    if link is None:
        return [Fault(f"{here} is missing", "up makes it again", hides=Hides.UNDERLAY)]
    if not link.up:
        return [Fault(f"{here} is down", SET_UP, hides=Hides.UNDERLAY)]
    if not link.carrier:
        there = f"the underlay's end of {here} (port controller on its bridge) is down"
        return [Fault(there, SET_UP, hides=Hides.UNDERLAY)]
    if address not in link.addresses:
        return [Fault(f"{here} has lost the address {address}", "up puts it back", hides=Hides.UNDERLAY)]
    return []


def controller_transport(session: LabSession) -> NetnsTransport:
    return NetnsTransport("controller", simnet.netns_name(session.lab.name, "controller"))


def ensure_controller_host(session: LabSession, existing: set[str]) -> NetnsTransport:
    """The controller's own simulated host on the underlay."""
    ns = simnet.netns_name(session.lab.name, "controller")
    broken = _controller_link_faults(session, existing) if ns in existing else []
    if simnet.ensure_netns(session.state, ns, existing):
        session.report.changed("controller", f"namespace {ns}")
    if attach_to_underlay(session, ns, "controller", str(session.lab.controller.address)):
        session.report.changed("controller", f"underlay address {session.lab.controller.address}")
    elif broken and not _controller_link_faults(session, existing):  # set up again, address put back
        session.report.changed("controller", f"repaired: {broken[0].what}")
    return controller_transport(session)


def ovs_daemons(rundir: str, netns: str) -> dict[str, ProcessId | None]:
    """Our OVS daemons for one simulated host, by name: the PID its pidfile holds, checked
    to be that daemon and inside the host's namespace (or, when someone deleted its name,
    inside a namespace no name pins); None where it does not run."""
    ns_inode = named_netns_inode(netns)
    found: dict[str, ProcessId | None] = {}
    for daemon in OVS_DAEMONS:
        pid = read_pidfile(f"{rundir}/{daemon}.pid")
        proc = identify_as(pid, daemon) if pid else None
        if proc is not None and ns_inode is not None:
            ours = netns_inode(proc.pid) == ns_inode
        else:
            ours = proc is not None and in_unnamed_netns(proc.pid)
        found[daemon] = proc if ours else None
    return found


def ovs_daemon_pids(rundir: str, netns: str) -> list[ProcessId]:
    """Our OVS daemons for one simulated host that run."""
    return [proc for proc in ovs_daemons(rundir, netns).values() if proc is not None]


SET_UP = "up sets it up"
ORPHANED = (
    "cannot make it again while its OVS daemons run on in the deleted namespace: "
    "labctl down (it stops them by their pidfiles), then labctl up"
)
# What `up` does when one of a simulated host's daemons is gone.
DAEMON_REPAIRS = {
    # Without its database, ovs-vswitchd forwards nothing either.
    "ovsdb-server": (
        "up starts it again on the same database (the configuration is kept), and ovs-vswitchd with it",
        Hides.OVSDB | Hides.SWITCH,
    ),
    "ovs-vswitchd": (
        "up starts it again, puts back br-phy's underlay address and the tunnel neighbours, "
        "and waits for {bridge}'s new OpenFlow session",
        Hides.SWITCH,
    ),
}


# Every change to a bridge's OpenFlow table makes ovs-vswitchd translate each flow cached
# in its datapath again, and a controller's reactive flows change the table all the time:
# verify's set-ups in a 64-host star are thousands of flow-mods, each re-translating the
# hub's thousands of cached flows (the switches' revalidators took a third of both cores,
# the hub's alone an eighth). A cached flow idle 2 s instead of 10 s leaves the cache, so
# there are a fifth as many to translate; traffic keeps its flows cached, and a packet
# after a longer pause is looked up again (as the first one was), which a simulated host
# does in microseconds.
DAEMON_SETTINGS = ("other_config:max-idle=2000",)


def start_ovs_daemons(transport: Transport, rundir: str, daemons=OVS_DAEMONS) -> None:
    """Start a private ovsdb-server and/or ovs-vswitchd whose files all live in `rundir`.

    `transport` runs inside the host and points the OVS tools at `rundir`
    (NetnsTransport does). The database is created aside and renamed, so an
    interrupted start never leaves a half-written one."""
    Path(rundir).mkdir(parents=True, exist_ok=True)
    db = f"{rundir}/conf.db"
    if not Path(db).exists():
        Path(f"{db}.new").unlink(missing_ok=True)  # from a start killed while creating it
        transport.run(["ovsdb-tool", "create", f"{db}.new", OVS_SCHEMA])
        os.replace(f"{db}.new", db)
    common = ["--pidfile", "--detach", "--no-chdir", "--log-file", "-vconsole:off"]
    if "ovsdb-server" in daemons:
        transport.run(["ovsdb-server", db, f"--remote=punix:{rundir}/db.sock", *common])
    transport.run(["ovs-vsctl", "--no-wait", "init", "--", "set", "Open_vSwitch", ".", *DAEMON_SETTINGS])
    if "ovs-vswitchd" in daemons:
        transport.run(["ovs-vswitchd", *common])


class SimDriver(Driver):
    name = "sim"
    datapath_type = "netdev"
    adds_vm_ports = True

    def __init__(self, session: LabSession, host):
        super().__init__(session, host)
        self.netns = simnet.netns_name(session.lab.name, host.name)
        self.rundir = str(session.state.dir / "hosts" / host.name)
        self._transport = NetnsTransport(host.name, self.netns, self.rundir)
        self.existing_netns: set[str] = set()
        self.underlay_mac: str | None = None  # br-phy's MAC, known after finish()
        # real QEMU guests instead of namespace VMs (a kvm host with guests: libvirt)
        self.real = RealGuests(self) if RealGuests.wanted(host) else None
        if self.real is not None:
            self.adds_vm_ports = False  # type: ignore[misc] - libvirt plugs them in, per host

    def transport(self) -> NetnsTransport:
        return self._transport

    # --- what every simulated host shares ---
    @classmethod
    def prepare_lab(cls, session: LabSession, drivers: list[Driver]) -> None:
        """The underlay segment, and the controller's own namespace on it (unless it runs
        on a lab host); one look at the namespaces that exist serves every host."""
        existing = simnet.existing_netns()
        ensure_underlay(session, existing)
        if session.lab.controller.host is None:
            ensure_controller_host(session, existing)
        probe = RealGuests.machine_probe()  # one KVM probe for all hosts: they share this machine
        for driver in drivers:
            driver.existing_netns = existing  # type: ignore[attr-defined]
            if driver.real is not None:  # type: ignore[attr-defined]
                driver.real.kvm_probe = probe  # type: ignore[attr-defined]

    @classmethod
    def controller_site(cls, session: LabSession) -> ControllerSite:
        transport = controller_transport(session)
        where = f"in its own namespace {transport.netns}"
        return ControllerSite(transport, where, transport.netns, capture_on=UNDERLAY_PORT)

    def hosted_controller_site(self) -> ControllerSite:
        # This host's own bridge reaches the controller over lo, the others' sessions over
        # the underlay port and br-phy: what the host sends through br-phy, the userspace
        # datapath sends again on the underlay port -- a second copy, left out.
        return ControllerSite(self._transport, f"on {self.host.name}", capture_skips=(UNDERLAY_PORT,))

    def log_path(self) -> Path:
        return Path(self.rundir) / "ovs-vswitchd.log"

    # --- status: what labctl started and made here, checked ---
    def faults(self) -> list[Fault]:
        present = simnet.existing_netns()
        if self.netns not in present:
            repair = f"up {ORPHANED}" if self._orphaned_daemons() else "up makes the host again"
            return [Fault(f"namespace {self.netns} is missing", repair, hides=Hides.HOST)]
        if self.real is not None:  # real guests: libvirtd says what is missing; no VM namespaces
            gone = list(self.host.vms)
            faults = [Fault(line, "up starts it again") for line in self.real.missing()]
        else:
            gone = [vm for vm in self.host.vms if self.vm_netns(vm) not in present]
            remake = "up makes it again and plugs it into the bridge"
            faults = [Fault(f"VM {vm.name} is missing", remake, port=self.vm_port(vm)) for vm in gone]
        daemons = ovs_daemons(self.rundir, self.netns)
        for daemon, proc in daemons.items():
            if proc is None:
                pid = read_pidfile(f"{self.rundir}/{daemon}.pid")
                why = f"pid {pid} from its pidfile is gone" if pid else "it has no pidfile"
                repair, hides = DAEMON_REPAIRS[daemon]
                repair = repair.format(bridge=self.session.lab.bridge)
                faults.append(Fault(f"{daemon} is not running ({why})", repair, hides=hides))
        links = simnet.link_states(self.netns)
        faults += self._link_faults(links, [vm for vm in self.host.vms if vm not in gone])
        if daemons["ovs-vswitchd"] is not None:
            faults += self._underlay_address_faults(links)
        return faults

    def _link_faults(self, links: dict[str, simnet.LinkState], vms: list[VM]) -> list[Fault]:
        """The veths labctl made into this host: the underlay's and each VM's, both ends set up."""
        faults = []
        underlay = f"the underlay's end of {UNDERLAY_PORT} (port {self.host.name} on its bridge)"
        ends = [(UNDERLAY_PORT, f"underlay link {UNDERLAY_PORT}", underlay, Hides.UNDERLAY)]
        ends += [
            (self.vm_port(vm), f"port {self.vm_port(vm)} (VM {vm.name}'s link)", f"VM {vm.name}'s {VM_NIC}",
             Hides.NOTHING)
            for vm in vms
        ]  # fmt: skip
        for port, here, there, hides in ends:
            link = links.get(port)
            if link is None:
                faults.append(Fault(f"{here} is missing", "up makes it again", port=port, hides=hides))
            elif not link.up:
                faults.append(Fault(f"{here} is down", SET_UP, port=port, hides=hides))
            elif not link.carrier:
                faults.append(Fault(f"{there} is down", SET_UP, port=port, hides=hides))
        return faults

    def _underlay_address_faults(self, links: dict[str, simnet.LinkState]) -> list[Fault]:
        """br-phy carries the underlay address userspace tunnelling and the controller's
        session go out from (ovs-vswitchd makes br-phy; status checks it while that runs)."""
        phys = links.get(PHYS_BRIDGE)
        if phys is None:
            return []  # the bridge itself is missing: the OVS configuration says so
        address = self._underlay_address()
        faults = []
        if not phys.up:
            faults.append(Fault(f"{PHYS_BRIDGE} is down", SET_UP, port=PHYS_BRIDGE, hides=Hides.UNDERLAY))
        if address not in phys.addresses:
            lost = f"{PHYS_BRIDGE} has lost the underlay address {address}"
            faults.append(Fault(lost, "up puts it back", port=PHYS_BRIDGE, hides=Hides.UNDERLAY))
        return faults

    def _underlay_address(self) -> str:
        return f"{self.host.underlay_ip}/{self.session.lab.underlay.prefixlen}"

    def _orphaned_daemons(self) -> list[ProcessId]:
        """The host's OVS daemons, still running in a namespace whose name was deleted: they
        keep it, its links and the underlay's end of them alive, so it cannot be made again."""
        if self.netns in simnet.existing_netns():
            return []
        return ovs_daemon_pids(self.rundir, self.netns)

    @classmethod
    def journalled_processes(cls, records: list[dict]) -> list[ProcessId]:
        """Each host's OVS daemons, by the pidfiles in the run directory its record names."""
        return [
            proc
            for record in records
            if record["kind"] == "ovs-daemons"
            for proc in ovs_daemon_pids(record["rundir"], record["netns"])
        ]

    @classmethod
    def lab_faults(cls, session: LabSession) -> list[Fault]:
        """The underlay segment every host's tunnels and sessions cross, and the controller's
        link onto it when it runs in a namespace of its own."""
        present = simnet.existing_netns()
        ns = underlay_netns(session)
        if ns not in present:
            remake = "up makes it again and plugs every host into it"
            return [Fault(f"the underlay namespace {ns} is missing", remake, hides=Hides.UNDERLAY)]
        faults = []
        segment = simnet.link_states(ns).get(simnet.UNDERLAY_BRIDGE)
        bridge = f"the underlay bridge {simnet.UNDERLAY_BRIDGE}"
        if segment is None:
            faults.append(Fault(f"{bridge} is missing", "up makes it again", hides=Hides.UNDERLAY))
        elif not segment.up:
            faults.append(Fault(f"{bridge} is down", SET_UP, hides=Hides.UNDERLAY))
        if session.lab.controller.host is None:
            faults += _controller_link_faults(session, present)
        return faults

    def vm_port(self, vm: VM) -> str:
        if self.real is not None:
            return self.real.guests.vm_port(vm)
        return vm_port_name(self.host.flavor, vm)

    def way_in(self, vm: VM) -> str | None:
        return self.real.way_in(vm) if self.real is not None else None

    def address_managed(self, vm: VM) -> bool:
        return self.real.address_managed(vm) if self.real is not None else True

    def vm_netns(self, vm: VM) -> str:
        return simnet.netns_name(self.session.lab.name, vm.name)

    def vm_transport(self, vm: VM) -> Transport:
        if self.real is not None:
            return self.real.vm_transport(vm)
        return NetnsTransport(vm.name, self.vm_netns(vm))

    def doctor_checks(self) -> list[DoctorCheck]:
        return self.real.doctor_checks() if self.real is not None else []

    # --- up ---
    def prepare(self) -> None:
        report, host = self.session.report, self.host.name
        if self._orphaned_daemons():
            gone = f"namespace {self.netns} is gone"
            raise ProvisionError(host, "make the host again", f"{gone}; up {ORPHANED}")
        existed = self.netns in self.existing_netns
        if simnet.ensure_netns(self.session.state, self.netns, self.existing_netns):
            report.changed(host, f"namespace {self.netns}")
        # Links someone set down: the ensure steps below set every end up again.
        present = [vm for vm in self.host.vms if self.vm_netns(vm) in self.existing_netns]
        links = simnet.link_states(self.netns) if existed else {}
        down = [f for f in self._link_faults(links, present) if f.repair == SET_UP]
        if attach_to_underlay(self.session, self.netns, host, ""):
            self.replugged_ports.add(UNDERLAY_PORT)  # br-phy's port must use the new device
            report.changed(host, "underlay link")
        if self.real is None:
            for vm in self.host.vms:
                self._ensure_vm(vm)
        links = simnet.link_states(self.netns) if down else {}
        for fault in down:
            link = links.get(fault.port or "")
            if link and link.up and link.carrier:
                report.changed(host, f"repaired: {fault.what}")
        self._ensure_ovs_daemons()
        if self.real is not None:
            self.real.ensure_libvirtd()

    def _ensure_vm(self, vm: VM) -> None:
        ns, port = self.vm_netns(vm), self.vm_port(vm)
        created = simnet.ensure_netns(self.session.state, ns, self.existing_netns)
        wired = simnet.ensure_veth(
            self.netns,
            port,
            ns,
            VM_NIC,
            peer_lines=[
                f"link set {VM_NIC} address {vm.mac} mtu {self.session.lab.mtu}",
                f"addr replace {vm.ip} dev {VM_NIC}",
                f"link set {VM_NIC} up",
            ],
            lines=[f"link set {port} mtu {self.session.lab.mtu} up"],
        )
        if wired:
            self.replugged_ports.add(port)
        if created or wired:
            self.session.report.changed(self.host.name, f"VM {vm.name} {vm.ip} on port {port}")

    def _ensure_ovs_daemons(self) -> None:
        running = ovs_daemons(self.rundir, self.netns)
        missing = [d for d, proc in running.items() if proc is None]
        if not missing:
            return
        switch = running["ovs-vswitchd"]
        if "ovsdb-server" in missing and switch is not None:
            # An ovs-vswitchd that lost its database forwards nothing (the userspace datapath
            # runs in its main loop, which waits for the database) and tries the new one only
            # after its back-off, up to 8 s: it is started again with the database.
            stop([switch])
            missing = list(OVS_DAEMONS)
        self.switch_restarted = "ovs-vswitchd" in missing
        self.session.state.record("ovs-daemons", host=self.host.name, rundir=self.rundir, netns=self.netns)
        start_ovs_daemons(self._transport, self.rundir, missing)
        if len(ovs_daemon_pids(self.rundir, self.netns)) != len(OVS_DAEMONS):
            raise ProvisionError(
                self.host.name,
                "start Open vSwitch",
                f"daemons did not stay up; see {self.rundir}/ovs-vswitchd.log",
            )
        self.session.report.changed(self.host.name, f"started {' and '.join(missing)} (userspace datapath)")

    # --- plan: what ensure_underlay(), prepare() and finish() do, described ---
    @classmethod
    def planned_lab_steps(cls, session: LabSession) -> list[PlannedStep]:
        return [
            PlannedStep(
                f"underlay segment {session.lab.underlay}: Linux bridge {simnet.UNDERLAY_BRIDGE} "
                f"in namespace {underlay_netns(session)}"
            )
        ]

    def planned_host_steps(self) -> list[PlannedStep]:
        address = f"{self.host.underlay_ip}/{self.session.lab.underlay.prefixlen}"
        return [
            PlannedStep(f"namespace {self.netns}"),
            PlannedStep(
                f"{UNDERLAY_PORT}: a veth into the underlay bridge (port {self.host.name}), "
                f"MTU {self.session.lab.underlay_mtu}"
            ),
            PlannedStep(f"its own {' and '.join(OVS_DAEMONS)}, userspace datapath, files in {self.rundir}"),
            *(self.real.planned_host_steps() if self.real is not None else []),
            PlannedStep(
                f"underlay address {address} on {PHYS_BRIDGE}, where userspace tunnelling looks for it"
            ),
        ]

    def planned_vm_steps(self, vm: VM) -> list[PlannedStep]:
        if self.real is not None:
            return self.real.planned_vm_steps(vm)
        ns = self.vm_netns(vm)
        mtu = self.session.lab.mtu
        return [PlannedStep(f"namespace {ns}, {VM_NIC} {vm.mac} {vm.ip} MTU {mtu}: a veth into {self.netns}")]

    def planned_vm_port(self, vm: VM) -> str:
        if self.real is not None:
            return self.real.planned_vm_port()
        return self.vm_port(vm)

    def ovs_commands(self) -> list[OvsCommand]:
        return [
            AddBridge(PHYS_BRIDGE, self.datapath_type),
            AddPort(PHYS_BRIDGE, UNDERLAY_PORT),
        ]

    def finish(self) -> None:
        """The underlay address goes on br-phy; real guests start once br0 is there."""
        self._ensure_underlay_address()
        if self.real is not None:
            self.real.ensure_guests()

    def _ensure_underlay_address(self) -> None:
        """On br-phy, where userspace tunnelling looks for it (again, when someone took it
        away or set br-phy down)."""
        address = self._underlay_address()
        [link] = json.loads(self._transport.run(["ip", "-j", "addr", "show", "dev", PHYS_BRIDGE]).stdout)
        self.underlay_mac = link["address"]
        has_address = any(a.get("local") == str(self.host.underlay_ip) for a in link.get("addr_info", []))
        if has_address and "UP" in link.get("flags", []):
            return
        simnet.ip_batch(
            self.netns,
            [f"addr replace {address} dev {PHYS_BRIDGE}", f"link set {PHYS_BRIDGE} up"],
            self.host.name,
        )
        simnet.tx_off(self.netns, PHYS_BRIDGE)
        self.session.report.changed(self.host.name, f"underlay address {address} on {PHYS_BRIDGE}")

    def before_tunnels(self, peers: list[Driver]) -> None:
        """Tell OVS each tunnel peer's underlay MAC (br-phy's, known after its finish()).

        With userspace tunnelling OVS drops a packet whose tunnel neighbour is
        not resolved yet, and it learns neighbours only by snooping ARP on br-phy,
        which depends on timing. Seeding them makes the first VM packet cross."""
        known = [p for p in peers if isinstance(p, SimDriver) and p.underlay_mac]
        if not known:
            return
        # over the daemon's control socket: a hub, or a host of a mesh, has a peer per other
        # host, and ovs-appctl would cost a process for each
        pid = read_pidfile(f"{self.rundir}/ovs-vswitchd.pid")
        unixctl.call_all(
            f"{self.rundir}/ovs-vswitchd.{pid}.ctl",
            [("tnl/neigh/set", PHYS_BRIDGE, str(p.host.underlay_ip), p.underlay_mac or "") for p in known],
            self.host.name,
        )

    # --- down: what a host with real guests journalled ---
    @classmethod
    def undo(cls, record: dict, state: LabState) -> None:
        """A real guest: destroyed through its libvirtd while that still runs (otherwise its
        QEMU goes with the host's other processes). The libvirtd: stopped by its PID. Their
        files are in the lab's state directory, which down removes last."""
        RealGuests.undo(record)
