import xml.etree.ElementTree as ET

import pytest

from labctl.inventory import parse_inventory
from labctl.sweep import PairOutcome
from labctl.transport.base import Completed
from labctl.verify import (
    FIND_TOOL,
    PingResult,
    _ping,
    parse_fping,
    parse_ping,
    passed,
    ping_all,
    ping_argv,
    result_of,
)
from labctl.verify_report import failure, render_table, summary, to_json, write_junit
from tests.conftest import n_hosts

FPING = """172.16.0.2 : 7.68 0.594 0.251
172.16.0.9 : - - -
172.16.0.3 : 0.5 - 0.7
"""
LAB = parse_inventory(n_hosts(2, name="demo"))


def test_fping_output_gives_rtts_per_target_with_losses():
    assert parse_fping(FPING) == {
        "172.16.0.2": [7.68, 0.594, 0.251],
        "172.16.0.9": [None, None, None],
        "172.16.0.3": [0.5, None, 0.7],
    }


def measured(*rtts, setup="answered", setup_ms=5.5):
    return PairOutcome(setup=setup, setup_ms=setup_ms if setup == "answered" else None, rtts=list(rtts))


def test_all_answers_make_an_ok_pair():
    r = result_of(LAB.vm("vm1"), LAB.vm("vm2"), measured(7.68, 0.594, 0.251), 3)
    assert (r.sent, r.received, r.loss_pct, r.rtt_min_ms, r.rtt_max_ms, r.first_rtt_ms, r.ok) == (
        3,
        3,
        0.0,
        0.251,
        7.68,
        5.5,
        True,
    )
    assert r.failed_in is None and r.to_json()["failed"] is None


def test_a_pair_set_up_that_then_loses_packets_failed_in_the_measurement():
    r = result_of(LAB.vm("vm1"), LAB.vm("vm2"), measured(0.5, None, 0.7), 3)
    assert (r.received, r.loss_pct, r.ok, r.failed_in) == (2, 33.3, False, "measurement")


def test_no_answer_at_all_failed_in_the_set_up_and_keeps_the_probes_error():
    r = result_of(
        LAB.vm("vm1"), LAB.vm("vm2"), measured(None, None, None, setup="none"), 3, "fping: no socket"
    )
    assert (r.ok, r.received, r.failed_in, r.error) == (False, 0, "set-up", "fping: no socket")


def test_a_pair_that_answered_only_after_its_set_up_time_is_a_slow_set_up_not_loss():
    r = result_of(LAB.vm("vm1"), LAB.vm("vm2"), measured(None, 0.4, 0.5, setup="late"), 3)
    assert (r.ok, r.failed_in, r.setup, r.first_rtt_ms) == (False, "set-up", "late", None)
    assert failure(r) == "slow set-up: answered only after its set-up time (172.16.0.2)"
    row = render_table([r]).splitlines()[1]
    assert "slow set-up" in row and "%" not in row  # no loss figure: the path was not set up yet


def test_table_lists_every_pair_and_a_summary():
    rows = [
        PingResult("vm1", "vm2", "172.16.0.2", 3, 3, 0.1, 0.2, 0.3, first_rtt_ms=5.5),
        PingResult("vm2", "vm1", "172.16.0.1", 3, 0, None, None, None, setup="none"),
    ]
    table = render_table(rows)
    assert "vm1 -> vm2 (172.16.0.2)  5.50" in table and "set-up failed: never answered" in table
    assert table.splitlines()[-1] == "1/2 pairs answered; failed: set-up (1 pair never answered)"


def pair(received: int, sent: int = 3, error: str | None = None, setup: str = "answered") -> PingResult:
    rtt = (0.1, 0.2, 0.3) if received else (None, None, None)
    return PingResult("vm1", "vm2", "172.16.0.2", sent, received, *rtt, error=error, setup=setup)


def test_summary_when_every_pair_answered_every_ping_is_short():
    assert summary([pair(3), pair(3)]) == "2/2 pairs answered, no packet lost"


