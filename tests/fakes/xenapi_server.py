"""A small XenAPI server on 127.0.0.1: the real wire protocol (XML-RPC, every
result a {Status, Value} or {Status, ErrorDescription} struct), an in-memory
pool, and a list of every call made, for tests to check.

Only the calls labctl's xenserver driver makes are implemented; any other call
fails the way xapi does (MESSAGE_METHOD_UNKNOWN).
"""

from __future__ import annotations

import itertools
import threading
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

READ_ONLY = ("get_", "login_with_password", "logout")


class XapiFailure(Exception):
    def __init__(self, *description: str):
        self.description = list(description)


class FakeXenAPI:
    def __init__(self, user: str = "root", password: str = "secret"):
        self.user, self.password = user, password
        self.calls: list[tuple] = []  # (method, args without the session ref)
        self.sessions: set[str] = set()
        self.objects: dict[str, dict[str, dict]] = {"VM": {}, "VIF": {}, "network": {}, "VBD": {}, "VDI": {}}
        self._refs = itertools.count(1)
        self._domids = itertools.count(1)
        self.add(
            "VM", name_label="Debian Template", is_a_template=True, power_state="Halted", VIFs=[], VBDs=[]
        )
        self.add("network", name_label="Pool-wide network associated with eth0", bridge="xenbr0")
        self.server = SimpleXMLRPCServer(
            ("127.0.0.1", 0), requestHandler=SimpleXMLRPCRequestHandler, allow_none=True, logRequests=False
        )
        self.server.register_instance(self)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeXenAPI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def add(self, cls: str, **fields) -> str:
        ref = f"OpaqueRef:{cls}-{next(self._refs)}"
        self.objects[cls][ref] = fields
        return ref

    def changes(self) -> list[tuple]:
        """The calls that changed something (not get_*, login, logout)."""
        return [c for c in self.calls if not c[0].split(".")[1].startswith(READ_ONLY)]

    # --- the wire ---
    def _dispatch(self, method: str, params: tuple):
        try:
            if method == "session.login_with_password":
                return {"Status": "Success", "Value": self._login(*params[:2])}
            if method == "session.logout":
                self.sessions.discard(params[0])
                return {"Status": "Success", "Value": ""}
            if not params or params[0] not in self.sessions:
                raise XapiFailure("SESSION_INVALID", str(params[0] if params else ""))
            args = params[1:]
            self.calls.append((method, *args))
            handler = getattr(self, "do_" + method.replace(".", "_"), None)
            if handler is None:
                raise XapiFailure("MESSAGE_METHOD_UNKNOWN", method)
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

    # --- VM ---
    def do_VM_get_by_name_label(self, label):
        return self._by_label("VM", label)

    def do_VM_clone(self, template, label):
        source = self._get("VM", template)
        disk = self.add("VDI", name_label=f"{label} disk")
        vbd = self.add("VBD", type="Disk", VDI=disk)
        cd = self.add("VBD", type="CD", VDI="OpaqueRef:NULL")
        return self.add(
            "VM",
            name_label=label,
            is_a_template=source["is_a_template"],
            power_state="Halted",
            VIFs=[],
            VBDs=[vbd, cd],
            domid=-1,
        )

    def do_VM_provision(self, vm):
        self._get("VM", vm)["is_a_template"] = False
        return ""

    def do_VM_start(self, vm, paused, force):
        obj = self._get("VM", vm)
        if obj["is_a_template"]:
            raise XapiFailure("VM_IS_TEMPLATE", vm)
        obj["power_state"], obj["domid"] = "Running", next(self._domids)
        return ""

    def do_VM_hard_shutdown(self, vm):
        obj = self._get("VM", vm)
        obj["power_state"], obj["domid"] = "Halted", -1
        return ""

    def do_VM_get_power_state(self, vm):
        return self._get("VM", vm)["power_state"]

    def do_VM_get_domid(self, vm):
        return str(self._get("VM", vm)["domid"])  # xapi sends int fields as strings

    def do_VM_get_VIFs(self, vm):
        return list(self._get("VM", vm)["VIFs"])

    def do_VM_get_VBDs(self, vm):
        return list(self._get("VM", vm)["VBDs"])

    def do_VM_destroy(self, vm):
        obj = self._get("VM", vm)
        if obj["power_state"] != "Halted":
            raise XapiFailure("VM_BAD_POWER_STATE", vm, "halted", obj["power_state"].lower())
        for vbd in obj["VBDs"]:
            self.objects["VBD"].pop(vbd, None)
        del self.objects["VM"][vm]
        return ""

    # --- VIF, VBD, VDI ---
    def do_VIF_create(self, record):
        self._get("VM", record["VM"])
        self._get("network", record["network"])
        ref = self.add("VIF", **record)
        self.objects["VM"][record["VM"]]["VIFs"].append(ref)
        return ref

    def do_VIF_destroy(self, vif):
        record = self._get("VIF", vif)
        self.objects["VM"][record["VM"]]["VIFs"].remove(vif)
        del self.objects["VIF"][vif]
        return ""

    def do_VBD_get_type(self, vbd):
        return self._get("VBD", vbd)["type"]

    def do_VBD_get_VDI(self, vbd):
        return self._get("VBD", vbd)["VDI"]

    def do_VDI_destroy(self, vdi):
        self._get("VDI", vdi)
        del self.objects["VDI"][vdi]
        return ""

    # --- network ---
    def do_network_get_by_name_label(self, label):
        return self._by_label("network", label)

    def do_network_create(self, record):
        bridge = record.get("bridge") or f"xapi{len(self.objects['network'])}"
        return self.add("network", **{**record, "bridge": bridge})

    def do_network_get_bridge(self, network):
        return self._get("network", network)["bridge"]

    def do_network_destroy(self, network):
        if any(v["network"] == network for v in self.objects["VIF"].values()):
            raise XapiFailure("NETWORK_CONTAINS_VIF", network)
        self._get("network", network)
        del self.objects["network"][network]
        return ""
