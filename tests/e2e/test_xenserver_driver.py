"""The xenserver driver on the real XenAPI SDK, against a local pool of two hosts that
speaks the XenAPI wire protocol and keeps xapi's rules (tests/fakes/xenapi_server.py):
bridge names, VIF device numbers, placement in a pool and HOST_IS_SLAVE, HTTPS with a
self-signed certificate, the guests' NoCloud seeds (a VDI uploaded with import_raw_vdi,
followed to the member xapi redirects it to, on a read-only CD drive, or a read-only disk
on an older xapi), and what ovs-xapi-sync does to the bridge of a xapi network (against a
real dom0 Open vSwitch: ovsdb-server and ovs-vswitchd in a namespace)."""

from __future__ import annotations

import http.client
import io
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import XenAPI
import yaml

from labctl.build import HostBuilder
from labctl.drivers import DRIVERS, LabSession, xenserver
from labctl.drivers.xenserver import XenServerDriver
from labctl.errors import InputError, InventoryError, ProvisionError
from labctl.faults import Hides
from labctl.inventory import parse_inventory
from labctl.nocloud import read_iso
from labctl.ovs import Ovs, pending
from labctl.progress import Reporter
from labctl.state import LabState
from labctl.status import LabStatus, render_text
from tests.conftest import unique_name
from tests.fakes.xenapi_server import MASTER, MEMBER, FakeXenAPI
from tests.ovs_namespace import OvsNamespace

INVENTORY = """\
name: xs
controller: {{address: 10.250.0.254}}
hosts:
  xs1:
    driver: xenserver
    address: localhost
    url: {url}
    image: Debian Template
    password_file: {password_file}
{extra}    vms:
      vm1: {{ip: 172.16.0.1/24}}
      vm2: {{ip: 172.16.0.2/24}}
"""


@pytest.fixture
def xapi():
    server = FakeXenAPI(password="s3cret").start()
    yield server
    server.stop()


@pytest.fixture
def password_file(tmp_path, monkeypatch):
    monkeypatch.delenv("LABCTL_PASSWORD", raising=False)
    monkeypatch.delenv("LABCTL_PASSWORD_XS1", raising=False)
    path = tmp_path / "xs1.password"
    path.write_text("s3cret\n")
    return path


@pytest.fixture
def make_driver(tmp_path, password_file):
    """make_driver(url, extra="", kind=XenServerDriver) -> a driver for host xs1 of the lab."""

    def make(
        url: str,
        extra: str = "",
        kind: type[XenServerDriver] = XenServerDriver,
        report: Reporter | None = None,
    ) -> XenServerDriver:
        lab = parse_inventory(INVENTORY.format(url=url, password_file=password_file, extra=extra))
        state = LabState(lab.name, root=tmp_path / "state")
        return kind(LabSession(lab, state, report or Reporter(quiet=True)), lab.host("xs1"))

    return make


@pytest.fixture
def driver(xapi, make_driver):
    return make_driver(xapi.url)


def down(state: LabState) -> None:
    for record in reversed([r for r in state.records() if "driver" in r]):
        DRIVERS[record["driver"]].undo(record, state)


def resident(xapi: FakeXenAPI, label: str) -> str:
    [vm] = xapi.do_VM_get_by_name_label(label)
    return xapi.host_name(xapi.objects["VM"][vm]["resident_on"])


def test_up_creates_network_vms_and_vifs_on_br0(driver, xapi):
    driver.finish()
    network = xapi.changes()[0]
    assert network[0] == "network.create"
    assert network[1]["name_label"] == "lc-xs-br0" and network[1]["bridge"] == "br0"
    assert network[1]["MTU"] == "1462"  # 1500 - 38: what a GRE tunnel carries
    template = xapi.do_VM_get_by_name_label("Debian Template")[0]
    made = [c[0] for c in xapi.changes()]
    seeded = ["VDI.create", "task.create", "task.destroy", "VBD.create"]  # the upload is HTTP, between
    per_vm = ["VM.clone", "VM.provision", "VIF.destroy", "VIF.create", *seeded, "VM.start_on"]
    assert made == ["network.create"] + per_vm * 2
    clones = [c for c in xapi.changes() if c[0] == "VM.clone"]
    assert clones == [("VM.clone", template, "lc-xs-vm1"), ("VM.clone", template, "lc-xs-vm2")]
    vifs = [c[1] for c in xapi.changes() if c[0] == "VIF.create"]
    assert [(v["device"], v["MAC"], v["MTU"]) for v in vifs] == [
        ("0", "02:00:ac:10:00:01", "1462"),
        ("0", "02:00:ac:10:00:02", "1462"),
    ]
    assert {v["network"] for v in vifs} == set(xapi.do_network_get_by_name_label("lc-xs-br0"))
    # XenServer's port names: vif<domid>.<device>, the domain id from XenAPI
    lab = driver.session.lab
    assert [driver.vm_port(vm) for vm in lab.vms] == ["vif1.0", "vif2.0"]


def test_up_twice_changes_nothing(driver, xapi):
    driver.finish()
    before = len(xapi.changes())
    driver.finish()
    assert len(xapi.changes()) == before


def test_journal_holds_where_not_the_password(driver):
    driver.finish()
    records = driver.session.state.records()
    assert {r["kind"] for r in records} == {"xenserver-network", "xenserver-vm", "xenserver-seed"}
    assert all(r["driver"] == "xenserver" and r["host"] == "xs1" for r in records)
    assert all((r["tls_ca_file"], r["tls_verify"]) == (None, True) for r in records)
    assert "s3cret" not in (driver.session.state.dir / "journal.jsonl").read_text()


