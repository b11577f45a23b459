"""OVS control-socket commands (what ovs-appctl sends), against a fake daemon socket."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from labctl.errors import CommandError
from labctl.unixctl import call_all


def fake_daemon(path: str, answer) -> threading.Thread:
    """A unix socket that answers each JSON-RPC request with answer(method, params),
    split across writes, the way a daemon's replies may arrive."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        decoder, buffer = json.JSONDecoder(), ""
        with conn, server:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buffer += data.decode()
                while buffer:
                    try:
                        request, end = decoder.raw_decode(buffer)
                    except json.JSONDecodeError:
                        break
                    buffer = buffer[end:]
                    result, error = answer(request["method"], request["params"])
                    reply = json.dumps({"id": request["id"], "result": result, "error": error}).encode()
                    conn.sendall(reply[:7])
                    conn.sendall(reply[7:])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_several_commands_go_over_one_connection_in_order(tmp_path):
    seen = []

    def answer(method, params):
        seen.append([method, *params])
        return "OK\n", None

    path = str(tmp_path / "ovs-vswitchd.1.ctl")
    thread = fake_daemon(path, answer)
    commands = [("tnl/neigh/set", "br-phy", f"10.250.0.{i}", "aa:bb:cc:dd:ee:0f") for i in (2, 3)]
    assert call_all(path, commands, "host1") == ["OK\n", "OK\n"]
    thread.join(timeout=5)
    assert seen == [list(c) for c in commands]


def test_a_command_the_daemon_refuses_is_a_command_error_naming_it(tmp_path):
    path = str(tmp_path / "ovs-vswitchd.1.ctl")
    fake_daemon(path, lambda method, params: (None, f'"{method}" is not a valid command'))
    with pytest.raises(CommandError) as info:
        call_all(path, [("tnl/neigh/sett", "br-phy")], "host1")
    assert str(info.value).startswith("host1: `ovs-appctl tnl/neigh/sett br-phy` exited 2")


def test_a_missing_socket_says_so(tmp_path):
    with pytest.raises(CommandError, match="cannot connect"):
        call_all(str(tmp_path / "gone.ctl"), [("version",)], "host1")


def test_a_socket_path_longer_than_sockaddr_un_holds_is_still_reached(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "ovs-vswitchd.12345.ctl"
    assert len(str(path)) > 108  # socket.connect(path) would say "AF_UNIX path too long"
    fd = os.open(deep, os.O_RDONLY)
    try:  # the fake daemon binds the same way, through its directory
        fake_daemon(f"/proc/self/fd/{fd}/{path.name}", lambda method, params: (f"{method} done", None))
    finally:
        os.close(fd)
    assert call_all(str(path), [("tnl/neigh/set", "br-phy", "10.250.0.2", "aa:bb:cc:dd:ee:ff")]) == [
        "tnl/neigh/set done"
    ]
