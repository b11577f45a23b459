"""XenServer / XCP-ng hosts through the XenAPI SDK.

XenAPI creates the VMs (cloned from a template), their VIFs and the network
they sit on; dom0's Open vSwitch is configured with ovs-vsctl over SSH like any
host. XenServer names the bridges of networks it creates `xapiN`; labctl
creates its network with the lab's bridge name (`bridge: br0` in the network
record), so the VIFs land on the bridge the plan configures, and refuses to go
on if xapi picked another name (docs/drivers.md).

Journal records carry the XenAPI URL, user and password file (never the
password) and the name labels labctl gave, so `down` removes exactly the VMs
(with their VIFs and disks) and the network it created.
"""

from __future__ import annotations

import json
import threading

from pydantic import Field

from labctl import secrets
from labctl.drivers import guests
from labctl.drivers.base import DoctorCheck, LabSession, PlannedStep
from labctl.drivers.remote import RealHostDriver
from labctl.errors import InputError, ProvisionError
from labctl.fieldtypes import PATH_PATTERN, HostField
from labctl.model import VM, Host
from labctl.state import LabState

DEFAULT_TEMPLATE = "Other install media"


def _label(lab: str, name: str) -> str:
    return f"lc-{lab}-{name}"


def network_record(lab: str, label: str, bridge: str, mtu: int) -> dict:
    """The lab's network, on a bridge of the lab's name (not xapi's own xapiN), with the VMs' MTU."""
    return {
        "name_label": label,
        "name_description": f"labctl lab {lab}",
        "MTU": str(mtu),
        "other_config": {},
        "bridge": bridge,
    }


def vif_record(vm: VM, vm_ref: str, network: str, mtu: int) -> dict:
    """The VM's one NIC (device 0, so dom0 names it vif<domid>.0) on the lab's network."""
    return {
        "device": "0",
        "network": network,
        "VM": vm_ref,
        "MAC": vm.mac,
        "MTU": str(mtu),
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    }


class XenApi:
    """One logged-in XenAPI session; failures become one line naming the host."""

    def __init__(self, host: str, url: str, user: str, password_file: str | None):
        import XenAPI

        self.host, self.url, self.user = host, url, user
        self.session = XenAPI.Session(url, ignore_ssl=False)
        step = f"log in to XenAPI at {url}"
        try:
            self.session.xenapi.login_with_password(
                user, secrets.password(host, password_file), "2.0", "labctl"
            )
        except XenAPI.Failure as exc:
            detail = exc.details[0] if exc.details else str(exc)
            if detail == "SESSION_AUTHENTICATION_FAILED":
                detail = f"authentication failed for {user} (wrong password?)"
            raise ProvisionError(host, step, detail) from None
        except OSError as exc:
            raise ProvisionError(host, step, f"unreachable: {exc.strerror or exc}") from None
        self.api = self.session.xenapi

    def call(self, step: str, method: str, *args):
        import XenAPI

        obj, name = method.split(".")
        try:
            return getattr(getattr(self.api, obj), name)(*args)
        except XenAPI.Failure as exc:
            raise ProvisionError(self.host, step, " ".join(str(d) for d in exc.details)) from None
        except OSError as exc:
            raise ProvisionError(self.host, step, f"XenAPI unreachable: {exc.strerror or exc}") from None

    def one(self, step: str, cls: str, label: str) -> str | None:
        refs = self.call(step, f"{cls}.get_by_name_label", label)
        return refs[0] if refs else None

    def logout(self) -> None:
        try:
            self.session.xenapi.session.logout()
        except Exception:  # best effort: the session times out on its own
            pass