def test_down_undoes_exactly_what_up_made(driver, xapi):
    before = {cls: set(objs) for cls, objs in xapi.objects.items()}
    bystander = xapi.add(
        "VM", name_label="someone-elses", is_a_template=False, power_state="Running", VIFs=[], VBDs=[]
    )
    driver.finish()
    xapi.calls.clear()
    down(driver.session.state)
    removed = [c[0] for c in xapi.changes()]
    # newest first: the seed (its drive is attached: the VM stops first), the VM, then the network
    per_vm = ["VM.hard_shutdown", "VBD.destroy", "VDI.destroy", "VIF.destroy", "VDI.destroy", "VM.destroy"]
    assert removed == per_vm * 2 + ["network.destroy"]
    left = {cls: set(objs) for cls, objs in xapi.objects.items()}
    assert left == {cls: refs | ({bystander} if cls == "VM" else set()) for cls, refs in before.items()}
    down(driver.session.state)  # down again: everything is gone already, nothing fails


def test_wrong_password_is_one_line(driver, monkeypatch):
    monkeypatch.setenv("LABCTL_PASSWORD_XS1", "Tr0ub4dor")
    with pytest.raises(ProvisionError) as failed:
        driver.api()
    message = str(failed.value)
    assert message.startswith("xs1: log in to XenAPI at http://127.0.0.2:")
    assert "authentication failed for root" in message and "\n" not in message and "Tr0ub4dor" not in message


# --- the NoCloud seed: a VDI by import_raw_vdi, on a read-only CD drive ------------------


def seed_of(xapi: FakeXenAPI, vm: str) -> tuple[dict, list[dict]]:
    """The seed VDI of a VM of lab xs, and its drives."""
    [vdi] = xapi.do_VDI_get_by_name_label(f"lc-xs-{vm}-seed")
    record = xapi.objects["VDI"][vdi]
    return record, [xapi.objects["VBD"][v] for v in record["VBDs"]]


def test_each_vm_boots_with_its_seed_on_a_read_only_cd(driver, xapi):
    driver.finish()
    lab = driver.session.lab
    for vm in lab.vms:
        vdi, [drive] = seed_of(xapi, vm.name)
        [vm_ref] = xapi.do_VM_get_by_name_label(f"lc-xs-{vm.name}")
        assert (vdi["SR"], vdi["type"], vdi["read_only"]) == (xapi.local_sr, "user", False)  # the default SR
        assert vdi["other_config"] == {"labctl-seed": f"lc-xs-{vm.name}-seed"}
        assert int(vdi["virtual_size"]) == len(vdi["data"])  # the VDI is exactly the ISO
        label, files = read_iso(vdi["data"])
        assert label == "cidata" and set(files) == {"meta-data", "user-data", "network-config"}
        [nic] = yaml.safe_load(files["network-config"])["ethernets"].values()
        assert nic == {
            "match": {"macaddress": vm.mac},
            "addresses": [str(vm.ip)],
            "dhcp4": False,
            "mtu": 1462,
        }
        assert f"instance-id: lc-xs-{vm.name}" in files["meta-data"]
        assert (drive["VM"], drive["type"], drive["mode"], drive["bootable"], drive["empty"]) == (
            vm_ref,
            "CD",
            "RO",
            False,
            False,
        )
        assert drive["currently_attached"]  # attached when the VM started
        assert drive["userdevice"] == "4"  # 3 is the install media drive the template has
    assert all(driver.address_managed(vm) for vm in lab.vms)


def keep_seeds(monkeypatch) -> dict[str, bytes]:
    """Each seed ISO the driver builds, by VM name, to compare with what the pool received."""
    built: dict[str, bytes] = {}
    real_build = xenserver.seed.build

    def keep(session, vm, name, mgmt):
        built[vm.name] = real_build(session, vm, name, mgmt)
        return built[vm.name]

    monkeypatch.setattr(xenserver.seed, "build", keep)
    return built


def test_the_seed_goes_over_https_with_the_inventory_ca_and_matches_the_iso_bytes(
    https_xapi, make_driver, certificate, monkeypatch
):
    built = keep_seeds(monkeypatch)
    driver = make_driver(https_xapi.url, extra=f"    tls_ca_file: {certificate[0]}\n")
    driver.finish()
    assert {vm: seed_of(https_xapi, vm)[0]["data"] for vm in built} == built
    assert set(built) == {"vm1", "vm2"}


def test_down_removes_the_seed_drive_and_vdi_also_after_up_was_killed(driver, xapi, monkeypatch):
    def killed(*args):
        raise KeyboardInterrupt  # up killed between VDI.create and its upload

    monkeypatch.setattr(XenServerDriver, "_upload", killed)
    with pytest.raises(KeyboardInterrupt):
        driver.finish()
    assert xapi.do_VDI_get_by_name_label("lc-xs-vm1-seed")  # the VDI, without its drive
    monkeypatch.undo()
    again = type(driver)(driver.session, driver.host)
    again.finish()  # up again: the half-made seed is made again
    vdi, [drive] = seed_of(xapi, "vm1")
    assert read_iso(vdi["data"])[0] == "cidata" and drive["currently_attached"]
    down(driver.session.state)
    assert not any(r["name_label"].endswith("-seed") for r in xapi.objects["VDI"].values())
    assert all(v["VM"] in xapi.objects["VM"] for v in xapi.objects["VBD"].values())
    assert [v for v in xapi.objects["VBD"].values() if v["type"] == "CD"] == []  # the clones' too


def test_seed_sr_names_the_sr_and_an_unknown_one_is_one_line(xapi, make_driver):
    other = xapi.add("SR", name_label="Fast NFS", content_type="user", allowed_operations=["vdi_create"])
    driver = make_driver(xapi.url, extra="    seed_sr: Fast NFS\n")
    driver.finish()
    assert seed_of(xapi, "vm1")[0]["SR"] == other
    down(driver.session.state)
    wrong = make_driver(xapi.url, extra="    seed_sr: Nowhere\n")
    with pytest.raises(InputError, match=r"^host xs1: no SR named 'Nowhere' \(seed_sr:\)$"):
        wrong.finish()


def test_a_pool_without_a_default_sr_is_explained(driver, xapi):
    [pool] = xapi.objects["pool"].values()
    pool["default_SR"] = "OpaqueRef:NULL"
    with pytest.raises(ProvisionError) as failed:
        driver.finish()
    assert "the pool has no default SR: name the SR for the guests' seeds with seed_sr:" in str(failed.value)


