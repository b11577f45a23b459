"""The xenserver driver on the real XenAPI SDK, against a local pool of two hosts that
speaks the XenAPI wire protocol and keeps xapi's rules (tests/fakes/xenapi_server.py):
bridge names, VIF device numbers, placement in a pool and HOST_IS_SLAVE, HTTPS with a
self-signed certificate, and what ovs-xapi-sync does to the bridge of a xapi network
(against a real private ovsdb-server)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import XenAPI

from labctl.build import HostBuilder
from labctl.drivers import DRIVERS, LabSession
from labctl.drivers.xenserver import XenServerDriver
from labctl.errors import InventoryError, ProvisionError
from labctl.inventory import parse_inventory
from labctl.ovs import Ovs, pending
from labctl.progress import Reporter
from labctl.state import LabState
from tests.fakes.xenapi_server import MASTER, MEMBER, FakeXenAPI
from tests.private_ovsdb import PrivateOvsdb, have_ovsdb_server

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

    def make(url: str, extra: str = "", kind: type[XenServerDriver] = XenServerDriver) -> XenServerDriver:
        lab = parse_inventory(INVENTORY.format(url=url, password_file=password_file, extra=extra))
        state = LabState(lab.name, root=tmp_path / "state")
        return kind(LabSession(lab, state, Reporter(quiet=True)), lab.host("xs1"))

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
    per_vm = ["VM.clone", "VM.provision", "VIF.destroy", "VIF.create", "VM.start_on"]
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
    assert {r["kind"] for r in records} == {"xenserver-network", "xenserver-vm"}
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
    per_vm = ["VM.hard_shutdown", "VIF.destroy", "VDI.destroy", "VM.destroy"]
    assert removed == per_vm * 2 + ["network.destroy"]  # newest first: VMs, then their network
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
    """The master's dom0 Open vSwitch: a real private ovsdb-server."""
    if not have_ovsdb_server():
        pytest.skip("needs Open vSwitch's ovsdb-server")
    server = PrivateOvsdb().start()
    yield server
    server.stop()


def test_ovs_xapi_sync_leaves_the_lab_bridge_secure_and_out_of_band(dom0, make_driver, monkeypatch):
    """dom0's ovs-xapi-sync sets fail_mode and in-band on the bridge of a xapi network from the
    network's other_config; without the keys the bridge turns standalone and drifts."""
    xapi = FakeXenAPI(password="s3cret", dom0_ovs={MASTER: dom0.vsctl}).start()
    xapi.placement = xapi.master  # VM.start would place them here too (placement has its own test)
    try:

        class OnDom0(XenServerDriver):  # its ovs-vsctl work goes to the private ovsdb-server
            @classmethod
            def connect(cls, name, address, access):
                return dom0.transport(name)

        monkeypatch.setitem(DRIVERS, "xenserver", OnDom0)  # also for `down`, from the journal
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
    finally:
        xapi.stop()


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