def test_summary_says_which_part_failed_set_up_or_measurement():
    assert (
        summary([pair(3), pair(3), pair(2), pair(0, setup="none")])
        == "3/4 pairs answered; failed: set-up (1 pair never answered), measurement (1 pair lost packets)"
    )
    assert (
        summary([pair(3), pair(1), pair(2)])
        == "3/3 pairs answered; failed: measurement (2 pairs lost packets)"
    )
    assert summary([pair(3, setup="late"), pair(2, setup="late"), pair(0, setup="none")]) == (
        "2/3 pairs answered; failed: set-up (2 pairs slow: answered only after their set-up time, "
        "1 pair never answered)"
    )


def test_summary_when_nothing_answers_says_so_and_not_that_nothing_was_lost():
    silent = [pair(0, setup="none"), pair(0, error="fping: can't create socket", setup="none")]
    assert summary(silent) == "0/2 pairs answered; failed: set-up (2 pairs never answered)"


def test_a_controller_that_failed_during_the_pings_fails_the_run_whatever_the_pairs_say():
    problem = "controller os-ken is not running"
    assert summary([pair(3)], [problem]) == f"1/1 pairs answered; failed: the controller ({problem})"
    report = to_json("demo", [pair(3)], controller=[problem])
    assert report["ok"] is False and report["controller_problems"] == [problem]
    assert to_json("demo", [pair(3)])["ok"] is True and "controller_problems" not in to_json(
        "demo", [pair(3)]
    )


def star(n: int):
    return parse_inventory(n_hosts(n, name="demo"))


class FakeVmTransport:
    """A VM reached by a command (a real host over SSH): fping there answers from every
    target but `silent` ones, once each. Remembers every argv it ran."""

    def __init__(self, vm, runs: list, silent: set):
        self.vm, self.runs, self.silent = vm, runs, silent

    def netns_path(self):
        return None

    def run(self, argv, check=True, timeout=60):
        if list(argv) == ["sh", "-c", FIND_TOOL]:
            return Completed(tuple(argv), 0, "/usr/bin/fping\n", "")
        self.runs.append((self.vm.name, list(argv)))
        targets = [a for a in argv if a.startswith("172.16.")]
        lost = [t for t in targets if (self.vm.name, t) in self.silent]
        self.silent -= {(self.vm.name, t) for t in lost}
        lines = [f"{t} : {'-' if t in lost else '1.25'}" for t in targets]
        return Completed(tuple(argv), 1 if lost else 0, "", "\n".join(lines))


def test_vms_reached_by_command_are_pinged_by_fping_one_process_per_source_and_batch():
    lab = star(3)
    runs: list = []
    silent = {("vm1", "172.16.0.3")}  # its set-up probe is lost once, then it answers
    results = ping_all(lab, lambda vm: FakeVmTransport(vm, runs, silent), count=2, period_ms=10)
    assert all(r.ok and r.rtt_avg_ms == 1.25 for r in results) and len(results) == 6
    for _, argv in runs:
        targets = [a for a in argv if a.startswith("172.16.")]
        assert argv[:3] == ["fping", "-q", "-C"] and len(targets) == len(set(targets))


# --- the full-size probe -------------------------------------------------------------------


def probed(full: bool | None, received: int = 3, size: int = 1462) -> PingResult:
    rtt = (0.1, 0.2, 0.3) if received else (None, None, None)
    return PingResult("vm1", "vm2", "172.16.0.2", 3, received, *rtt, mtu_probe_bytes=size, mtu_probe_ok=full)


def test_small_pings_answered_and_the_full_size_probe_lost_is_a_black_hole_not_loss():
    hole = probed(full=False, size=1500)
    assert hole.mtu_black_hole and not hole.ok and hole.loss_pct == 0
    assert failure(hole) == (
        "MTU black hole to 172.16.0.2 (1500-byte packets dropped, with Don't Fragment; small pings pass)"
    )
    assert summary([hole, probed(full=True)]) == (
        "2/2 pairs answered; failed: MTU (1 pair is an MTU black hole: 1500-byte packets dropped, "
        "small pings pass)"
    )
    assert (
        to_json("demo", [hole])["pairs"][0].items()
        >= {
            "mtu_probe_bytes": 1500,
            "mtu_probe_ok": False,
            "mtu_black_hole": True,
            "loss_pct": 0.0,
            "ok": False,
            "failed": "MTU",
        }.items()
    )
    assert to_json("demo", [hole])["ok"] is False