def test_an_import_the_task_says_failed_is_one_line(driver, xapi, monkeypatch):
    """xapi answers 200 before it reads the body: only the task tells a failed import."""
    record = xenserver.seed_vdi_record
    monkeypatch.setattr(
        xenserver, "seed_vdi_record", lambda lab, vm, sr, size: record(lab, vm, sr, int(size) - 2048)
    )
    with pytest.raises(ProvisionError) as failed:
        driver.finish()
    message = str(failed.value)
    assert message.startswith("xs1: upload the seed of vm1 failed: the import task failure: INTERNAL_ERROR")
    assert "\n" not in message
    assert xapi.objects["task"] == {}  # labctl removes its task


@pytest.mark.parametrize("older", [False, True], ids=["xapi", "xapi-before-1.9.60"])
def test_the_seed_drive_is_a_cd_or_on_an_older_xapi_a_read_only_disk_and_down_removes_it(
    xapi, make_driver, older
):
    """xapi before 1.9.60 takes a CD only from an ISO SR (VDI_IS_NOT_ISO): the seed, on the
    default SR, goes on a read-only disk there, which cloud-init finds by its label alike."""
    xapi.cd_needs_iso_sr = older
    before = {cls: set(objs) for cls, objs in xapi.objects.items()}
    progress = io.StringIO()
    driver = make_driver(xapi.url, report=Reporter(stream=progress, live=False))
    driver.finish()
    kind = "Disk" if older else "CD"
    for vm in driver.session.lab.vms:
        vdi, [drive] = seed_of(xapi, vm.name)
        assert read_iso(vdi["data"])[0] == "cidata"
        assert (drive["type"], drive["mode"], drive["bootable"], drive["empty"], drive["userdevice"]) == (
            kind,
            "RO",
            False,
            False,
            "4",
        )
        assert drive["currently_attached"]
    tried = [c[1]["type"] for c in xapi.calls if c[0] == "VBD.create"]
    assert tried == (["CD", "Disk"] * 2 if older else ["CD"] * 2)
    said = (
        "read-only disk: this xapi takes a CD only from an ISO SR (VDI_IS_NOT_ISO)"
        if older
        else "read-only CD"
    )
    assert "[xs1] NoCloud seed of VM vm1 (VDI lc-xs-vm1-seed, " + said + ")\n" in progress.getvalue()
    again = len(xapi.changes())
    driver.finish()
    assert len(xapi.changes()) == again  # the drive is there, of whichever kind: nothing to do
    down(driver.session.state)
    assert {cls: set(objs) for cls, objs in xapi.objects.items()} == before


def test_seed_none_makes_no_vdi_and_the_address_is_not_managed(xapi, make_driver):
    driver = make_driver(xapi.url, extra="    seed: none\n")
    driver.finish()
    made = {c[0] for c in xapi.changes()}
    assert not made & {"VDI.create", "VBD.create", "task.create"}
    vm1 = driver.session.lab.vm("vm1")
    assert not driver.address_managed(vm1)
    assert driver.way_in(vm1) == "address not managed (seed: none): labctl has no way in"
    assert "xenserver-seed" not in {r["kind"] for r in driver.session.state.records()}
    assert not any("seed" in s.what for s in driver.planned_vm_steps(vm1))


# --- what the fake keeps of xapi's storage rules --------------------------------------------


def login(xapi: FakeXenAPI):
    session = XenAPI.Session(xapi.url)
    session.xenapi.login_with_password("root", "s3cret", "2.0", "test")
    return session


def test_the_fake_refuses_the_drives_and_vdis_xapi_refuses(xapi):
    session = login(xapi)
    api = session.xenapi
    template = api.VM.get_by_name_label("Debian Template")[0]
    vm = api.VM.clone(template, "t")
    vdi_record = xenserver.seed_vdi_record("t", "t", xapi.local_sr, 2048)
    for field in ("SR", "virtual_size", "other_config"):
        with pytest.raises(XenAPI.Failure) as refused:
            api.VDI.create({k: v for k, v in vdi_record.items() if k != field})
        assert refused.value.details == ["FIELD_TYPE_ERROR", field]
    with pytest.raises(XenAPI.Failure) as refused:
        api.VDI.create({**vdi_record, "SR": xapi.iso_sr})
    assert refused.value.details == ["SR_OPERATION_NOT_SUPPORTED", xapi.iso_sr]
    vdi = api.VDI.create(vdi_record)
    drive = xenserver.seed_vbd_record(vm, vdi, "4")
    for change, error in (
        ({"mode": "RW"}, ["VBD_CDS_MUST_BE_READONLY"]),
        ({"type": "Disk", "empty": True}, ["VBD_NOT_REMOVABLE_MEDIA", "in constructor"]),
        ({"userdevice": "3"}, ["DEVICE_ALREADY_EXISTS", "3"]),
        ({"VDI": "OpaqueRef:nope"}, ["HANDLE_INVALID", "VDI", "OpaqueRef:nope"]),
    ):
        with pytest.raises(XenAPI.Failure) as refused:
            api.VBD.create({**drive, **change})
        assert refused.value.details == error, change
    api.VBD.create({**drive, "VDI": "OpaqueRef:NULL", "empty": True, "userdevice": "5"})  # an empty CD
    cd = api.VBD.create(drive)
    api.VM.provision(vm)
    api.VM.start(vm, False, False)
    with pytest.raises(XenAPI.Failure) as refused:
        api.VBD.destroy(cd)
    assert refused.value.details[0] == "OPERATION_NOT_ALLOWED"
    with pytest.raises(XenAPI.Failure) as refused:
        api.VDI.destroy(vdi)
    assert refused.value.details == ["VDI_IN_USE", vdi, "destroy"]
    api.VM.hard_shutdown(vm)
    api.VDI.destroy(vdi)  # the drive goes with its VDI
    assert cd not in xapi.objects["VBD"] and len(api.VM.get_VBDs(vm)) == 3  # disk, drives 3 and 5
    session.xenapi.session.logout()


