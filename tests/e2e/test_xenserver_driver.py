"""The xenserver driver on the real XenAPI SDK, against a local server that
speaks the XenAPI wire protocol (tests/fakes/xenapi_server.py)."""

from __future__ import annotations

import pytest

from labctl.drivers import DRIVERS, LabSession
from labctl.drivers.xenserver import XenServerDriver
from labctl.errors import ProvisionError
from labctl.inventory import parse_inventory
from labctl.progress import Reporter
from labctl.state import LabState
from tests.fakes.xenapi_server import FakeXenAPI

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
    vms:
      vm1: {{ip: 172.16.0.1/24}}
      vm2: {{ip: 172.16.0.2/24}}
"""


@pytest.fixture
def xapi():
    server = FakeXenAPI(password="s3cret").start()
    yield server
    server.stop()


@pytest.fixture
def driver(xapi, tmp_path, monkeypatch):
    monkeypatch.delenv("LABCTL_PASSWORD", raising=False)
    monkeypatch.delenv("LABCTL_PASSWORD_XS1", raising=False)
    password_file = tmp_path / "xs1.password"
    password_file.write_text("s3cret\n")
    lab = parse_inventory(INVENTORY.format(url=xapi.url, password_file=password_file))
    state = LabState(lab.name, root=tmp_path / "state")
    return XenServerDriver(LabSession(lab, state, Reporter(quiet=True)), lab.host("xs1"))


def down(state: LabState) -> None:
    for record in reversed([r for r in state.records() if "driver" in r]):
        DRIVERS[record["driver"]].undo(record, state)


def test_up_creates_network_vms_and_vifs_on_br0(driver, xapi):
    driver.finish()
    network = xapi.changes()[0]
    assert network[0] == "network.create"
    assert network[1]["name_label"] == "lc-xs-br0" and network[1]["bridge"] == "br0"
    assert network[1]["MTU"] == "1462"  # 1500 - 38: what a GRE tunnel carries
    template = xapi.do_VM_get_by_name_label("Debian Template")[0]
    made = [c[0] for c in xapi.changes()]
    assert made == ["network.create"] + ["VM.clone", "VM.provision", "VIF.create", "VM.start"] * 2
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
    assert message.startswith("xs1: log in to XenAPI at http://127.0.0.1:")
    assert "authentication failed for root" in message and "\n" not in message and "Tr0ub4dor" not in message


def test_xapi_naming_its_own_bridge_is_explained(driver, xapi, monkeypatch):
    monkeypatch.setattr(
        xapi, "do_network_create", lambda record: xapi.add("network", **{**record, "bridge": "xapi3"})
    )
    with pytest.raises(ProvisionError) as failed:
        driver.finish()
    assert "bridge xapi3, not br0" in str(failed.value) and "bridge: xapi3" in str(failed.value)


@pytest.mark.lab
def test_up_with_a_wrong_password_exits_3_with_one_line(make_lab, xapi, tmp_path):
    password_file = tmp_path / "pw"
    password_file.write_text("not-it\n")
    text = INVENTORY.format(url=xapi.url, password_file=password_file).replace("{", "{{").replace("}", "}}")
    text = text.replace("name: xs", "name: {name}")
    lab = make_lab(text)
    lab.env.pop("LABCTL_PASSWORD", None)
    failed = lab.run("up", check=False)
    assert failed.returncode == 3, failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert "xs1: log in to XenAPI" in failed.stderr and "authentication failed for root" in failed.stderr
    assert "Traceback" not in failed.stderr and len([x for x in lines if "xs1" in x]) == 1
