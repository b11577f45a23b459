"""XenServer / XCP-ng hosts through the XenAPI SDK.

XenAPI creates the VMs (cloned from a template), their VIFs and the network
they sit on; dom0's Open vSwitch is configured with ovs-vsctl over SSH like any
host. What real pools do that labctl must follow (docs/drivers.md):

- The network is created on a bridge of the lab's name (`bridge: br0` in its
  record). xapi refuses names longer than 15 characters or starting with xen,
  xapi, vif, tap or eth (INVALID_VALUE, an inventory rule here) and names another
  network has (BRIDGE_NAME_EXISTS, explained).
- ovs-xapi-sync in dom0 rewrites the fail_mode and in-band setting of every bridge
  that backs a xapi network from the network's other_config: the network carries
  `vswitch-controller-fail-mode: secure` and `vswitch-disable-in-band: true`, the
  settings the lab's bridge has, or it would turn standalone and drift.
- A clone keeps the template's NICs: labctl removes them before adding the VM's one
  NIC, device 0 (xapi refuses a second device 0: DEVICE_ALREADY_EXISTS).
- In a pool, VM.start may place a VM on any member: VMs are started with
  VM.start_on on this host (the pool host whose address is the inventory's
  `address` or `url` host), where labctl builds the bridge.
- Logging in to a member answers HOST_IS_SLAVE with the master's address: the
  session follows it (xenapi_session.py, which also does TLS and the errors).

- Each VM gets its NoCloud seed (seed.py: its address, the lab's MTU and SSH key) as a
  read-only CD, unless `seed: none`: a VDI of the ISO's size on the SR `seed_sr:` names
  (else the pool's default SR), other_config `labctl-seed` naming it; the ISO goes up
  with HTTP PUT /import_raw_vdi (xapi's handler: session_id, vdi, format=raw, task_id),
  sent as xe sends it (xapi_http.py): headers, xapi's answer, then the body. The
  outcome is the task's, since xapi answers 200 before it reads the body. When the host
  labctl talks to does not reach the SR (the master, when this host is a member and the
  SR its local storage), xapi answers 302 with the URL of a member that does and the
  same query: labctl follows it with the same TLS settings, never to plain http from
  https, at most a few times, and says why in one line when it does not. Then a CD VBD,
  mode RO, not bootable, on the first free device from 3, attached when the VM starts.
  xapi before 1.9.60 takes a CD only from an ISO SR (VBD.create: VDI_IS_NOT_ISO [vdi,
  content type]): there the seed goes on a read-only Disk VBD instead, which cloud-init
  finds the same way (the filesystem label cidata, on any block device), and the progress
  line says so. `down` stops the VM and removes the VBD and the VDI (VBD.destroy refuses
  one attached to a running VM).

- The way in (`mgmt: {network: NAME, subnet: CIDR, first: ADDRESS}`): each VM gets a
  second VIF, device 1 (dom0 names it vif<domid>.1), on the xapi network whose name label
  is NAME, which must be one network (not two of that name) and not the lab's; its seed
  gives that NIC (MAC 06:…) a static address of the subnet (mgmt.py). labctl reaches
  the guest over SSH through its SSH connection to dom0 (way_in.py), so dom0 needs an
  address of the subnet on that network's bridge (`labctl doctor` checks it).

Journal records carry the XenAPI URL, user, password file and TLS settings (never
the password) and the name labels labctl gave, so `down` removes exactly the VMs
(with their VIFs and disks) and the network it created.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlsplit

from pydantic import Field

from labctl import secrets
from labctl.drivers import guests, mgmt, seed, xapi_http
from labctl.drivers.base import DoctorCheck, LabSession, PlannedStep, Problem
from labctl.drivers.remote import LOCAL_ADDRESSES, RealHostDriver
from labctl.drivers.way_in import SshWayIn
from labctl.drivers.xenapi_session import XapiError, XenApi, XenApiTarget
from labctl.errors import InputError, ProvisionError
from labctl.faults import Fault
from labctl.fieldtypes import PATH_PATTERN, HostField
from labctl.model import VM, Host
from labctl.plan import DEFAULT_FAIL_MODE
from labctl.state import LabState

DEFAULT_TEMPLATE = "Other install media"
# xapi refuses a bridge name that starts with one of these (xen-api: xapi_network.ml);
# labctl's names are 11 characters at most, within xapi's 15.
RESERVED_BRIDGE_PREFIXES = ("xen", "xapi", "vif", "tap", "eth")
# What ovs-xapi-sync sets on the bridge of a xapi network, from the network's
# other_config: the lab bridge's own settings (plan.py), so it leaves them alone.
XAPI_SYNC_CONFIG = {"vswitch-controller-fail-mode": DEFAULT_FAIL_MODE, "vswitch-disable-in-band": "true"}
SEED_MARK = "labctl-seed"  # in a seed VDI's other_config: the VDI's name label, so down knows it is labctl's
SEED_FIRST_DEVICE = 3  # CD drives sit at userdevice 3 on XenServer; the seed takes the first free from there
SEED_ON_A_DISK = "read-only disk: this xapi takes a CD only from an ISO SR (VDI_IS_NOT_ISO)"
IMPORT_RAW_VDI = "/import_raw_vdi"
TASK_WAIT_S = 300.0  # an import of a few hundred kB; a task still pending after this is stuck
MGMT_DEVICE = "1"  # the management VIF: vif<domid>.1 in dom0, after the lab's device 0
MGMT_HINT = (
    "set mgmt: {network: NAME, subnet: CIDR} (a xapi network other than the lab's, whose bridge "
    "dom0 has an address on)"
)


def _label(lab: str, name: str) -> str:
    return f"lc-{lab}-{name}"


def network_record(lab: str, label: str, bridge: str, mtu: int) -> dict:
    """The lab's network, on a bridge of the lab's name (not xapi's own xapiN)."""
    return {
        "name_label": label,
        "name_description": f"labctl lab {lab}",
        "MTU": str(mtu),
        "other_config": dict(XAPI_SYNC_CONFIG),
        "bridge": bridge,
    }


def seed_label(lab: str, vm: str) -> str:
    return f"lc-{lab}-{vm}-seed"


def seed_vdi_record(lab: str, vm: str, sr: str, size: int | str) -> dict:
    """The seed's VDI: exactly the ISO's size, marked as labctl's for `down`."""
    label = seed_label(lab, vm)
    return {
        "name_label": label,
        "name_description": f"labctl lab {lab}: NoCloud seed of {vm}",
        "SR": sr,
        "virtual_size": str(size),  # XML-RPC has no 64-bit int: xapi takes int64 fields as strings
        "type": "user",
        "sharable": False,
        "read_only": False,
        "other_config": {SEED_MARK: label},
        "xenstore_data": {},
        "sm_config": {},
        "tags": [],
    }


def seed_vbd_record(vm_ref: str, vdi: str, userdevice: str, kind: str = "CD") -> dict:
    """The seed's drive: a read-only CD (xapi refuses a read-write one), not bootable; on an
    older xapi that takes a CD only from an ISO SR, kind Disk: a read-only disk."""
    return {
        "VM": vm_ref,
        "VDI": vdi,
        "userdevice": userdevice,
        "bootable": False,
        "mode": "RO",
        "type": kind,
        "unpluggable": True,
        "empty": False,
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    }


def vif_record(vm_ref: str, device: str, network: str, mac: str, mtu: int | str) -> dict:
    """A NIC of the VM: device 0 (dom0 names it vif<domid>.0) on the lab's network, with the
    VM's MAC; with mgmt:, device 1 on the management network."""
    return {
        "device": device,
        "network": network,
        "VM": vm_ref,
        "MAC": mac,
        "MTU": str(mtu),
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    }


class XenServerDriver(SshWayIn, RealHostDriver):
    name = "xenserver"
    host_fields = {
        "image": guests.IMAGE,  # the VM template's name label
        "url": HostField(
            str | None, Field(default=None, pattern=r"^https?://[A-Za-z0-9_.:\[\]/-]+$")
        ),  # XenAPI
        "password_file": HostField(str | None, Field(default=None, pattern=PATH_PATTERN)),  # XenAPI password
        # the CA (or the host's own self-signed certificate) that XenAPI's TLS certificate is checked against
        "tls_ca_file": HostField(str | None, Field(default=None, pattern=PATH_PATTERN)),
        "tls_verify": HostField(bool, Field(default=True)),  # false: no certificate check (logged)
        # each guest's NoCloud seed as a CD (address, MTU, the lab's key); none: an image without cloud-init
        "seed": seed.FIELD,
        # the name label of the SR the seeds' VDIs go on; default: the pool's default SR
        "seed_sr": HostField(str | None, Field(default=None, pattern=r"^[^\x00-\x1f]{1,255}$")),
        # the guests' way in: a second VIF on the xapi network `network:` names (not the lab's), an
        # address of subnet
        "mgmt": mgmt.FIELD,
    }
    mgmt_hint = MGMT_HINT

    def __init__(self, session: LabSession, host: Host):
        super().__init__(session, host)
        options = host.options
        self.url = options["url"] or f"https://{(host.address or 'localhost').rpartition('@')[2]}"
        self.user = host.access.user or "root"
        self.password_file = options["password_file"]
        self.template = options["image"] or DEFAULT_TEMPLATE
        self.target = XenApiTarget(
            self.url, self.user, self.password_file, options["tls_ca_file"], options["tls_verify"]
        )
        self._api: XenApi | None = None
        self._here: str | None = None  # this host's ref in the pool
        self._lock = threading.Lock()
        self._domids: dict[str, int] = {}
        self.init_way_in(host)

    @classmethod
    def inventory_problems(cls, name, host, simulate: bool) -> list[Problem]:
        problems = super().inventory_problems(name, host, simulate)
        if host.tls_ca_file and not host.tls_verify:
            problems.append(
                (
                    ("hosts", name, "tls_ca_file"),
                    "with tls_verify: false no certificate is checked; leave one out",
                )
            )
        return problems + mgmt.field_problems(name, host, simulate, form="network")

    @classmethod
    def lab_problems(cls, spec, simulate: bool) -> list[Problem]:
        if simulate:
            return []
        problems: list[Problem] = []
        if spec.bridge.startswith(RESERVED_BRIDGE_PREFIXES):
            problems.append(
                (
                    ("bridge",),
                    f"xapi refuses bridge names starting with {', '.join(RESERVED_BRIDGE_PREFIXES[:-1])} or "
                    "eth (INVALID_VALUE) for the lab's network on the xenserver hosts; name it otherwise, "
                    "like br0",
                )
            )
        lab_network = _label(spec.name, spec.bridge)
        for name, host in spec.hosts.items():
            if host.driver == cls.name and host.mgmt is not None and host.mgmt.network == lab_network:
                problems.append(
                    (
                        ("hosts", name, "mgmt", "network"),
                        f"{lab_network} is the lab's network: the way in goes on another one",
                    )
                )
        return problems

    def api(self) -> XenApi:
        with self._lock:
            if self._api is None:
                self._api = XenApi(self.host.name, self.target)
            return self._api

    def _where(self) -> dict:
        return self.target.to_record()

    def this_host(self, api: XenApi) -> str:
        """This host's ref in its pool: the pool host whose address, hostname or name label
        is the host part of the inventory's `address`, else of `url`."""
        if self._here is not None:
            return self._here
        hosts = api.call("list the pool's hosts", "host.get_all_records")
        names = [
            name
            for name in ((self.host.address or "").rpartition("@")[2], urlsplit(self.url).hostname or "")
            if name and name not in LOCAL_ADDRESSES
        ]
        found = [
            ref
            for ref, rec in hosts.items()
            if {rec.get("address"), rec.get("hostname"), rec.get("name_label")} & set(names)
        ]
        if not found and len(hosts) == 1:
            found = list(hosts)
        if not found:
            members = ", ".join(f"{r.get('name_label')} ({r.get('address')})" for r in hosts.values())
            raise ProvisionError(
                self.host.name,
                "find this host in its pool",
                f"no pool host ({members}) is {' or '.join(names) or 'named in the inventory'}: "
                "set address: (or url:) to this host's management address",
            )
        self._here = found[0]
        return self._here

    def _host_label(self, api: XenApi, ref: str) -> str:
        record = api.call("list the pool's hosts", "host.get_all_records").get(ref, {})
        return f"{record.get('name_label', ref)} ({record.get('address', '?')})"

    # --- up ---
    def prepare(self) -> None:
        self.this_host(self.api())  # a wrong password or an unknown host fails here, before dom0 is touched
        if self.mgmt is not None and self.host.vms:
            self._mgmt_network(self.api())  # so does a management network that is not one network
        self.check_ovs()

    def doctor_checks(self) -> list[DoctorCheck]:
        def login():
            api = self.api()
            master = f" (a pool member: its master is {api.url})" if api.followed_master else ""
            return True, f"logged in to XenAPI at {self.url} as {self.user}{master}"

        def in_pool():
            api = self.api()
            return True, f"this host is {self._host_label(api, self.this_host(api))} in its pool"

        def mgmt_network():
            spec = self.mgmt
            assert spec is not None
            _, bridge = self._mgmt_network(self.api())
            own = mgmt.host_address(self._transport, bridge, spec)
            if own is None:
                return False, mgmt.no_host_address(bridge, spec, "dom0")
            return True, f"network {spec.network!r} is on bridge {bridge}; dom0 is {own} there"

        checks = [("XenAPI login", login), ("XenAPI host", in_pool)]
        if self.seeded:
            checks.append(("NoCloud seeds", seed.doctor_check))
        if self.mgmt is not None:
            checks.append(("management network", mgmt_network))
        return checks

    def finish(self) -> None:
        api, lab = self.api(), self.session.lab
        network = self._ensure_network(api, lab.bridge)
        way_in = self._mgmt_network(api)[0] if self.mgmt is not None and self.host.vms else None
        here = self.this_host(api)
        for vm in self.host.vms:
            self._ensure_vm(api, vm, network, way_in, here)

    # --- the way in: the management network, found by its name label ---
    def _mgmt_network(self, api: XenApi) -> tuple[str, str]:
        """The management network's ref and bridge: exactly one network of that name, not
        the lab's (one line naming the field otherwise)."""
        spec = self.mgmt
        assert spec is not None
        step = "find the management network"
        refs = api.call(step, "network.get_by_name_label", spec.network)
        if len(refs) != 1:
            found = "no XenAPI network is" if not refs else f"{len(refs)} XenAPI networks are"
            raise ProvisionError(
                self.host.name,
                step,
                f"{found} named {spec.network!r} (mgmt.network): name one network, by its name label "
                "(xe network-list)",
            )
        bridge = api.call(step, "network.get_bridge", refs[0])
        if bridge == self.session.lab.bridge:
            raise ProvisionError(
                self.host.name,
                step,
                f"network {spec.network!r} is on {bridge}, the lab's bridge: the way in goes on another "
                "network",
            )
        return refs[0], bridge

    def faults(self) -> list[Fault]:
        """Besides dom0's OVS: the management network gone (the guests' way in with it)."""
        faults = super().faults()
        if self.mgmt is None or not self.host.vms:
            return faults
        api = self.api()  # XenAPI not answering is not about the network: the host cannot be read
        try:
            self._mgmt_network(api)
        except ProvisionError as exc:
            faults.append(
                Fault(
                    f"management network: {exc.detail}",
                    "up cannot repair this: name a network that is there (mgmt.network), then down and up",
                )
            )
        return faults

    def _ensure_network(self, api: XenApi, bridge: str) -> str:
        label = _label(self.session.lab.name, bridge)
        step = "create the lab network"
        network = api.one("find the lab network", "network", label)
        if network is None:
            self.record("xenserver-network", name_label=label, **self._where())
            try:
                network = api.call(
                    step,
                    "network.create",
                    network_record(self.session.lab.name, label, bridge, self.session.lab.mtu),
                )
            except XapiError as exc:
                if exc.code == "BRIDGE_NAME_EXISTS":
                    raise ProvisionError(
                        self.host.name,
                        step,
                        f"another XenAPI network already has bridge {bridge} (BRIDGE_NAME_EXISTS): "
                        "name the lab's bridge otherwise (`bridge:`), or remove that network",
                    ) from None
                if exc.code == "INVALID_VALUE":
                    raise ProvisionError(
                        self.host.name, step, f"xapi refuses the bridge name {bridge} (INVALID_VALUE)"
                    ) from None
                raise
            self.session.report.changed(self.host.name, f"XenAPI network {label}")
        actual = api.call("read the network's bridge", "network.get_bridge", network)
        if actual != bridge:
            raise ProvisionError(
                self.host.name,
                "map the lab bridge",
                f"XenAPI network {label} is on bridge {actual}, not {bridge}: it was made for another "
                f"bridge name; remove it (`labctl down`, or `xe network-destroy`) and run up again",
            )
        self._ensure_sync_config(api, network, label)
        return network

    def _ensure_sync_config(self, api: XenApi, network: str, label: str) -> None:
        """The other_config ovs-xapi-sync reads (a network made by an older labctl lacks it)."""
        have = api.call("read the network's other_config", "network.get_other_config", network)
        for key, value in XAPI_SYNC_CONFIG.items():
            if have.get(key) == value:
                continue
            if key in have:  # xapi refuses to add a key that is there (MAP_DUPLICATE_KEY)
                api.call(f"set {key} on {label}", "network.remove_from_other_config", network, key)
            api.call(f"set {key} on {label}", "network.add_to_other_config", network, key, value)
            self.session.report.changed(self.host.name, f"XenAPI network {label}: other_config {key}={value}")

    def _ensure_vm(self, api: XenApi, vm: VM, network: str, way_in: str | None, here: str) -> None:
        label = _label(self.session.lab.name, vm.name)
        ref = api.one(f"find VM {vm.name}", "VM", label)
        if ref is None:
            template = api.one(f"find template {self.template}", "VM", self.template)
            if template is None:
                raise InputError(f"host {self.host.name}: no VM template named {self.template!r} (image:)")
            self.record("xenserver-vm", name_label=label, **self._where())
            ref = api.call(f"clone VM {vm.name}", "VM.clone", template, label)
            api.call(f"provision VM {vm.name}", "VM.provision", ref)
            self.session.report.changed(self.host.name, f"VM {vm.name} from template {self.template}")
        if api.call(f"read {vm.name}'s power state", "VM.get_power_state", ref) != "Running":
            self._ensure_nics(api, vm, ref, network, way_in)
            if self.seeded:
                self._ensure_seed(api, vm, ref)
            api.call(f"start VM {vm.name} on {self.host.name}", "VM.start_on", ref, here, False, False)
            self.session.report.changed(self.host.name, f"started VM {vm.name}")
        resident = api.call(f"read where {vm.name} runs", "VM.get_resident_on", ref)
        if resident != here:
            raise ProvisionError(
                self.host.name,
                f"check where {vm.name} runs",
                f"VM {label} runs on {self._host_label(api, resident)}, not on this host, where the lab's "
                f"bridge is: shut it down (`xe vm-shutdown vm={label}`) and run up again",
            )
        self._domids[vm.name] = int(api.call(f"read {vm.name}'s domain id", "VM.get_domid", ref))

    def _ensure_nics(self, api: XenApi, vm: VM, ref: str, network: str, way_in: str | None) -> None:
        """The halted VM has device 0 on the lab network with the VM's MAC and, with mgmt:,
        device 1 on the management network with its management MAC; any other NIC (the
        clone copied its template's) goes, as xapi refuses a second device 0 or 1."""
        wanted = {"0": (network, vm.mac)}
        if way_in is not None:
            wanted[MGMT_DEVICE] = (way_in, mgmt.mgmt_mac(vm))
        for vif in api.call(f"list {vm.name}'s NICs", "VM.get_VIFs", ref):
            record = api.call(f"read a NIC of {vm.name}", "VIF.get_record", vif)
            if wanted.get(record["device"]) == (record["network"], record["MAC"].lower()):
                del wanted[record["device"]]  # there already, as it should be
                continue
            api.call(f"remove NIC {record['device']} of {vm.name}", "VIF.destroy", vif)
            self.session.report.changed(self.host.name, f"removed NIC {record['device']} of VM {vm.name}")
        for device, (on, mac) in sorted(wanted.items()):
            mtu = (
                self.session.lab.mtu
                if device == "0"
                else api.call("read the network's MTU", "network.get_MTU", on)
            )
            api.call(f"add VIF {device} to {vm.name}", "VIF.create", vif_record(ref, device, on, mac, mtu))

    # --- the NoCloud seed: a VDI uploaded with import_raw_vdi, a read-only CD VBD ---
    def seed_sr(self, api: XenApi) -> str:
        """The SR `seed_sr:` names, else the pool's default SR."""
        name = self.host.options["seed_sr"]
        if name:
            found = api.call(f"find SR {name}", "SR.get_by_name_label", name)
            if not found:
                raise InputError(f"host {self.host.name}: no SR named {name!r} (seed_sr:)")
            return found[0]
        [pool] = api.call("find the pool", "pool.get_all")
        sr = api.call("read the pool's default SR", "pool.get_default_SR", pool)
        if sr == "OpaqueRef:NULL":
            raise ProvisionError(
                self.host.name,
                "choose an SR for the seeds",
                "the pool has no default SR: name the SR for the guests' seeds with seed_sr:",
            )
        return sr

    def _ensure_seed(self, api: XenApi, vm: VM, ref: str) -> None:
        """The halted VM has its seed on a CD: kept when it is there, else made again (an
        up killed half way leaves a VDI without its VBD, or without its data)."""
        label = seed_label(self.session.lab.name, vm.name)
        for vdi in _seed_vdis(api, label):
            vbds = api.call(f"list the drives of {label}", "VDI.get_VBDs", vdi)
            if any(api.call("read a drive's VM", "VBD.get_VM", vbd) == ref for vbd in vbds):
                return
            _destroy_seed_vdi(api, vdi, label)
        self.record(
            "xenserver-seed", name_label=label, vm=_label(self.session.lab.name, vm.name), **self._where()
        )
        image = seed.build(self.session, vm, _label(self.session.lab.name, vm.name), self.mgmt_nic(vm))
        record = seed_vdi_record(self.session.lab.name, vm.name, self.seed_sr(api), len(image))
        vdi = api.call(f"create the seed VDI of {vm.name}", "VDI.create", record)
        self._upload(api, vdi, image, f"upload the seed of {vm.name}")
        drive = self._attach_seed(api, vm, ref, vdi)
        self.session.report.changed(self.host.name, f"NoCloud seed of VM {vm.name} (VDI {label}, {drive})")

    def _attach_seed(self, api: XenApi, vm: VM, ref: str, vdi: str) -> str:
        """A read-only CD drive holding the seed; what kind of drive it became. xapi before
        1.9.60 (xen-api commit "Allow ISO VBDs to be made from any SR", December 2014) takes
        a CD only from an ISO SR: VBD.create answers VDI_IS_NOT_ISO [vdi, content type],
        and the seed goes on a read-only disk instead, where NoCloud finds it all the same
        (cloud-init looks for an iso9660 or vfat filesystem labelled cidata on any block
        device, CD or disk)."""
        device = self._free_device(api, vm, ref)
        try:
            api.call(f"attach the seed of {vm.name} as a CD", "VBD.create", seed_vbd_record(ref, vdi, device))
            return "read-only CD"
        except XapiError as exc:
            if exc.code != "VDI_IS_NOT_ISO":
                raise
        api.call(
            f"attach the seed of {vm.name} as a read-only disk",
            "VBD.create",
            seed_vbd_record(ref, vdi, device, kind="Disk"),
        )
        return SEED_ON_A_DISK

    def _free_device(self, api: XenApi, vm: VM, ref: str) -> str:
        used = {
            api.call(f"read a drive of {vm.name}", "VBD.get_userdevice", vbd)
            for vbd in api.call(f"list {vm.name}'s drives", "VM.get_VBDs", ref)
        }
        device = SEED_FIRST_DEVICE
        while str(device) in used:
            device += 1
        return str(device)

    def _upload(self, api: XenApi, vdi: str, data: bytes, step: str) -> None:
        """PUT the raw bytes to import_raw_vdi (at the pool member xapi redirects it to when the
        host labctl talks to does not reach the SR) and wait for its task, which says whether
        they were written (the HTTP answer does not)."""
        task = api.call(step, "task.create", f"labctl: {step}", "")
        try:
            xapi_http.put(api, step, IMPORT_RAW_VDI, {"vdi": vdi, "format": "raw", "task_id": task}, data)
            deadline = time.monotonic() + TASK_WAIT_S
            while (status := api.call(step, "task.get_status", task)) == "pending":
                if time.monotonic() > deadline:
                    raise ProvisionError(
                        self.host.name, step, f"the import task is still pending after {TASK_WAIT_S:.0f} s"
                    )
                time.sleep(0.2)
            if status != "success":
                error = api.call(step, "task.get_error_info", task)
                raise ProvisionError(
                    self.host.name, step, f"the import task {status}: {' '.join(map(str, error))}"
                )
        finally:
            try:
                api.call(step, "task.destroy", task)
            except ProvisionError:
                pass  # xapi removes finished tasks on its own

    # --- plan: what prepare() and finish() do, described ---
    def planned_host_steps(self) -> list[PlannedStep]:
        password = f"${secrets.env_name(self.host.name)} or $LABCTL_PASSWORD"
        if self.password_file:
            password += f" or {self.password_file}"
        tls = ""
        if self.url.startswith("https"):
            tls = (
                ", TLS not verified"
                if not self.target.verify
                else f", TLS verified against {self.target.ca_file or 'the system CAs'}"
            )
        bridge = self.session.lab.bridge
        label = _label(self.session.lab.name, bridge)
        record = network_record(self.session.lab.name, label, bridge, self.session.lab.mtu)
        way_in = []
        if self.mgmt is not None and self.host.vms:
            way_in = [
                PlannedStep(
                    f"find the management network {self.mgmt.network!r} (exactly one of that name, not the "
                    f"lab's): the guests' second VIF, {mgmt.address_range(self.mgmt, len(self.host.vms))}, "
                    "labctl's way in over SSH through dom0",
                    api="XenAPI network.get_by_name_label; network.get_bridge",
                )
            ]
        return [
            PlannedStep(
                f"log in to XenAPI at {self.url} as {self.user} (password from {password}{tls}); "
                "a pool member refers to its master",
                api="XenAPI session.login_with_password",
            ),
            PlannedStep(
                "find this host in its pool (its address or the URL's host)",
                api="XenAPI host.get_all_records",
            ),
            *self.planned_reach_steps(),
            PlannedStep(
                f"network {label} on bridge {bridge}, MTU {self.session.lab.mtu}, other_config telling "
                "ovs-xapi-sync the bridge's fail mode and in-band setting",
                api="XenAPI network.create(network record)",
                files=(("network record", json.dumps(record, indent=2)),),
            ),
            *way_in,
        ]

    def planned_vm_steps(self, vm: VM) -> list[PlannedStep]:
        label = _label(self.session.lab.name, vm.name)
        network = _label(self.session.lab.name, self.session.lab.bridge)
        record = vif_record(f"<VM {label}>", "0", f"<network {network}>", vm.mac, self.session.lab.mtu)
        return [
            PlannedStep(
                f"VM {label} cloned from template {self.template!r}",
                api=f"XenAPI VM.clone(template {self.template!r}, {label!r})",
            ),
            PlannedStep(f"provision {label}'s disks", api="XenAPI VM.provision"),
            PlannedStep(f"remove the NICs {label} copied from its template", api="XenAPI VIF.destroy"),
            PlannedStep(
                f"VIF 0 of {label} on network {network}, MAC {vm.mac}, MTU {self.session.lab.mtu}",
                api="XenAPI VIF.create(VIF record)",
                files=(("VIF record", json.dumps(record, indent=2)),),
            ),
            *self.planned_mgmt_vif_steps(vm, label),
            *self.planned_seed_steps(vm, label),
            PlannedStep(
                f"start {label} on this host", api="XenAPI VM.start_on(this host, paused=False, force=False)"
            ),
        ]

    def planned_mgmt_vif_steps(self, vm: VM, label: str) -> list[PlannedStep]:
        nic = self.mgmt_nic(vm)
        if nic is None or self.mgmt is None:
            return []
        network = f"<network {self.mgmt.network}>"
        record = vif_record(f"<VM {label}>", MGMT_DEVICE, network, nic[0], "<the network's MTU>")
        return [
            PlannedStep(
                f"VIF {MGMT_DEVICE} of {label} on network {self.mgmt.network!r} (the way in), MAC {nic[0]}, "
                f"{nic[1]} in its seed",
                api="XenAPI VIF.create(VIF record)",
                files=(("management VIF record", json.dumps(record, indent=2)),),
            )
        ]

    def planned_seed_steps(self, vm: VM, label: str) -> list[PlannedStep]:
        if not self.seeded:
            return []
        lab = self.session.lab
        sr = self.host.options["seed_sr"]
        where = f"SR {sr!r}" if sr else "the pool's default SR"
        vdi = seed_vdi_record(lab.name, vm.name, f"<{where}>", "<the ISO's size>")
        vbd = seed_vbd_record(
            f"<VM {label}>", f"<VDI {vdi['name_label']}>", f"<first free from {SEED_FIRST_DEVICE}>"
        )
        disk = {**vbd, "type": "Disk"}
        return [
            PlannedStep(
                f"NoCloud seed of {vm.name} ({vm.ip}, MTU {lab.mtu}"
                + (f", management {nic[1]}" if (nic := self.mgmt_nic(vm)) else "")
                + ", the lab's SSH key): "
                f"VDI {vdi['name_label']} of the ISO's size on {where}",
                api="XenAPI VDI.create(VDI record)",
                files=(("VDI record", json.dumps(vdi, indent=2)),),
            ),
            PlannedStep(
                f"upload the ISO into {vdi['name_label']} (following a redirect to the pool member that "
                "reaches the SR), then wait for its task",
                api=f"XenAPI task.create; HTTP PUT {IMPORT_RAW_VDI}?session_id=…&vdi=<VDI>&format=raw"
                "&task_id=<task>",
            ),
            PlannedStep(
                f"read-only CD drive of {label} holding the seed, attached when it starts; where xapi "
                "takes a CD only from an ISO SR (VDI_IS_NOT_ISO, xapi before 1.9.60), a read-only disk "
                "instead",
                api="XenAPI VBD.create(VBD record)",
                files=(
                    ("VBD record", json.dumps(vbd, indent=2)),
                    ("VBD record if VDI_IS_NOT_ISO", json.dumps(disk, indent=2)),
                ),
            ),
        ]

    def planned_vm_port(self, vm: VM) -> str:
        return "vif<domid>.0, the domain id xapi gives it; xapi plugs it into the bridge"

    def vm_port(self, vm: VM) -> str:
        """vif<domid>.0: the domain id comes from XenAPI (known once the VM runs on this host)."""
        if vm.name not in self._domids:
            api = self.api()
            ref = api.one(f"find VM {vm.name}", "VM", _label(self.session.lab.name, vm.name))
            if ref is None:
                return f"vif?.0 ({vm.name} not created)"
            if api.call(f"read where {vm.name} runs", "VM.get_resident_on", ref) != self.this_host(api):
                return f"vif?.0 ({vm.name} not running on {self.host.name})"
            self._domids[vm.name] = int(api.call("read the domain id", "VM.get_domid", ref))
        return f"vif{self._domids[vm.name]}.0"

    # --- down ---
    @classmethod
    def undo(cls, record: dict, state: LabState) -> None:
        if record["kind"] not in ("xenserver-vm", "xenserver-network", "xenserver-seed"):
            return super().undo(record, state)  # a bridge labctl added in dom0
        api = XenApi(record["host"], XenApiTarget.from_record(record))
        try:
            label = record["name_label"]
            if record["kind"] == "xenserver-seed":
                for vdi in _seed_vdis(api, label):
                    _destroy_seed_vdi(api, vdi, label)
            elif record["kind"] == "xenserver-vm":
                for ref in api.call(f"find VM {label}", "VM.get_by_name_label", label):
                    _destroy_vm(api, ref, label)
            else:
                for ref in api.call(f"find network {label}", "network.get_by_name_label", label):
                    api.call(f"remove network {label}", "network.destroy", ref)
        finally:
            api.logout()


def _seed_vdis(api: XenApi, label: str) -> list[str]:
    """The seed VDIs of this label that labctl made (a VDI of the same name without the mark stays)."""
    return [
        vdi
        for vdi in api.call(f"find VDI {label}", "VDI.get_by_name_label", label)
        if api.call(f"read {label}'s other_config", "VDI.get_other_config", vdi).get(SEED_MARK) == label
    ]


def _destroy_seed_vdi(api: XenApi, vdi: str, label: str) -> None:
    """Remove the seed's drives, then the VDI. A drive attached to a running VM cannot go
    (xapi: OPERATION_NOT_ALLOWED): that VM is labctl's, which down removes next; it stops."""
    for vbd in api.call(f"list the drives of {label}", "VDI.get_VBDs", vdi):
        if api.call("read whether a drive is attached", "VBD.get_currently_attached", vbd):
            vm = api.call("read a drive's VM", "VBD.get_VM", vbd)
            if api.call(f"read the power state of {label}'s VM", "VM.get_power_state", vm) != "Halted":
                api.call(f"stop the VM of {label}", "VM.hard_shutdown", vm)
        api.call(f"remove the drive of {label}", "VBD.destroy", vbd)
    api.call(f"remove VDI {label}", "VDI.destroy", vdi)


def _destroy_vm(api: XenApi, ref: str, label: str) -> None:
    """Stop the VM and remove it with its VIFs and the disks its clone made."""
    if api.call(f"read {label}'s power state", "VM.get_power_state", ref) != "Halted":
        api.call(f"stop VM {label}", "VM.hard_shutdown", ref)
    for vif in api.call(f"list {label}'s VIFs", "VM.get_VIFs", ref):
        api.call(f"remove a VIF of {label}", "VIF.destroy", vif)
    for vbd in api.call(f"list {label}'s disks", "VM.get_VBDs", ref):
        if api.call("read a disk's type", "VBD.get_type", vbd) == "Disk":
            vdi = api.call("find a disk's image", "VBD.get_VDI", vbd)
            api.call(f"remove a disk of {label}", "VDI.destroy", vdi)
    api.call(f"remove VM {label}", "VM.destroy", ref)