def test_the_fake_as_an_older_xapi_takes_a_cd_only_from_an_iso_sr(xapi):
    """xapi before 1.9.60: VBD.create of a CD checks the VDI's SR (assert_vdi_is_valid_iso)."""
    xapi.cd_needs_iso_sr = True
    session = login(xapi)
    api = session.xenapi
    vm = api.VM.clone(api.VM.get_by_name_label("Debian Template")[0], "t")
    vdi = api.VDI.create(xenserver.seed_vdi_record("t", "t", xapi.local_sr, 2048))
    iso = xapi.add("VDI", name_label="debian.iso", SR=xapi.iso_sr, other_config={}, VBDs=[])
    with pytest.raises(XenAPI.Failure) as refused:
        api.VBD.create(xenserver.seed_vbd_record(vm, vdi, "4"))
    assert refused.value.details == ["VDI_IS_NOT_ISO", vdi, "user"]
    with pytest.raises(XenAPI.Failure) as refused:  # the read-only rule comes first, as in xapi
        api.VBD.create({**xenserver.seed_vbd_record(vm, vdi, "4"), "mode": "RW"})
    assert refused.value.details == ["VBD_CDS_MUST_BE_READONLY"]
    api.VBD.create(xenserver.seed_vbd_record(vm, iso, "4"))  # an ISO of an ISO SR
    api.VBD.create(xenserver.seed_vbd_record(vm, vdi, "5", kind="Disk"))  # the seed, read-only disk
    xapi.cd_needs_iso_sr = False  # xapi since 1.9.60: a CD from any SR
    api.VBD.create(xenserver.seed_vbd_record(vm, vdi, "6"))
    session.xenapi.session.logout()


def put(
    xapi: FakeXenAPI, query: str, body: bytes, headers: dict | None = None, host: str = "127.0.0.2"
) -> int:
    conn = http.client.HTTPConnection(host, xapi.port, timeout=30)
    try:
        conn.request("PUT", f"/import_raw_vdi?{query}", body=body, headers=headers or {})
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


def test_the_fake_import_raw_vdi_answers_as_xapi_does(xapi):
    session = login(xapi)
    api, ref = session.xenapi, session._session
    vdi = api.VDI.create(xenserver.seed_vdi_record("t", "t", xapi.local_sr, 4096))
    uuid = xapi.objects["VDI"][vdi]["uuid"]
    assert put(xapi, f"vdi={vdi}", b"x") == 401  # no session
    assert put(xapi, f"session_id=OpaqueRef:gone&vdi={vdi}", b"x") == 401
    assert put(xapi, f"session_id={ref}&vdi=OpaqueRef:nope", b"x") == 500
    task = api.task.create("import", "")
    assert put(xapi, f"session_id={ref}&vdi={vdi}&format=qcow2&task_id={task}", b"x") == 404
    assert api.task.get_status(task) == "failure"
    assert put(xapi, f"session_id={ref}&vdi={vdi}", b"x", {"Transfer-Encoding": "chunked"}) == 403
    task = api.task.create("import", "")
    assert put(xapi, f"session_id={ref}&vdi={vdi}&format=raw&task_id={task}", b"y" * 4097) == 200
    assert api.task.get_status(task) == "failure"  # longer than the VDI: the task fails, not HTTP
    assert xapi.objects["VDI"][vdi]["data"] == b""
    task = api.task.create("import", "")
    assert put(xapi, f"session_id={ref}&vdi={uuid}&task_id={task}", b"z" * 4096) == 200  # by uuid, raw
    assert api.task.get_status(task) == "success" and xapi.objects["VDI"][vdi]["data"] == b"z" * 4096
    xapi.sr_hosts[xapi.local_sr] = xapi.hosts[MEMBER]  # local storage of the member: to the member
    task = api.task.create("import", "")
    query = f"session_id={ref}&vdi={vdi}&format=raw&task_id={task}"
    conn = http.client.HTTPConnection("127.0.0.2", xapi.port, timeout=30)
    conn.putrequest("PUT", f"/import_raw_vdi?{query}")
    conn.putheader("Content-Length", "4096")
    conn.endheaders()  # the answer comes before the body
    answer = conn.getresponse()
    assert (answer.status, answer.getheader("Location")) == (
        302,
        f"http://127.0.0.3:{xapi.port}/import_raw_vdi?{query}",
    )
    conn.close()
    assert api.task.get_status(task) == "pending"  # the member's import will finish it
    assert put(xapi, query, b"w" * 4096, host="127.0.0.3") == 200 and api.task.get_status(task) == "success"
    assert xapi.objects["VDI"][vdi]["data"] == b"w" * 4096
    assert xapi.puts[-2:] == [(MASTER, 302), (MEMBER, 200)]
    session.xenapi.session.logout()


# --- bridge names (xapi: INVALID_VALUE, BRIDGE_NAME_EXISTS) -------------------------------


def test_the_fake_refuses_the_bridge_names_xapi_refuses(xapi):
    session = XenAPI.Session(xapi.url)
    session.xenapi.login_with_password("root", "s3cret", "2.0", "test")
    record = {"name_label": "n", "name_description": "", "MTU": "1500", "other_config": {}}
    for name in ("xapi3", "xenbr9", "vif1.0", "tap0", "eth1", "b" * 16):
        with pytest.raises(XenAPI.Failure) as refused:
            session.xenapi.network.create({**record, "bridge": name})
        assert refused.value.details == ["INVALID_VALUE", "bridge", name]
    session.xenapi.network.create({**record, "bridge": "br0"})
    with pytest.raises(XenAPI.Failure) as taken:
        session.xenapi.network.create({**record, "bridge": "br0"})
    assert taken.value.details == ["BRIDGE_NAME_EXISTS", "br0"]
    assert (
        session.xenapi.network.get_bridge(session.xenapi.network.create({**record, "bridge": ""})) == "xapi0"
    )