def test_a_pair_that_loses_small_pings_too_is_loss_whatever_the_full_size_probe_did():
    lossy = probed(full=False, received=2)
    assert not lossy.mtu_black_hole and not lossy.ok
    assert failure(lossy) == "33.3% loss to 172.16.0.2"
    assert summary([lossy, lossy]) == "2/2 pairs answered; failed: measurement (2 pairs lost packets)"


def test_the_table_has_a_column_for_the_full_size_probe():
    table = render_table([probed(full=True), probed(full=False, size=1500), probed(full=None)])
    header, ok, hole, unsent = table.splitlines()[:4]
    at = header.index("MTU")
    assert header[at:].split()[0] == "MTU" and header.index("LOSS") < at < header.index("RTT")
    assert ok[at:].startswith("1462 ok ") and hole[at:].startswith("1500 BLACK HOLE ")
    assert unsent[at:].startswith("- ")  # not sent (a result from before the probe existed)
    assert table.splitlines()[-1].endswith(
        "failed: MTU (1 pair is an MTU black hole: 1500-byte packets dropped, small pings pass)"
    )


def test_junit_says_black_hole_in_the_failure_and_what_was_sent_in_the_detail(tmp_path):
    path = tmp_path / "verify.xml"
    write_junit(path, "demo", [probed(full=True), probed(full=False, size=1500)])
    cases = ET.parse(path).getroot().findall(".//testcase")
    assert cases[0].find("failure") is None
    failed = cases[1].find("failure")
    assert failed.get("message").startswith("MTU black hole to 172.16.0.2 (1500-byte packets dropped")
    assert "full-size probe (1500 bytes, Don't Fragment) lost" in ET.tostring(cases[1], encoding="unicode")


class FakeVm:
    """Runs `fping` as if inside a VM of a lab whose tunnels carry packets of `carries`
    bytes at most: small probes come back, bigger ones with Don't Fragment vanish.
    `lose_once` loses the first full-size probe to those addresses only."""

    def __init__(self, carries: int, lose_once: set[str] = frozenset(), fail_full_size: bool = False):
        self.carries, self.lose_once, self.fail_full_size = carries, set(lose_once), fail_full_size
        self.calls: list[list[str]] = []

    def netns_path(self):
        return None  # reached by a command: verify runs fping there

    def run(self, argv, check=False, timeout=None):
        argv = list(argv)
        if argv == ["sh", "-c", FIND_TOOL]:
            return Completed(tuple(argv), 0, "/usr/bin/fping\n", "")
        self.calls.append(argv)
        count = int(argv[argv.index("-C") + 1])
        payload = int(argv[argv.index("-b") + 1]) if "-b" in argv else 56
        targets = [a for a in argv if a.startswith("172.16.")]
        if payload != 56 and self.fail_full_size:
            return Completed(tuple(argv), 4, "", "fping: can't set don't fragment\n")
        lines = []
        for target in targets:
            fits = payload + 28 <= self.carries  # 28: the IPv4 and ICMP headers
            if payload != 56 and target in self.lose_once:
                self.lose_once.discard(target)
                fits = False
            lines.append(f"{target} : " + " ".join(["0.5" if fits else "-"] * count))
        return Completed(tuple(argv), 0, "", "\n".join(lines) + "\n")


def run_verify(lab, vm: FakeVm):
    return ping_all(lab, lambda _: vm, count=3, period_ms=1, timeout_ms=1)


def test_verify_sends_one_full_size_probe_per_pair_with_dont_fragment():
    vm = FakeVm(carries=1462)
    results = run_verify(LAB, vm)
    assert all(r.ok and r.mtu_probe_ok and r.mtu_probe_bytes == 1462 for r in results)
    full = sorted(argv for argv in vm.calls if "-b" in argv)  # one fping per source VM, side by side
    assert full == [
        ["fping", "-q", "-C", "1", "-p", "1000", "-t", "1", "-i", "10", "-b", "1434", "-M", "172.16.0.1"],
        ["fping", "-q", "-C", "1", "-p", "1000", "-t", "1", "-i", "10", "-b", "1434", "-M", "172.16.0.2"],
    ]