class XenServerDriver(RealHostDriver):
    name = "xenserver"
    host_fields = {
        "image": guests.IMAGE,  # the VM template's name label
        "url": HostField(
            str | None, Field(default=None, pattern=r"^https?://[A-Za-z0-9_.:\[\]/-]+$")
        ),  # XenAPI
        "password_file": HostField(str | None, Field(default=None, pattern=PATH_PATTERN)),  # XenAPI password
    }

    def __init__(self, session: LabSession, host: Host):
        super().__init__(session, host)
        options = host.options
        self.url = options["url"] or f"https://{(host.address or 'localhost').rpartition('@')[2]}"
        self.user = host.access.user or "root"
        self.password_file = options["password_file"]
        self.template = options["image"] or DEFAULT_TEMPLATE
        self._api: XenApi | None = None
        self._lock = threading.Lock()
        self._domids: dict[str, int] = {}

    def api(self) -> XenApi:
        with self._lock:
            if self._api is None:
                self._api = XenApi(self.host.name, self.url, self.user, self.password_file)
            return self._api

    def _where(self) -> dict:
        return {"url": self.url, "user": self.user, "password_file": self.password_file}

    # --- up ---
    def prepare(self) -> None:
        self.api()  # a wrong password fails here, before dom0 is touched
        self.check_ovs()

    def doctor_checks(self) -> list[DoctorCheck]:
        def login():
            self.api()
            return True, f"logged in to XenAPI at {self.url} as {self.user}"

        return [("XenAPI login", login)]

    def finish(self) -> None:
        api, lab = self.api(), self.session.lab
        network = self._ensure_network(api, lab.bridge)
        for vm in self.host.vms:
            self._ensure_vm(api, vm, network)

    def _ensure_network(self, api: XenApi, bridge: str) -> str:
        label = _label(self.session.lab.name, bridge)
        network = api.one("find the lab network", "network", label)
        if network is None:
            self.record("xenserver-network", name_label=label, **self._where())
            network = api.call(
                "create the lab network",
                "network.create",
                network_record(self.session.lab.name, label, bridge, self.session.lab.mtu),
            )
            self.session.report.changed(self.host.name, f"XenAPI network {label}")
        actual = api.call("read the network's bridge", "network.get_bridge", network)
        if actual != bridge:
            raise ProvisionError(
                self.host.name,
                "map the lab bridge",
                f"xapi put network {label} on bridge {actual}, not {bridge}; "
                f"set `bridge: {actual}` in the inventory (see docs/drivers.md)",
            )
        return network

    def _ensure_vm(self, api: XenApi, vm: VM, network: str) -> None:
        label = _label(self.session.lab.name, vm.name)
        ref = api.one(f"find VM {vm.name}", "VM", label)
        if ref is None:
            template = api.one(f"find template {self.template}", "VM", self.template)
            if template is None:
                raise InputError(f"host {self.host.name}: no VM template named {self.template!r} (image:)")
            self.record("xenserver-vm", name_label=label, **self._where())
            ref = api.call(f"clone VM {vm.name}", "VM.clone", template, label)
            api.call(f"provision VM {vm.name}", "VM.provision", ref)
            api.call(
                f"add a VIF to {vm.name}", "VIF.create", vif_record(vm, ref, network, self.session.lab.mtu)
            )
            self.session.report.changed(self.host.name, f"VM {vm.name} from template {self.template}")
        if api.call(f"read {vm.name}'s power state", "VM.get_power_state", ref) != "Running":
            api.call(f"start VM {vm.name}", "VM.start", ref, False, False)
            self.session.report.changed(self.host.name, f"started VM {vm.name}")
        self._domids[vm.name] = int(api.call(f"read {vm.name}'s domain id", "VM.get_domid", ref))

    # --- plan: what prepare() and finish() do, described ---
    def planned_host_steps(self) -> list[PlannedStep]:
        password = f"${secrets.env_name(self.host.name)} or $LABCTL_PASSWORD"
        if self.password_file:
            password += f" or {self.password_file}"
        bridge = self.session.lab.bridge
        label = _label(self.session.lab.name, bridge)
        record = network_record(self.session.lab.name, label, bridge, self.session.lab.mtu)
        return [
            PlannedStep(
                f"log in to XenAPI at {self.url} as {self.user} (password from {password})",
                api="XenAPI session.login_with_password",
            ),
            *self.planned_reach_steps(),
            PlannedStep(
                f"network {label} on bridge {bridge}, MTU {self.session.lab.mtu}",
                api="XenAPI network.create(network record)",
                files=(("network record", json.dumps(record, indent=2)),),
            ),
        ]

    def planned_vm_steps(self, vm: VM) -> list[PlannedStep]:
        label = _label(self.session.lab.name, vm.name)
        network = _label(self.session.lab.name, self.session.lab.bridge)
        record = vif_record(vm, f"<VM {label}>", f"<network {network}>", self.session.lab.mtu)
        return [
            PlannedStep(
                f"VM {label} cloned from template {self.template!r}",
                api=f"XenAPI VM.clone(template {self.template!r}, {label!r})",
            ),
            PlannedStep(f"provision {label}'s disks", api="XenAPI VM.provision"),
            PlannedStep(
                f"VIF 0 of {label} on network {network}, MAC {vm.mac}, MTU {self.session.lab.mtu}",
                api="XenAPI VIF.create(VIF record)",
                files=(("VIF record", json.dumps(record, indent=2)),),
            ),
            PlannedStep(f"start {label}", api="XenAPI VM.start(paused=False, force=False)"),
        ]

    def planned_vm_port(self, vm: VM) -> str:
        return "vif<domid>.0, the domain id xapi gives it; xapi plugs it into the bridge"

    def vm_port(self, vm: VM) -> str:
        """vif<domid>.0: the domain id comes from XenAPI (known once the VM runs)."""
        if vm.name not in self._domids:
            ref = self.api().one(f"find VM {vm.name}", "VM", _label(self.session.lab.name, vm.name))
            if ref is None:
                return f"vif?.0 ({vm.name} not created)"
            self._domids[vm.name] = int(self.api().call("read the domain id", "VM.get_domid", ref))
        return f"vif{self._domids[vm.name]}.0"

    # --- down ---
    @classmethod
    def undo(cls, record: dict, state: LabState) -> None:
        if record["kind"] not in ("xenserver-vm", "xenserver-network"):
            return super().undo(record, state)  # a bridge labctl added in dom0
        api = XenApi(record["host"], record["url"], record["user"], record.get("password_file"))
        try:
            label = record["name_label"]
            if record["kind"] == "xenserver-vm":
                for ref in api.call(f"find VM {label}", "VM.get_by_name_label", label):
                    _destroy_vm(api, ref, label)
            else:
                for ref in api.call(f"find network {label}", "network.get_by_name_label", label):
                    api.call(f"remove network {label}", "network.destroy", ref)
        finally:
            api.logout()


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