def test_a_bridge_name_xapi_refuses_is_an_inventory_error(xapi, password_file):
    text = INVENTORY.format(url=xapi.url, password_file=password_file, extra="")
    with pytest.raises(InventoryError) as refused:
        parse_inventory("bridge: xapi3\n" + text)
    assert "bridge: xapi refuses bridge names starting with xen, xapi, vif, tap or eth" in str(refused.value)
    assert parse_inventory("bridge: xapi3\nsimulate: true\n" + text).bridge == "xapi3"  # simulated: any name


def test_a_bridge_another_network_has_is_explained(driver, xapi):
    xapi.add("network", name_label="someone else's", bridge="br0", other_config={})
    with pytest.raises(ProvisionError) as failed:
        driver.finish()
    message = str(failed.value)
    assert "another XenAPI network already has bridge br0 (BRIDGE_NAME_EXISTS)" in message
    assert "name the lab's bridge otherwise" in message and "\n" not in message


def test_a_lab_network_on_another_bridge_is_explained_without_the_old_advice(driver, xapi):
    xapi.add("network", name_label="lc-xs-br0", bridge="xapi3", other_config={})
    with pytest.raises(ProvisionError) as failed:
        driver.finish()
    message = str(failed.value)
    assert "XenAPI network lc-xs-br0 is on bridge xapi3, not br0" in message and "labctl down" in message
    assert "bridge: xapi3" not in message  # xapi refuses that name: it was never advice that works


# --- the template's NIC (xapi: DEVICE_ALREADY_EXISTS) -------------------------------------


def test_each_vm_has_one_nic_device_0_on_the_lab_network_although_the_template_has_one(driver, xapi):
    template = xapi.objects["VM"][xapi.do_VM_get_by_name_label("Debian Template")[0]]
    assert [xapi.objects["VIF"][v]["device"] for v in template["VIFs"]] == ["0"]
    driver.finish()
    [network] = xapi.do_network_get_by_name_label("lc-xs-br0")
    for vm in driver.session.lab.vms:
        [ref] = xapi.do_VM_get_by_name_label(f"lc-xs-{vm.name}")
        nics = [xapi.objects["VIF"][v] for v in xapi.objects["VM"][ref]["VIFs"]]
        assert [(n["device"], n["network"], n["MAC"]) for n in nics] == [("0", network, vm.mac)]
    assert len(template["VIFs"]) == 1  # the template keeps its own


# --- a pool: placement and HOST_IS_SLAVE -------------------------------------------------


def test_vms_start_on_this_host_not_where_the_pool_would_place_them(driver, xapi):
    assert xapi.host_name(xapi.placement) == MEMBER  # where VM.start would put them
    driver.finish()
    assert [resident(xapi, f"lc-xs-{vm.name}") for vm in driver.session.lab.vms] == [MASTER, MASTER]
    assert ("VM.start",) not in {c[:1] for c in xapi.calls}


def test_a_pool_member_refers_to_its_master_and_vms_start_on_the_member(xapi, make_driver):
    driver = make_driver(xapi.url_of(MEMBER))
    api = driver.api()
    assert api.url == xapi.url and api.followed_master  # HOST_IS_SLAVE's address, same port
    driver.finish()
    assert [resident(xapi, f"lc-xs-{vm.name}") for vm in driver.session.lab.vms] == [MEMBER, MEMBER]
    assert [driver.vm_port(vm) for vm in driver.session.lab.vms] == [
        "vif1.0",
        "vif2.0",
    ]  # the member's domids
    assert driver.session.state.records()[0]["url"] == xapi.url_of(MEMBER)  # down follows again
    down(driver.session.state)
    assert xapi.do_VM_get_by_name_label("lc-xs-vm1") == []


def test_a_vm_running_on_another_pool_member_is_refused_in_one_line(driver, xapi):
    driver.finish()
    [ref] = xapi.do_VM_get_by_name_label("lc-xs-vm2")
    xapi.do_VM_hard_shutdown(ref)
    xapi.do_VM_start(ref, False, False)  # someone started it; the pool placed it on the member
    fresh = type(driver)(driver.session, driver.host)
    assert fresh.vm_port(driver.session.lab.vm("vm2")) == "vif?.0 (vm2 not running on xs1)"
    with pytest.raises(ProvisionError) as failed:
        fresh.finish()
    message = str(failed.value)
    assert message.startswith("xs1: check where vm2 runs failed: VM lc-xs-vm2 runs on xs-member (127.0.0.3)")
    assert "\n" not in message


