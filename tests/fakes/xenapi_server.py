"""A small XenAPI pool on loopback: the real wire protocol (XML-RPC, every result a
{Status, Value} or {Status, ErrorDescription} struct), an in-memory pool of two hosts,
and a list of every call made, for tests to check.

It keeps the rules of xapi (xapi-project/xen-api) that labctl relies on:
- network.create: a bridge name longer than 15 characters or starting with xen, xapi,
  vif, tap or eth is INVALID_VALUE ["bridge", name]; one another network has is
  BRIDGE_NAME_EXISTS [name]; no name gets xapiN (ocaml/xapi/xapi_network.ml).
- VIF.create: a device number the VM's VIFs already use is DEVICE_ALREADY_EXISTS
  [device] (ocaml/xapi/xapi_vif_helpers.ml); a network or VM ref that names nothing is
  HANDLE_INVALID [class, ref], as for every call given a bad ref. VM.clone copies the
  template's VIFs, and the default template has one, device 0, as templates made from VMs
  do. network.get_by_name_label answers every network of that label: none, one or more
  (xapi does not keep labels unique).
- A pool of two hosts, each with its own XML-RPC endpoint on its own loopback address
  (master 127.0.0.2, member 127.0.0.3, one port): any call to the member, login included,
  is HOST_IS_SLAVE [master's address] (ocaml/xapi/xapi_session.ml). VM.start places the
  VM where the pool likes (here: the member, `placement`), VM.start_on on the host given.
- HTTPS, when given a certificate and key (`tls`).
- Each host may have a dom0 Open vSwitch (`dom0_ovs`: host name -> an ovs-vsctl runner,
  e.g. a private ovsdb-server's). When a VM starts on that host, the fake does in that OVS
  what dom0 does there: xapi makes the network's bridge when it is not there yet (as
  xapi_network.ml's attach does before a VIF plugs), xapi's vif script plugs
  vif<domid>.<device> into the network's bridge (OVS's
  xenserver/etc_xensource_scripts_vif), then ovs-xapi-sync configures every
  bridge it has not configured yet that backs a xapi network (OVS's
  xenserver/usr_share_openvswitch_scripts_ovs-xapi-sync, upstream 2.17.7): fail_mode from
  the network's other_config `vswitch-controller-fail-mode`, else the pool's, else
  standalone; `disable-in-band` set from `vswitch-disable-in-band` (true/false), removed
  when the network has none. The real daemon runs on every change of the OVS database;
  the fake runs the same rule at the change it makes, the VIF plug. (XCP-ng's and
  Citrix's patched daemon leaves fail_mode alone unless the network names one, and
  removes disable-in-band all the same; the other_config keys satisfy both.)

- Storage (ocaml/xapi/xapi_vbd.ml, import_raw_vdi.ml): two SRs, the pool's default_SR
  one ("Local storage") and an ISO library. VDI.create needs every field of its record
  (FIELD_TYPE_ERROR [name] when one is missing), a valid SR whose allowed operations
  include vdi_create (SR_OPERATION_NOT_SUPPORTED [sr]). VBD.create: a CD must be RO
  (VBD_CDS_MUST_BE_READONLY []), only a CD may be empty (VBD_NOT_REMOVABLE_MEDIA
  ["in constructor"]), a device number the VM's drives use is DEVICE_ALREADY_EXISTS;
  drives attach when the VM starts (currently_attached) and detach when it stops;
  VBD.destroy of an attached one is OPERATION_NOT_ALLOWED, VDI.destroy of a VDI with
  an attached drive VDI_IN_USE; otherwise the VDI's drives go with it.
  `cd_needs_iso_sr` makes the pool an older xapi (before 1.9.60, xen-api commit "Allow ISO
  VBDs to be made from any SR", December 2014): VBD.create of a CD that is not empty on a
  VDI whose SR's content_type is not "iso" is VDI_IS_NOT_ISO [vdi, content_type], checked
  where that xapi checked it (xapi_vbd.ml, after the read-only and removable-media rules,
  before the device number; xapi_vdi_helpers.ml's assert_vdi_is_valid_iso).
- HTTP PUT /import_raw_vdi (import_raw_vdi.ml): the session ref as query session_id
  (else 401), `vdi` a VDI ref or uuid (else 500), `format` raw (the default) or vhd
  (else 404), no Transfer-Encoding (403). Like xapi it answers 200 with the task-id
  header before it reads the body, then writes it: a body longer than the VDI's
  virtual_size fails the task (`task_id`, from task.create), not the HTTP answer. The
  fake needs a Content-Length and takes raw only.
  An SR local to one host (`sr_hosts`: SR ref -> host ref; any other SR is shared): a PUT
  to another host for a VDI of that SR is 302 Found, `Location:` the SR's host's address
  with the same path and query (importexport.ml's return_302_redirect), answered, like
  every answer, before the body is read, and the connection closed. xapi's Location has
  no port (443); the fake's names its one port, and `location_scheme` can make it say
  http (what xapi before 2016 answered a request that came in unencrypted). `puts` lists
  (host name, status) of every PUT, for tests to see where an upload landed.

Only the calls labctl's xenserver driver makes are implemented; any other call fails
the way xapi does (MESSAGE_METHOD_UNKNOWN).
"""