def test_a_tunnel_that_carries_less_than_the_vms_send_is_reported_as_a_black_hole():
    big = parse_inventory(n_hosts(2, name="demo") + "mtu: 1500\n")
    vm = FakeVm(carries=1462)
    results = run_verify(big, vm)
    assert [r.mtu_black_hole for r in results] == [True, True]
    assert all(r.received == r.sent == 3 and not r.ok for r in results)
    # each lost full-size probe went twice before the pair was called a black hole
    assert len([argv for argv in vm.calls if "-b" in argv]) == 4


def test_one_full_size_probe_lost_once_is_sent_again_and_not_taken_for_a_black_hole():
    vm = FakeVm(carries=1462, lose_once={"172.16.0.2"})
    results = run_verify(LAB, vm)
    assert all(r.ok and r.mtu_probe_ok for r in results)
    assert sorted(argv[-1] for argv in vm.calls if "-b" in argv) == ["172.16.0.1", "172.16.0.2", "172.16.0.2"]


def test_fping_failing_on_the_full_size_probe_is_an_error_not_a_black_hole():
    results = run_verify(LAB, FakeVm(carries=1462, fail_full_size=True))
    assert all(not r.ok and not r.mtu_black_hole for r in results)
    assert results[0].error == "full-size probe: fping: can't set don't fragment"


# --- which part failed, and pairs from a VM with no way in -----------------------------------


def test_the_summary_names_every_part_that_failed_in_one_line():
    results = [
        pair(0, setup="none"),
        pair(2),
        probed(full=False, size=1500),
        probed(full=True),
    ]
    line = summary(results, ["a bridge lost the controller: host2"])
    assert line == (
        "3/4 pairs answered; failed: the controller (a bridge lost the controller: host2), "
        "set-up (1 pair never answered), measurement (1 pair lost packets), "
        "MTU (1 pair is an MTU black hole: 1500-byte packets dropped, small pings pass)"
    )
    assert [r.failed_in for r in results] == ["set-up", "measurement", "MTU", None]


def test_a_slow_set_up_is_not_called_a_black_hole_whatever_its_full_size_probe_did():
    late = PingResult(
        "vm1",
        "vm2",
        "172.16.0.2",
        3,
        3,
        0.1,
        0.2,
        0.3,
        setup="late",
        mtu_probe_bytes=1462,
        mtu_probe_ok=False,
    )
    assert (late.failed_in, late.mtu_black_hole) == ("set-up", False)


class NoWayIn:
    """A VM labctl cannot enter: asking for its transport is a bug (a remote driver raises)."""

    def netns_path(self):
        raise AssertionError("verify asked for the transport of a VM with no way in")


def test_pairs_from_a_vm_with_no_way_in_are_not_run_and_the_other_way_round_still_is():
    lab = star(3)
    runs: list = []
    results = ping_all(
        lab,
        lambda vm: NoWayIn() if vm.name == "vm1" else FakeVmTransport(vm, runs, set()),
        count=2,
        period_ms=10,
        way_in=lambda vm: "real guest, no way in yet" if vm.name == "vm1" else None,
    )
    by_pair = {(r.src, r.dst): r for r in results}
    assert len(results) == 6 and passed(results)
    assert all(by_pair[("vm1", dst)].unverifiable == "real guest, no way in yet" for dst in ("vm2", "vm3"))
    assert all(
        by_pair[(src, "vm1")].ok and by_pair[(src, "vm1")].setup == "answered" for src in ("vm2", "vm3")
    )
    assert {src for src, _ in runs} == {"vm2", "vm3"}


class FakeSockets:
    """The socket side of a mixed lab: VMs `names` are namespaces here; every probe answers."""

    def __init__(self, names):
        self.pinger = type("Pinger", (), {"sockets": dict.fromkeys(names)})()
        self.sent, self.waits = [], []

    def send(self, probe):
        self.sent.append(probe)

    def replies(self, wait_s):
        self.waits.append(wait_s)
        answers, self.sent = [(p.id, 0.5) for p in self.sent], []
        return answers