# --- HTTPS with a self-signed certificate ------------------------------------------------


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for both pool hosts, as a stock XenServer host has one."""
    cert, key = tmp_path / "xapi.crt", tmp_path / "xapi.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=xs-pool", "-keyout", str(key), "-out", str(cert),
            "-addext", "subjectAltName=IP:127.0.0.2,IP:127.0.0.3",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_xapi(certificate):
    server = FakeXenAPI(password="s3cret", tls=(str(certificate[0]), str(certificate[1]))).start()
    yield server
    server.stop()


def test_a_self_signed_certificate_is_refused_by_default_and_explained(https_xapi, make_driver):
    driver = make_driver(https_xapi.url)
    with pytest.raises(ProvisionError) as failed:
        driver.api()
    message = str(failed.value)
    assert message.startswith(f"xs1: log in to XenAPI at {https_xapi.url} failed: the TLS certificate")
    assert (
        "self-signed certificate" in message and "tls_ca_file:" in message and "tls_verify: false" in message
    )
    assert "\n" not in message


def test_tls_ca_file_trusts_the_host_certificate_also_at_the_master(https_xapi, make_driver, certificate):
    driver = make_driver(https_xapi.url_of(MEMBER), extra=f"    tls_ca_file: {certificate[0]}\n")
    driver.finish()
    assert driver.api().url == https_xapi.url
    assert resident(https_xapi, "lc-xs-vm1") == MEMBER
    assert driver.session.state.records()[0]["tls_ca_file"] == str(certificate[0])


def test_tls_verify_false_logs_in_without_checking(https_xapi, make_driver, caplog):
    driver = make_driver(https_xapi.url, extra="    tls_verify: false\n")
    driver.finish()
    assert "TLS certificate checking is OFF" in caplog.text
    assert resident(https_xapi, "lc-xs-vm1") == MASTER


def test_a_ca_file_with_verification_off_is_an_inventory_error(xapi, password_file):
    extra = "    tls_ca_file: /etc/ssl/xs.pem\n    tls_verify: false\n"
    with pytest.raises(InventoryError) as refused:
        parse_inventory(INVENTORY.format(url=xapi.url, password_file=password_file, extra=extra))
    assert "hosts.xs1.tls_ca_file: with tls_verify: false no certificate is checked" in str(refused.value)


# --- import_raw_vdi redirected (302) to the pool member that reaches the SR ----------------


def test_a_members_local_sr_takes_the_upload_xapi_redirects_to_it_over_the_same_tls(
    https_xapi, make_driver, certificate, monkeypatch
):
    """This host is the member and the default SR its local storage: labctl's session is with
    the master (HOST_IS_SLAVE), which answers the PUT with 302 and the member's https URL;
    labctl sends the ISO there (the same CA) and reads the outcome from the task."""
    https_xapi.sr_hosts[https_xapi.local_sr] = https_xapi.hosts[MEMBER]
    built = keep_seeds(monkeypatch)
    driver = make_driver(https_xapi.url_of(MEMBER), extra=f"    tls_ca_file: {certificate[0]}\n")
    driver.finish()
    assert driver.api().url == https_xapi.url and resident(https_xapi, "lc-xs-vm1") == MEMBER
    assert https_xapi.puts == [(MASTER, 302), (MEMBER, 200)] * 2
    assert {vm: seed_of(https_xapi, vm)[0]["data"] for vm in built} == built and set(built) == {"vm1", "vm2"}
    statuses = [c for c in https_xapi.calls if c[0] == "task.get_status"]
    assert len(statuses) >= 2 and https_xapi.objects["task"] == {}  # each task read, then removed


def test_a_failed_import_on_the_member_is_the_tasks_one_line(xapi, driver, monkeypatch):
    xapi.sr_hosts[xapi.local_sr] = xapi.hosts[MEMBER]
    record = xenserver.seed_vdi_record
    monkeypatch.setattr(
        xenserver, "seed_vdi_record", lambda lab, vm, sr, size: record(lab, vm, sr, int(size) - 2048)
    )
    with pytest.raises(ProvisionError) as failed:
        driver.finish()
    assert str(failed.value).startswith(
        "xs1: upload the seed of vm1 failed: the import task failure: INTERNAL_ERROR"
    )
    assert xapi.puts == [(MASTER, 302), (MEMBER, 200)] and xapi.objects["task"] == {}


def test_a_redirect_loop_is_one_line(xapi, driver):
    """A member whose address in the pool's database is the master's: the master sends the
    upload to itself."""
    driver.this_host(driver.api())
    xapi.sr_hosts[xapi.local_sr] = xapi.hosts[MEMBER]
    xapi.objects["host"][xapi.hosts[MEMBER]]["address"] = "127.0.0.2"
    with pytest.raises(ProvisionError) as failed:
        driver.finish()
    message = str(failed.value)
    assert message == (
        f"xs1: upload the seed of vm1 failed: xapi redirected the upload in a loop: {xapi.url} -> {xapi.url}"
    )
    assert xapi.puts == [(MASTER, 302)] and xapi.objects["task"] == {}
    assert not [c for c in xapi.changes() if c[0] == "VBD.create"]


def test_too_many_redirects_are_one_line(xapi, driver, monkeypatch):
    monkeypatch.setattr(xenserver.xapi_http, "MAX_REDIRECTS", 0)
    xapi.sr_hosts[xapi.local_sr] = xapi.hosts[MEMBER]
    with pytest.raises(ProvisionError) as failed:
        driver.finish()
    assert str(failed.value) == (
        "xs1: upload the seed of vm1 failed: xapi redirected the upload more than 0 times: "
        f"{xapi.url} -> {xapi.url_of(MEMBER)}"
    )


def test_a_redirect_from_https_to_http_is_refused_in_one_line(https_xapi, make_driver, certificate):
    https_xapi.sr_hosts[https_xapi.local_sr] = https_xapi.hosts[MEMBER]
    https_xapi.location_scheme = "http"
    driver = make_driver(https_xapi.url, extra=f"    tls_ca_file: {certificate[0]}\n")
    with pytest.raises(ProvisionError) as failed:
        driver.finish()
    message = str(failed.value)
    assert message == (
        f"xs1: upload the seed of vm1 failed: xapi redirected the upload from {https_xapi.url} to "
        f"http://127.0.0.3:{https_xapi.port}/import_raw_vdi: labctl does not send the session over plain "
        "http when the XenAPI URL is https"
    )
    assert "session_id" not in message and "OpaqueRef" not in message
    assert https_xapi.puts == [(MASTER, 302)]  # nothing went to the member


# --- XML-RPC faults and HTTP errors: one line --------------------------------------------


def test_an_xml_rpc_fault_is_one_line(driver, xapi):
    driver.api()
    xapi.expire_sessions = True  # xapi drops every session: the SDK gives up with a fault
    with pytest.raises(ProvisionError) as failed:
        driver.finish()
    assert str(failed.value) == (
        "xs1: find the lab network failed: "
        "XML-RPC fault 500: Tried 3 times to get a valid session, but failed"
    )


def test_an_http_error_is_one_line(driver, xapi):
    xapi.http_status = 503
    with pytest.raises(ProvisionError) as failed:
        driver.api()
    assert str(failed.value) == (
        f"xs1: log in to XenAPI at {xapi.url} failed: HTTP 503 Service Unavailable from {xapi.url} "
        "(is this a XenAPI URL?)"
    )


def test_down_with_xapi_answering_http_errors_exits_3_with_one_line(driver, xapi, tmp_path):
    driver.finish()
    xapi.http_status = 503
    env = {**os.environ, "LABCTL_STATE_DIR": str(tmp_path / "state"), "LABCTL_PASSWORD": "s3cret"}
    failed = subprocess.run(
        [sys.executable, "-m", "labctl", "down", "--lab", "xs"], capture_output=True, text=True, env=env
    )
    assert failed.returncode == 3, failed.stderr
    assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    assert "HTTP 503 Service Unavailable" in failed.stderr
    xapi.http_status = None
    down(driver.session.state)


# --- ovs-xapi-sync on the bridge of the lab's network ------------------------------------


@pytest.fixture
def dom0():
    """The master's dom0 Open vSwitch: ovsdb-server and ovs-vswitchd, as on a real dom0,
    in a namespace of their own (labctl checks that the switch answers before it changes
    a real host)."""
    server = OvsNamespace(f"lc-{unique_name('xs')}-dom0")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def pool_on_dom0(dom0, monkeypatch):
    """(the fake pool, whose master has `dom0` as its Open vSwitch, the xenserver kind
    whose OVS work goes to that dom0 stand-in), VMs placed on the master."""
    xapi = FakeXenAPI(password="s3cret", dom0_ovs={MASTER: dom0.vsctl}).start()
    xapi.placement = xapi.master  # VM.start would place them here too (placement has its own test)
    OnDom0 = dom0.driver_kind(XenServerDriver)
    monkeypatch.setitem(DRIVERS, "xenserver", OnDom0)  # also for `down`, from the journal
    try:
        yield xapi, OnDom0
    finally:
        xapi.stop()


@pytest.mark.lab
def test_ovs_xapi_sync_leaves_the_lab_bridge_secure_and_out_of_band(dom0, pool_on_dom0, make_driver):
    """dom0's ovs-xapi-sync sets fail_mode and in-band on the bridge of a xapi network from the
    network's other_config; without the keys the bridge turns standalone and drifts."""
    xapi, OnDom0 = pool_on_dom0
    driver = make_driver(xapi.url, kind=OnDom0)
    host = driver.host
    builder = HostBuilder(driver.session.lab, {host.name: driver}, driver.session.report)
    builder.build(host)
    plan = builder.plan(host)
    snap = Ovs(driver.transport()).snapshot()
    br0 = snap.bridges["br0"]
    assert (br0.fail_mode, br0.other_config.get("disable-in-band")) == ("secure", "true")
    assert br0.ports == ["br0", "vif1.0", "vif2.0"]  # plugged by the vif script, named as labctl says
    assert [driver.vm_port(vm) for vm in host.vms] == ["vif1.0", "vif2.0"]
    assert pending(plan.commands, snap) == []  # no drift
    made = driver.session.report.changes
    builder.build(host)  # up again: nothing to repair
    assert driver.session.report.changes == made
    down(driver.session.state)
    assert dom0.vsctl(["ovs-vsctl", "list-br"])[1] == ""