from __future__ import annotations

import itertools
import socket
import ssl
import threading
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

READ_ONLY = ("get_", "login_with_password", "logout")
BRIDGE_PREFIXES = ("xen", "xapi", "vif", "tap", "eth")  # xapi_network.ml's bridge_blacklist
MASTER, MEMBER = "xs-master", "xs-member"
ADDRESSES = {MASTER: "127.0.0.2", MEMBER: "127.0.0.3"}
NULL = "OpaqueRef:NULL"

Vsctl = Callable[[list[str]], tuple[int, str, str]]


class XapiFailure(Exception):
    def __init__(self, *description: str):
        self.description = list(description)


def _require(record: dict, fields: tuple[str, ...]) -> None:
    for name in fields:
        if name not in record:
            raise XapiFailure("FIELD_TYPE_ERROR", name)


class _Handler(SimpleXMLRPCRequestHandler):
    """Answers every request with the pool's `http_status` when one is set (a proxy in the
    way, or xapi restarting), else as XML-RPC."""

    def do_POST(self):
        status = self.server.pool.http_status
        if status is None:
            return super().do_POST()
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self):
        pool = self.server.pool
        url = urlsplit(self.path)
        if url.path != "/import_raw_vdi":
            return self._answer(404)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with pool.lock:
            if query.get("session_id") not in pool.sessions:
                return self._answer(401)
            vdi = pool.vdi_of(query.get("vdi", ""))
            task = query.get("task_id")
            if vdi is None or (task is not None and task not in pool.objects["task"]):
                return self._answer(500)
            owner = pool.sr_hosts.get(pool.objects["VDI"][vdi]["SR"], self.server.host)
            if owner != self.server.host:  # this host cannot see the SR: to the one that can
                address = pool.objects["host"][owner]["address"]
                scheme = pool.location_scheme or pool.scheme
                return self._answer(302, {"Location": f"{scheme}://{address}:{pool.port}{self.path}"})
        fmt = query.get("format", "raw")
        if fmt not in ("raw", "vhd"):
            pool.finish_task(task, ["INTERNAL_ERROR", f"Unknown format {fmt}"])
            return self._answer(404)
        if self.headers.get("Transfer-Encoding"):
            pool.finish_task(task, ["INTERNAL_ERROR", "import code cannot handle encoding"])
            return self._answer(403)
        length = self.headers.get("Content-Length")
        if length is None or fmt != "raw":  # what the fake does not do (xapi would)
            return self._answer(501)
        self.send_response(200)  # xapi answers before it reads: the outcome is the task's
        pool.puts.append((pool.host_name(self.server.host), 200))
        if task is not None:
            self.send_header("task-id", task)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        body = self.rfile.read(int(length))
        pool.import_raw(vdi, body, task)
        self.close_connection = True

    def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        """An answer without reading the body, as xapi gives it, then the connection closed."""
        if self.command == "PUT":
            self.server.pool.puts.append((self.server.pool.host_name(self.server.host), status))
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True


class _Endpoint:
    """One host's XML-RPC endpoint: the master serves the API, a member refers to it."""

    def __init__(self, pool: FakeXenAPI, host: str):
        self.pool, self.host = pool, host

    def _dispatch(self, method: str, params: tuple):
        if self.host != self.pool.master:
            return {"Status": "Failure", "ErrorDescription": ["HOST_IS_SLAVE", self.pool.master_address]}
        return self.pool.dispatch(method, params)