def test_a_mixed_lab_pings_from_sockets_in_namespace_vms_and_with_fping_in_the_others():
    from labctl.sweep import Probe, Purpose
    from labctl.verify import FpingProber, MixedProber

    lab = star(3)
    runs: list = []
    fping = FpingProber({vm.name: vm for vm in lab.vms}, lambda vm: FakeVmTransport(vm, runs, set()), 1434)
    sockets = FakeSockets({"vm1", "vm2"})
    mixed = MixedProber(sockets, fping)  # type: ignore[arg-type]
    probes = [Probe(1, "vm1", "vm3", Purpose.SETUP, 2.0), Probe(2, "vm3", "vm1", Purpose.FULL_SIZE, 2.0)]
    for probe in probes:
        mixed.send(probe)
    assert sorted(mixed.replies(0.2)) == [(1, 0.5), (2, 1.25)]
    assert [vm for vm, _ in runs] == ["vm3"] and runs[0][1][-3:] == ["1434", "-M", "172.16.0.1"]
    assert sockets.waits == [0.0]  # fping ran meanwhile: the sockets' replies are not waited for again


# --- a VM without fping: ping, one target at a time ------------------------------------------

IPUTILS_REPLY = """PING 172.16.0.2 (172.16.0.2) 56(84) bytes of data.
64 bytes from 172.16.0.2: icmp_seq=1 ttl=64 time=0.734 ms

--- 172.16.0.2 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 0.734/0.734/0.734/0.000 ms
"""
BUSYBOX_REPLY = """PING 172.16.0.2 (172.16.0.2): 56 data bytes
64 bytes from 172.16.0.2: seq=0 ttl=64 time=1.250 ms

--- 172.16.0.2 ping statistics ---
1 packets transmitted, 1 packets received, 0% packet loss
round-trip min/avg/max = 1.250/1.250/1.250 ms
"""
NO_REPLY = """PING 172.16.0.2 (172.16.0.2) 56(84) bytes of data.

--- 172.16.0.2 ping statistics ---
1 packets transmitted, 0 received, 100% packet loss, time 0ms
"""


def test_ping_output_gives_the_round_trip_of_iputils_and_busybox_or_none():
    assert parse_ping(IPUTILS_REPLY) == 0.734
    assert parse_ping(BUSYBOX_REPLY) == 1.25
    assert parse_ping(NO_REPLY) is None


class PingOnlyVm:
    """A VM with ping and no fping, in a lab whose tunnels carry `carries` bytes at most;
    `dont_fragment`: False for a ping with no -M (busybox's). `late_ms`: replies come
    after that long (past the probe's timeout). Remembers every argv it ran."""

    def __init__(self, carries: int = 1462, dont_fragment: bool = True, late_ms: float | None = None):
        self.carries, self.dont_fragment, self.late_ms = carries, dont_fragment, late_ms
        self.calls: list[list[str]] = []

    def netns_path(self):
        return None

    def run(self, argv, check=False, timeout=None):
        argv = list(argv)
        self.calls.append(argv)
        if argv == ["sh", "-c", FIND_TOOL]:
            return Completed(tuple(argv), 0, "/bin/ping\n", "")
        assert argv[0] == "ping", argv
        if "-M" in argv and not self.dont_fragment:
            return Completed(tuple(argv), 1, "", "ping: invalid option -- 'M'\nBusyBox v1.35.0 usage...\n")
        payload = int(argv[argv.index("-s") + 1]) if "-s" in argv else 56
        target = argv[-1]
        if payload + 28 > self.carries:
            return Completed(tuple(argv), 1, NO_REPLY.replace("172.16.0.2", target), "")
        rtt = self.late_ms if self.late_ms is not None else 0.5
        reply = IPUTILS_REPLY.replace("172.16.0.2", target).replace("0.734", str(rtt))
        return Completed(tuple(argv), 0, reply, "")