@pytest.mark.lab
def test_up_with_a_wrong_password_exits_3_with_one_line(make_lab, xapi, tmp_path):
    password_file = tmp_path / "pw"
    password_file.write_text("not-it\n")
    text = INVENTORY.format(url=xapi.url, password_file=password_file, extra="")
    text = text.replace("{", "{{").replace("}", "}}").replace("name: xs", "name: {name}")
    lab = make_lab(text)
    lab.env.pop("LABCTL_PASSWORD", None)
    failed = lab.run("up", check=False)
    assert failed.returncode == 3, failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert "xs1: log in to XenAPI" in failed.stderr and "authentication failed for root" in failed.stderr
    assert "Traceback" not in failed.stderr and len([x for x in lines if "xs1" in x]) == 1


@pytest.mark.lab
@pytest.mark.parametrize("seed", ["nocloud", "none"])
def test_status_says_whether_the_address_is_managed_and_down_leaves_no_seed(
    dom0, pool_on_dom0, make_driver, seed
):
    """A real dom0 OVS: the VMs' ports on br0, and status's port lines say "address not
    managed" exactly for the guests without a seed; down removes the seeds' VDIs and drives."""
    xapi, OnDom0 = pool_on_dom0
    driver = make_driver(xapi.url, extra=f"    seed: {seed}\n", kind=OnDom0)
    host, lab = driver.host, driver.session.lab
    builder = HostBuilder(lab, {host.name: driver}, driver.session.report)
    builder.build(host)
    someone_elses = SimpleNamespace(kind=SimpleNamespace(managed=False))  # a controller labctl does not run
    status = LabStatus(lab, driver.session.state, {host.name: driver}, builder, someone_elses)
    entry, _ = status._host(host, None, Hides.NOTHING)
    controller = {"kind": "none", "target": "-", "apps": [], "running": None}
    text = render_text(
        {
            "lab": lab.name,
            "up": True,
            "drift": [],
            "faults": [],
            "controller": controller,
            "hosts": [entry],
        }
    )
    vm_lines = [line for line in text.splitlines() if " VM vm" in line]
    assert [line.split()[1] for line in vm_lines] == ["vif1.0", "vif2.0"]
    assert all(("address not managed" in line) == (seed == "none") for line in vm_lines), text
    seeds = [v for v in xapi.objects["VDI"].values() if v["name_label"].endswith("-seed")]
    assert len(seeds) == (2 if seed == "nocloud" else 0)
    down(driver.session.state)
    assert [v for v in xapi.objects["VDI"].values() if v["name_label"].endswith("-seed")] == []
    assert xapi.objects["VBD"] == {} and dom0.vsctl(["ovs-vsctl", "list-br"])[1] == ""


# --- the way in: mgmt: {network: ...}, a second VIF on a xapi network --------------------------

MGMT = "    mgmt: {network: Lab management, subnet: 10.99.0.0/24}\n"