class FakeXenAPI:
    def __init__(
        self,
        user: str = "root",
        password: str = "secret",
        *,
        tls: tuple[str, str] | None = None,
        dom0_ovs: dict[str, Vsctl] | None = None,
    ):
        self.user, self.password = user, password
        self.calls: list[tuple] = []  # (method, args without the session ref)
        self.lock = threading.Lock()  # the XML-RPC and the HTTP handlers run in different threads
        self.sessions: set[str] = set()
        self.expire_sessions = False  # True: every session is gone by its first call
        self.http_status: int | None = None  # an HTTP status every request gets instead of XML-RPC
        self.cd_needs_iso_sr = False  # True: an older xapi, a CD only from an ISO SR (VDI_IS_NOT_ISO)
        self.sr_hosts: dict[str, str] = {}  # SR -> the one host that reaches it (local storage)
        self.location_scheme: str | None = None  # the scheme of a 302's Location, else the pool's
        self.puts: list[tuple[str, int]] = []  # (host name, HTTP status) of each PUT
        self.objects: dict[str, dict[str, dict]] = {
            cls: {} for cls in ("VM", "VIF", "network", "VBD", "VDI", "SR", "task", "host", "pool")
        }
        self._refs = itertools.count(1)
        self.hosts = {
            name: self.add("host", name_label=name, hostname=name, address=ADDRESSES[name], domids=1)
            for name in (MASTER, MEMBER)
        }
        self.master = self.hosts[MASTER]
        self.placement = self.hosts[MEMBER]  # where VM.start puts a VM
        self.local_sr = self.add(
            "SR", name_label="Local storage", content_type="user", allowed_operations=["vdi_create"]
        )
        self.iso_sr = self.add("SR", name_label="ISOs", content_type="iso", allowed_operations=[])
        self.add("pool", name_label="", master=self.master, other_config={}, default_SR=self.local_sr)
        self.dom0_ovs = {self.hosts[name]: vsctl for name, vsctl in (dom0_ovs or {}).items()}
        self._synced: dict[str, set[str]] = {host: set() for host in self.hosts.values()}  # ovs-xapi-sync's
        eth0 = self.add(
            "network",
            name_label="Pool-wide network associated with eth0",
            bridge="xenbr0",
            MTU="1500",
            other_config={},
        )
        template = self.add(
            "VM", name_label="Debian Template", is_a_template=True, power_state="Halted", VIFs=[], VBDs=[]
        )
        self._new_vif(template, device="0", network=eth0, MAC="")
        self.scheme = "https" if tls else "http"
        self.servers = self._listen(tls)
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self.servers.values()]

    @property
    def master_address(self) -> str:
        return self.objects["host"][self.master]["address"]

    def url_of(self, name: str) -> str:
        return f"{self.scheme}://{ADDRESSES[name]}:{self.port}"

    @property
    def url(self) -> str:
        return self.url_of(MASTER)

    def _listen(self, tls: tuple[str, str] | None) -> dict[str, SimpleXMLRPCServer]:
        """One server per host, on the host's address and one port for both (a URL that
        follows HOST_IS_SLAVE changes only the address)."""
        for _ in range(20):
            first = self._server(MASTER, 0)
            self.port = first.server_address[1]
            try:
                second = self._server(MEMBER, self.port)
            except OSError:  # that port is taken on the member's address: another one
                first.server_close()
                continue
            servers = {MASTER: first, MEMBER: second}
            if tls:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(*tls)
                for server in servers.values():
                    server.socket = context.wrap_socket(server.socket, server_side=True)
            return servers
        raise RuntimeError("no port free on both 127.0.0.2 and 127.0.0.3")

    def _server(self, name: str, port: int) -> SimpleXMLRPCServer:
        server = SimpleXMLRPCServer(
            (ADDRESSES[name], port),
            requestHandler=_Handler,
            allow_none=True,
            logRequests=False,
            bind_and_activate=False,
        )
        server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.server_bind()
            server.server_activate()
        except OSError:
            server.server_close()
            raise
        server.register_instance(_Endpoint(self, self.hosts[name]))
        server.pool = self  # type: ignore[attr-defined]
        server.host = self.hosts[name]  # type: ignore[attr-defined]
        return server

    def start(self) -> FakeXenAPI:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join()

    def add(self, cls: str, **fields) -> str:
        ref = f"OpaqueRef:{cls}-{next(self._refs)}"
        self.objects[cls][ref] = fields
        return ref

    def changes(self) -> list[tuple]:
        """The calls that changed something (not get_*, login, logout)."""
        return [c for c in self.calls if not c[0].split(".")[1].startswith(READ_ONLY)]

    def host_name(self, ref: str) -> str:
        return self.objects["host"][ref]["name_label"] if ref in self.objects["host"] else ref

    # --- the wire ---
    def dispatch(self, method: str, params: tuple):
        try:
            if method == "session.login_with_password":
                return {"Status": "Success", "Value": self._login(*params[:2])}
            if method == "session.logout":
                self.sessions.discard(params[0])
                return {"Status": "Success", "Value": ""}
            if self.expire_sessions:
                self.sessions.clear()
            if not params or params[0] not in self.sessions:
                raise XapiFailure("SESSION_INVALID", str(params[0] if params else ""))
            args = params[1:]
            self.calls.append((method, *args))
            handler = getattr(self, "do_" + method.replace(".", "_"), None)
            if handler is None:
                raise XapiFailure("MESSAGE_METHOD_UNKNOWN", method)
            with self.lock:
                return {"Status": "Success", "Value": handler(*args)}
        except XapiFailure as exc:
            return {"Status": "Failure", "ErrorDescription": exc.description}

    def _login(self, user: str, password: str) -> str:
        if (user, password) != (self.user, self.password):
            raise XapiFailure("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
        ref = f"OpaqueRef:session-{next(self._refs)}"
        self.sessions.add(ref)
        return ref

    def _get(self, cls: str, ref: str) -> dict:
        try:
            return self.objects[cls][ref]
        except KeyError:
            raise XapiFailure("HANDLE_INVALID", cls, ref) from None

    def _by_label(self, cls: str, label: str) -> list[str]:
        return [ref for ref, obj in self.objects[cls].items() if obj.get("name_label") == label]

    # --- host, pool ---
    def do_host_get_all_records(self):
        return {
            ref: {k: v for k, v in host.items() if k != "domids"}
            for ref, host in self.objects["host"].items()
        }

    def do_pool_get_all(self):
        return list(self.objects["pool"])

    def do_pool_get_master(self, pool):
        return self._get("pool", pool)["master"]

    def do_pool_get_default_SR(self, pool):
        return self._get("pool", pool)["default_SR"]

    def do_SR_get_by_name_label(self, label):
        return self._by_label("SR", label)

    # --- task (what import_raw_vdi reports to) ---
    def do_task_create(self, label, description):
        return self.add("task", name_label=label, status="pending", error_info=[])

    def do_task_get_status(self, task):
        return self._get("task", task)["status"]

    def do_task_get_error_info(self, task):
        return list(self._get("task", task)["error_info"])

    def do_task_destroy(self, task):
        self._get("task", task)
        del self.objects["task"][task]
        return ""

    def finish_task(self, task: str | None, error: list[str] | None = None) -> None:
        with self.lock:
            if task in self.objects["task"]:
                self.objects["task"][task].update(
                    status="failure" if error else "success", error_info=error or []
                )

    # --- import_raw_vdi ---
    def vdi_of(self, ref_or_uuid: str) -> str | None:
        if ref_or_uuid in self.objects["VDI"]:
            return ref_or_uuid
        return next((ref for ref, v in self.objects["VDI"].items() if v.get("uuid") == ref_or_uuid), None)

    def import_raw(self, vdi: str, body: bytes, task: str | None) -> None:
        """What vhd-tool does with the body: write it into the VDI's block device, which ends at
        virtual_size."""
        with self.lock:
            record = self.objects["VDI"].get(vdi)
            size = int(record["virtual_size"]) if record else 0
            if record is not None and len(body) <= size:
                record["data"] = body
        if record is None or len(body) > size:
            self.finish_task(task, ["INTERNAL_ERROR", "Caught exception: End_of_file (write beyond the VDI)"])
        else:
            self.finish_task(task)

    # --- VM ---
    def do_VM_get_by_name_label(self, label):
        return self._by_label("VM", label)

    def do_VM_clone(self, template, label):
        source = self._get("VM", template)
        clone = self.add(
            "VM",
            name_label=label,
            is_a_template=source["is_a_template"],
            power_state="Halted",
            VIFs=[],
            VBDs=[],
            domid=-1,
            resident_on=NULL,
        )
        disk = self.add(
            "VDI", name_label=f"{label} disk", SR=self.local_sr, virtual_size="0", other_config={}, VBDs=[]
        )
        self._new_vbd(clone, disk, type="Disk", userdevice="0", mode="RW", empty=False)
        self._new_vbd(
            clone, NULL, type="CD", userdevice="3", mode="RO", empty=True
        )  # the install media drive
        for vif in source["VIFs"]:  # xapi copies the template's NICs
            record = self.objects["VIF"][vif]
            self._new_vif(clone, device=record["device"], network=record["network"], MAC=record["MAC"])
        return clone

    def do_VM_provision(self, vm):
        self._get("VM", vm)["is_a_template"] = False
        return ""

    def do_VM_start(self, vm, paused, force):
        return self._start(vm, self.placement)

    def do_VM_start_on(self, vm, host, paused, force):
        self._get("host", host)
        return self._start(vm, host)

    def _start(self, vm: str, host: str) -> str:
        obj = self._get("VM", vm)
        if obj["is_a_template"]:
            raise XapiFailure("VM_IS_TEMPLATE", vm)
        if obj["power_state"] != "Halted":
            raise XapiFailure("VM_BAD_POWER_STATE", vm, "halted", obj["power_state"].lower())
        for vbd in obj["VBDs"]:
            self.objects["VBD"][vbd]["currently_attached"] = True
        where = self.objects["host"][host]
        obj["power_state"], obj["resident_on"], obj["domid"] = "Running", host, where["domids"]
        where["domids"] += 1
        self._dom0_plugs(vm, host)
        return ""

    def do_VM_hard_shutdown(self, vm):
        obj = self._get("VM", vm)
        self._dom0_unplugs(vm)
        obj["power_state"], obj["domid"], obj["resident_on"] = "Halted", -1, NULL
        for vbd in obj["VBDs"]:
            self.objects["VBD"][vbd]["currently_attached"] = False
        return ""

    def do_VM_get_power_state(self, vm):
        return self._get("VM", vm)["power_state"]

    def do_VM_get_domid(self, vm):
        return str(self._get("VM", vm)["domid"])  # xapi sends int fields as strings

    def do_VM_get_resident_on(self, vm):
        return self._get("VM", vm)["resident_on"]

    def do_VM_get_VIFs(self, vm):
        return list(self._get("VM", vm)["VIFs"])

    def do_VM_get_VBDs(self, vm):
        return list(self._get("VM", vm)["VBDs"])

    def do_VM_destroy(self, vm):
        obj = self._get("VM", vm)
        if obj["power_state"] != "Halted":
            raise XapiFailure("VM_BAD_POWER_STATE", vm, "halted", obj["power_state"].lower())
        for vbd in list(obj["VBDs"]):
            self._drop_vbd(vbd)
        for vif in obj["VIFs"]:
            self.objects["VIF"].pop(vif, None)
        del self.objects["VM"][vm]
        return ""

    # --- VIF, VBD, VDI ---
    def _new_vif(self, vm: str, **fields) -> str:
        ref = self.add("VIF", VM=vm, MTU="1500", other_config={}, **fields)
        self.objects["VM"][vm]["VIFs"].append(ref)
        return ref

    def do_VIF_create(self, record):
        vm = self._get("VM", record["VM"])
        self._get("network", record["network"])
        device = record["device"]
        if not device.isdigit():
            raise XapiFailure("INVALID_DEVICE", device)
        if any(int(self.objects["VIF"][v]["device"]) == int(device) for v in vm["VIFs"]):
            raise XapiFailure("DEVICE_ALREADY_EXISTS", device)
        fields = {k: v for k, v in record.items() if k not in ("VM", "MTU", "other_config")}
        return self._new_vif(record["VM"], **fields)

    def do_VIF_get_record(self, vif):
        return dict(self._get("VIF", vif))

    def do_VIF_destroy(self, vif):
        record = self._get("VIF", vif)
        self.objects["VM"][record["VM"]]["VIFs"].remove(vif)
        del self.objects["VIF"][vif]
        return ""

    def _new_vbd(self, vm: str, vdi: str, **fields) -> str:
        ref = self.add("VBD", **({"bootable": False, "other_config": {}} | fields), VM=vm, VDI=vdi)
        self.objects["VBD"][ref]["currently_attached"] = False
        self.objects["VM"][vm]["VBDs"].append(ref)
        if vdi in self.objects["VDI"]:
            self.objects["VDI"][vdi]["VBDs"].append(ref)
        return ref

    def _drop_vbd(self, vbd: str) -> None:
        record = self.objects["VBD"].pop(vbd)
        self.objects["VM"][record["VM"]]["VBDs"].remove(vbd)
        if record["VDI"] in self.objects["VDI"]:
            self.objects["VDI"][record["VDI"]]["VBDs"].remove(vbd)

    VBD_FIELDS = (
        "VM", "VDI", "userdevice", "bootable", "mode", "type", "unpluggable", "empty",
        "other_config", "qos_algorithm_type", "qos_algorithm_params",
    )  # fmt: skip

    def do_VBD_create(self, record):
        _require(record, self.VBD_FIELDS)
        vm = self._get("VM", record["VM"])
        if not record["empty"]:
            self._get("VDI", record["VDI"])
        if record["type"] == "CD" and record["mode"] != "RO":
            raise XapiFailure("VBD_CDS_MUST_BE_READONLY")
        if record["type"] != "CD" and record["empty"]:
            raise XapiFailure("VBD_NOT_REMOVABLE_MEDIA", "in constructor")
        if self.cd_needs_iso_sr and record["type"] == "CD" and not record["empty"]:
            content_type = self.objects["SR"][self.objects["VDI"][record["VDI"]]["SR"]]["content_type"]
            if content_type != "iso":
                raise XapiFailure("VDI_IS_NOT_ISO", record["VDI"], content_type)
        device = record["userdevice"]
        if not device.isdigit():
            raise XapiFailure("INVALID_DEVICE", device)
        if any(int(self.objects["VBD"][v]["userdevice"]) == int(device) for v in vm["VBDs"]):
            raise XapiFailure("DEVICE_ALREADY_EXISTS", device)
        fields = {k: record[k] for k in ("userdevice", "bootable", "mode", "type", "unpluggable", "empty")}
        return self._new_vbd(record["VM"], record["VDI"], **fields, other_config=dict(record["other_config"]))

    def do_VBD_get_type(self, vbd):
        return self._get("VBD", vbd)["type"]

    def do_VBD_get_VDI(self, vbd):
        return self._get("VBD", vbd)["VDI"]

    def do_VBD_get_VM(self, vbd):
        return self._get("VBD", vbd)["VM"]

    def do_VBD_get_userdevice(self, vbd):
        return self._get("VBD", vbd)["userdevice"]

    def do_VBD_get_currently_attached(self, vbd):
        return self._get("VBD", vbd)["currently_attached"]

    def do_VBD_destroy(self, vbd):
        if self._get("VBD", vbd)["currently_attached"]:
            raise XapiFailure("OPERATION_NOT_ALLOWED", "VBD currently attached to a running VM")
        self._drop_vbd(vbd)
        return ""

    VDI_FIELDS = (
        "name_label", "name_description", "SR", "virtual_size", "type", "sharable", "read_only",
        "other_config",
    )  # fmt: skip

    def do_VDI_create(self, record):
        _require(record, self.VDI_FIELDS)
        sr = self._get("SR", record["SR"])
        if "vdi_create" not in sr["allowed_operations"]:
            raise XapiFailure("SR_OPERATION_NOT_SUPPORTED", record["SR"])
        try:
            size = int(record["virtual_size"])
        except (TypeError, ValueError):
            raise XapiFailure("FIELD_TYPE_ERROR", "virtual_size") from None
        fields = {k: record[k] for k in self.VDI_FIELDS} | {"virtual_size": str(size)}
        fields["other_config"] = dict(record["other_config"])
        return self.add("VDI", **fields, uuid=str(uuid.uuid4()), VBDs=[], data=b"")

    def do_VDI_get_by_name_label(self, label):
        return self._by_label("VDI", label)

    def do_VDI_get_other_config(self, vdi):
        return dict(self._get("VDI", vdi)["other_config"])

    def do_VDI_get_VBDs(self, vdi):
        return list(self._get("VDI", vdi)["VBDs"])

    def do_VDI_destroy(self, vdi):
        record = self._get("VDI", vdi)
        if any(self.objects["VBD"][v]["currently_attached"] for v in record["VBDs"]):
            raise XapiFailure("VDI_IN_USE", vdi, "destroy")
        for vbd in list(record["VBDs"]):  # xapi removes the VDI's drives with it
            self._drop_vbd(vbd)
        del self.objects["VDI"][vdi]
        return ""

    # --- network ---
    def do_network_get_by_name_label(self, label):
        return self._by_label("network", label)

    def do_network_create(self, record):
        bridges = {n["bridge"] for n in self.objects["network"].values()}
        bridge = record.get("bridge", "")
        if not bridge:
            bridge = next(f"xapi{i}" for i in itertools.count() if f"xapi{i}" not in bridges)
        else:
            if len(bridge) > 15 or bridge.startswith(BRIDGE_PREFIXES):
                raise XapiFailure("INVALID_VALUE", "bridge", bridge)
            if bridge in bridges:
                raise XapiFailure("BRIDGE_NAME_EXISTS", bridge)
        return self.add(
            "network", **{**record, "bridge": bridge, "other_config": dict(record["other_config"])}
        )

    def do_network_get_bridge(self, network):
        return self._get("network", network)["bridge"]

    def do_network_get_MTU(self, network):
        return self._get("network", network).get("MTU", "1500")  # int64 as a string

    def do_network_get_other_config(self, network):
        return dict(self._get("network", network)["other_config"])

    def do_network_add_to_other_config(self, network, key, value):
        config = self._get("network", network)["other_config"]
        if key in config:
            raise XapiFailure("MAP_DUPLICATE_KEY", "network", "other_config", network, key)
        config[key] = value
        return ""

    def do_network_remove_from_other_config(self, network, key):
        self._get("network", network)["other_config"].pop(key, None)
        return ""

    def do_network_destroy(self, network):
        if any(v["network"] == network for v in self.objects["VIF"].values()):
            raise XapiFailure("NETWORK_CONTAINS_VIF", network)
        self._get("network", network)
        del self.objects["network"][network]
        return ""

    # --- what dom0 does in its Open vSwitch -----------------------------------------------

    def _vsctl(self, host: str, *argv: str) -> str:
        code, out, err = self.dom0_ovs[host](["ovs-vsctl", "--timeout=30", *argv])
        assert code == 0, f"dom0 of {self.host_name(host)}: ovs-vsctl {' '.join(argv)}: {err}"
        return out

    def _vif_ports(self, vm: str) -> list[tuple[str, str, dict]]:
        obj = self.objects["VM"][vm]
        return [
            (f"vif{obj['domid']}.{vif['device']}", self.objects["network"][vif["network"]]["bridge"], vif)
            for vif in (self.objects["VIF"][v] for v in obj["VIFs"])
        ]

    def _dom0_plugs(self, vm: str, host: str) -> None:
        if host not in self.dom0_ovs:
            return
        for dev, bridge, vif in self._vif_ports(vm):  # xapi's attach, then the vif script on `online`
            self._vsctl(
                host,
                "--", "--may-exist", "add-br", bridge,
                "--", "--if-exists", "del-port", dev,
                "--", "add-port", bridge, dev,
                "--", "set", "interface", dev, f'external-ids:"attached-mac"="{vif["MAC"]}"',
            )  # fmt: skip
        self._ovs_xapi_sync(host)

    def _dom0_unplugs(self, vm: str) -> None:
        host = self.objects["VM"][vm].get("resident_on")
        if host not in self.dom0_ovs:
            return
        for dev, _, _ in self._vif_ports(vm):  # the vif script, on `remove`
            self._vsctl(host, "--", "--if-exists", "del-port", dev)

    def _ovs_xapi_sync(self, host: str) -> None:
        """ovs-xapi-sync's rule for each bridge it has not configured yet that backs a network."""
        pool = next(iter(self.objects["pool"].values()))
        for bridge in self._vsctl(host, "list-br").split():
            network = next((n for n in self.objects["network"].values() if n["bridge"] == bridge), None)
            if network is None or bridge in self._synced[host]:
                continue
            config = network["other_config"]
            fail_mode = config.get("vswitch-controller-fail-mode") or pool["other_config"].get(
                "vswitch-controller-fail-mode"
            )
            if fail_mode not in ("standalone", "secure"):
                fail_mode = "standalone"
            self._vsctl(host, "set", "bridge", bridge, f"fail_mode={fail_mode}")
            in_band = config.get("vswitch-disable-in-band")
            if in_band is None:
                self._vsctl(host, "remove", "bridge", bridge, "other_config", "disable-in-band")
            elif in_band in ("true", "false"):
                self._vsctl(host, "set", "bridge", bridge, f"other_config:disable-in-band={in_band}")
            self._synced[host].add(bridge)