def test_a_vm_without_fping_is_asked_once_and_pings_each_target_with_ping():
    vm = PingOnlyVm()
    results = ping_all(LAB, lambda _: vm, count=3, period_ms=1, timeout_ms=1000)
    assert all(r.ok and r.received == r.sent == 3 and r.rtt_avg_ms == 0.5 for r in results)
    assert all(r.mtu_probe_ok and r.mtu_probe_bytes == 1462 for r in results)
    # the same fake stands for both VMs: one question each, never again
    assert [argv for argv in vm.calls if argv[0] == "sh"] == [["sh", "-c", FIND_TOOL]] * 2
    pings = [argv for argv in vm.calls if argv[0] == "ping"]
    assert all(argv[:4] == ["ping", "-c", "1", "-W"] for argv in pings)
    full = sorted(argv for argv in pings if "-s" in argv)
    assert full == [
        ["ping", "-c", "1", "-W", "1", "-s", "1434", "-M", "do", "172.16.0.1"],
        ["ping", "-c", "1", "-W", "1", "-s", "1434", "-M", "do", "172.16.0.2"],
    ]


def test_with_ping_a_tunnel_that_drops_full_size_packets_is_a_black_hole_too():
    big = parse_inventory(n_hosts(2, name="demo") + "mtu: 1500\n")
    results = ping_all(big, lambda _: PingOnlyVm(carries=1462), count=3, period_ms=1, timeout_ms=1000)
    assert [r.mtu_black_hole for r in results] == [True, True]
    assert all(r.received == r.sent == 3 and not r.ok for r in results)


def test_a_ping_that_cannot_set_dont_fragment_makes_the_full_size_probe_an_error_not_a_pass():
    results = ping_all(LAB, lambda _: PingOnlyVm(dont_fragment=False), count=3, period_ms=1, timeout_ms=1000)
    assert all(not r.ok and not r.mtu_black_hole and r.received == 3 for r in results)
    assert results[0].error == "full-size probe: ping: invalid option -- 'M'"


def test_a_ping_reply_later_than_the_probes_timeout_is_lost_as_with_fping():
    # -W is whole seconds: ping waits up to 2 s for a 1.5 s timeout; a reply after 1.5 s is lost
    vm = PingOnlyVm(late_ms=1600.0)
    rtts, error = _ping(vm, [LAB.vm("vm2")], timeout_ms=1500)
    assert (rtts, error) == ({"172.16.0.2": [None]}, None)
    assert vm.calls == [["ping", "-c", "1", "-W", "2", "172.16.0.2"]]
    assert _ping(PingOnlyVm(late_ms=1400.0), [LAB.vm("vm2")], timeout_ms=1500) == (
        {"172.16.0.2": [1400.0]},
        None,
    )


class NoPingAtAll:
    def netns_path(self):
        return None

    def run(self, argv, check=False, timeout=None):
        assert list(argv) == ["sh", "-c", FIND_TOOL], argv
        return Completed(tuple(argv), 127, "", "")


def test_a_vm_with_neither_fping_nor_ping_says_so_in_its_pairs():
    results = ping_all(LAB, lambda vm: NoPingAtAll(), count=1, period_ms=1, timeout_ms=1)
    assert all(not r.ok and r.error == f"neither fping nor ping in {r.src}" for r in results)


@pytest.mark.parametrize("pinger", [["ping"], ["busybox", "ping"]], ids=["iputils", "busybox"])
def test_the_ping_argv_and_its_reading_hold_for_this_machines_ping_on_loopback(pinger):
    import shutil
    import subprocess

    if shutil.which(pinger[0]) is None:
        pytest.skip(f"{pinger[0]} is not installed here")
    small = subprocess.run(pinger + ping_argv("127.0.0.1", 1000)[1:], capture_output=True, text=True)
    assert small.returncode == 0 and parse_ping(small.stdout) is not None, small.stdout + small.stderr
    full = subprocess.run(pinger + ping_argv("127.0.0.1", 1000, 1434)[1:], capture_output=True, text=True)
    if pinger[0] == "busybox":  # no -M: an error, which _ping reports for the full-size probe
        assert full.returncode == 1 and full.stderr.startswith("ping: invalid option -- 'M'")
    else:
        assert full.returncode == 0 and parse_ping(full.stdout) is not None, full.stdout + full.stderr