def mgmt_network(xapi: FakeXenAPI, label: str = "Lab management", bridge: str = "xapi1") -> str:
    """A network the pool's admin made for the way in (xe network-create)."""
    return xapi.add("network", name_label=label, bridge=bridge, MTU="1500", other_config={})


def test_mgmt_gives_each_vm_vif_0_on_the_lab_network_and_vif_1_on_the_management_network(xapi, make_driver):
    way_in = mgmt_network(xapi)
    driver = make_driver(xapi.url, extra=MGMT)
    driver.finish()
    [lab_network] = xapi.do_network_get_by_name_label("lc-xs-br0")
    for n, vm in enumerate(driver.session.lab.vms):
        [ref] = xapi.do_VM_get_by_name_label(f"lc-xs-{vm.name}")
        vifs = [xapi.objects["VIF"][v] for v in xapi.objects["VM"][ref]["VIFs"]]
        nics = sorted(vifs, key=lambda v: v["device"])
        assert [(v["device"], v["network"], v["MAC"]) for v in nics] == [
            ("0", lab_network, vm.mac),
            ("1", way_in, "06" + vm.mac[2:]),
        ]
        _, files = read_iso(seed_of(xapi, vm.name)[0]["data"])
        nic = yaml.safe_load(files["network-config"])["ethernets"]["mgmt"]
        assert nic["match"]["macaddress"] == "06" + vm.mac[2:]
        assert nic["addresses"] == [f"10.99.0.{10 + n}/24"]
    before = len(xapi.changes())
    driver.finish()  # up again: both NICs are there, nothing changes
    assert len(xapi.changes()) == before
    down(driver.session.state)
    assert all(v["network"] not in (lab_network, way_in) for v in xapi.objects["VIF"].values())
    assert way_in in xapi.objects["network"]  # the admin's network stays


@pytest.mark.parametrize("count", [0, 2])
def test_a_management_network_label_that_names_none_or_two_is_one_line(xapi, make_driver, count):
    for n in range(count):
        mgmt_network(xapi, bridge=f"xapi{n + 1}")
    driver = make_driver(xapi.url, extra=MGMT)
    with pytest.raises(ProvisionError) as failed:
        driver.finish()
    found = "no XenAPI network is" if count == 0 else "2 XenAPI networks are"
    assert str(failed.value) == (
        f"xs1: find the management network failed: {found} named 'Lab management' (mgmt.network): "
        "name one network, by its name label (xe network-list)"
    )
    assert not xapi.do_VM_get_by_name_label("lc-xs-vm1")  # refused before any VM is made


def test_the_fake_refuses_a_vif_on_no_network_and_a_second_device_1(xapi):
    session = login(xapi)
    api = session.xenapi
    vm = api.VM.clone(api.VM.get_by_name_label("Debian Template")[0], "t")
    way_in = mgmt_network(xapi)
    record = xenserver.vif_record(vm, "1", "OpaqueRef:network-404", "06:00:00:00:00:01", 1500)
    with pytest.raises(XenAPI.Failure) as refused:
        api.VIF.create(record)
    assert refused.value.details == ["HANDLE_INVALID", "network", "OpaqueRef:network-404"]
    api.VIF.create(record | {"network": way_in})
    with pytest.raises(XenAPI.Failure) as refused:
        api.VIF.create(record | {"network": way_in})
    assert refused.value.details == ["DEVICE_ALREADY_EXISTS", "1"]


@pytest.mark.lab
def test_the_management_vifs_are_on_their_bridge_not_br0_and_status_names_the_network_gone(
    dom0, pool_on_dom0, make_driver
):
    """dom0's Open vSwitch: vif<domid>.1 on the management network's bridge, br0 holds the lab's
    ports only; doctor sees dom0's address there; once the network's label names nothing,
    status says so."""
    xapi, OnDom0 = pool_on_dom0
    way_in = mgmt_network(xapi)
    dom0.vsctl(["ovs-vsctl", "add-br", "xapi1", "--", "set", "bridge", "xapi1", "datapath_type=netdev"])
    dom0_ns = dom0.transport()
    dom0_ns.run(["ip", "addr", "add", "10.99.0.1/24", "dev", "xapi1"])
    driver = make_driver(xapi.url, extra=MGMT, kind=OnDom0)
    host, lab = driver.host, driver.session.lab
    builder = HostBuilder(lab, {host.name: driver}, driver.session.report)
    builder.build(host)
    assert dom0.vsctl(["ovs-vsctl", "list-ports", "br0"])[1].split() == ["vif1.0", "vif2.0"]
    assert dom0.vsctl(["ovs-vsctl", "list-ports", "xapi1"])[1].split() == ["vif1.1", "vif2.1"]
    [probe] = [check for label, check in driver.doctor_checks() if label == "management network"]
    assert probe() == (True, "network 'Lab management' is on bridge xapi1; dom0 is 10.99.0.1/24 there")
    someone_elses = SimpleNamespace(kind=SimpleNamespace(managed=False))
    status = LabStatus(lab, driver.session.state, {host.name: driver}, builder, someone_elses)
    entry, faults = status._host(host, None, Hides.NOTHING)
    unpointed = "missing controller of br0 -> tcp:10.250.0.254:6633"  # this test points br0 nowhere
    assert [f.what for f in faults] == [unpointed]
    assert {p["name"] for p in entry["ports"]} == {"br0", "vif1.0", "vif2.0"}
    xapi.objects["network"][way_in]["name_label"] = "renamed"  # xe network-param-set name-label=…
    _, faults = status._host(host, None, Hides.NOTHING)
    [fault] = [f for f in faults if f.what != unpointed]
    assert fault.what == (
        "management network: no XenAPI network is named 'Lab management' (mgmt.network): "
        "name one network, by its name label (xe network-list)"
    )
    assert fault.repair.startswith("up cannot repair this")
    down(driver.session.state)
    assert dom0.vsctl(["ovs-vsctl", "list-ports", "xapi1"])[1] == ""  # the VIFs went with the VMs
