import xml.etree.ElementTree as ET

from labctl.inventory import parse_inventory
from labctl.transport.base import Completed
from labctl.verify import (
    PingResult,
    first_wave_spacing_ms,
    in_first_half,
    parse_fping,
    ping_all,
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


def test_all_answers_make_an_ok_pair():
    r = result_of(LAB.vm("vm1"), LAB.vm("vm2"), [7.68, 0.594, 0.251], 3, None)
    assert (r.sent, r.received, r.loss_pct, r.rtt_min_ms, r.rtt_max_ms, r.ok) == (
        3,
        3,
        0.0,
        0.251,
        7.68,
        True,
    )


def test_partial_loss_is_not_ok():
    r = result_of(LAB.vm("vm1"), LAB.vm("vm2"), [0.5, None, 0.7], 3, None)
    assert (r.received, r.loss_pct, r.ok) == (2, 33.3, False)


def test_no_answer_at_all_is_an_error_result():
    r = result_of(LAB.vm("vm1"), LAB.vm("vm2"), None, 3, "fping: can't create socket")
    assert not r.ok and r.received == 0 and r.error == "fping: can't create socket"


def test_table_lists_every_pair_and_a_summary():
    rows = [
        PingResult("vm1", "vm2", "172.16.0.2", 3, 3, 0.1, 0.2, 0.3, first_rtt_ms=5.5),
        PingResult("vm2", "vm1", "172.16.0.1", 3, 0, None, None, None),
    ]
    table = render_table(rows)
    assert "vm1 -> vm2 (172.16.0.2)  5.50" in table and "100%" in table
    assert table.splitlines()[-1] == "1/2 pairs answered; 1 pair did not answer"


def pair(received: int, sent: int = 3, error: str | None = None) -> PingResult:
    rtt = (0.1, 0.2, 0.3) if received else (None, None, None)
    return PingResult("vm1", "vm2", "172.16.0.2", sent, received, *rtt, error=error)


def test_summary_when_every_pair_answered_every_ping_is_short():
    assert summary([pair(3), pair(3)]) == "2/2 pairs answered, no packet lost"


def test_summary_counts_pairs_that_lost_some_packets_apart_from_pairs_that_never_answered():
    assert (
        summary([pair(3), pair(3), pair(2), pair(0)])
        == "3/4 pairs answered; 1 pair lost packets, 1 pair did not answer"
    )
    assert summary([pair(3), pair(1), pair(2)]) == "3/3 pairs answered; 2 pairs lost packets"


def test_summary_when_nothing_answers_says_so_and_not_that_nothing_was_lost():
    silent = [pair(0), pair(0, error="no answer"), pair(0, sent=0, error="fping: can't create socket")]
    assert summary(silent) == "0/3 pairs answered; 3 pairs did not answer"


def star(n: int, vms_per_host: int = 1):
    return parse_inventory(n_hosts(n, name="demo", vms_per_host=vms_per_host))


def test_the_first_wave_gives_every_vm_as_many_set_ups_and_covers_each_pair_once():
    for n in (2, 5, 32):
        vms = list(star(n).vms)
        ahead = in_first_half(vms)
        firsts = [(a.name, b.name) for a in vms for b in vms if a is not b and ahead(a, b)]
        # each unordered pair once in the first wave, the reverse in the second
        assert len(firsts) == n * (n - 1) // 2 and len(set(map(frozenset, firsts))) == len(firsts)
        per_vm = [sum(1 for a, _ in firsts if a == vm.name) for vm in vms]
        assert max(per_vm) - min(per_vm) <= 1


def test_the_first_wave_is_paced_by_how_many_switches_each_flood_reaches():
    # Worked by hand, with the controller taking about 4000 packet-ins a second: in each
    # spacing every VM sends one probe, whose ARP request reaches every switch (one
    # packet-in each).
    # 2 hosts, 2 VMs: 2 x 2 = 4 packet-ins, 1 ms: below fping's own 10 ms spacing.
    assert first_wave_spacing_ms(star(2)) == 10
    # 32 hosts, one VM each: 32 x 32 = 1024 packet-ins, 1024 / 4000 s = 256 ms.
    assert first_wave_spacing_ms(star(32)) == 256
    # 8 hosts, 4 VMs each: 32 VMs again, but each flood reaches 8 switches: 256 / 4000 s = 64 ms.
    assert first_wave_spacing_ms(star(8, vms_per_host=4)) == 64


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
        "2/2 pairs answered; 1 pair is an MTU black hole (1500-byte packets dropped, small pings pass)"
    )
    assert (
        to_json("demo", [hole])["pairs"][0].items()
        >= {
            "mtu_probe_bytes": 1500,
            "mtu_probe_ok": False,
            "mtu_black_hole": True,
            "loss_pct": 0.0,
            "ok": False,
        }.items()
    )
    assert to_json("demo", [hole])["ok"] is False


def test_a_pair_that_loses_small_pings_too_is_loss_whatever_the_full_size_probe_did():
    lossy = probed(full=False, received=2)
    assert not lossy.mtu_black_hole and not lossy.ok
    assert failure(lossy) == "33.3% loss to 172.16.0.2"
    assert summary([lossy, lossy]) == "2/2 pairs answered; 2 pairs lost packets"


def test_the_table_has_a_column_for_the_full_size_probe():
    table = render_table([probed(full=True), probed(full=False, size=1500), probed(full=None)])
    header, ok, hole, unsent = table.splitlines()[:4]
    at = header.index("MTU")
    assert header[at:].split()[0] == "MTU" and header.index("LOSS") < at < header.index("RTT")
    assert ok[at:].startswith("1462 ok ") and hole[at:].startswith("1500 BLACK HOLE ")
    assert unsent[at:].startswith("- ")  # not sent (a result from before the probe existed)
    assert table.splitlines()[-1].endswith(
        "1 pair is an MTU black hole (1500-byte packets dropped, small pings pass)"
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

    def run(self, argv, check=False, timeout=None):
        argv = list(argv)
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
    full = [argv for argv in vm.calls if "-b" in argv]
    assert full == [
        ["fping", "-q", "-C", "1", "-p", "1000", "-t", "1", "-i", "10", "-b", "1434", "-M", "172.16.0.2"],
        ["fping", "-q", "-C", "1", "-p", "1000", "-t", "1", "-i", "10", "-b", "1434", "-M", "172.16.0.1"],
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
    assert [argv[-1] for argv in vm.calls if "-b" in argv] == ["172.16.0.2", "172.16.0.1", "172.16.0.2"]


def test_fping_failing_on_the_full_size_probe_is_an_error_not_a_black_hole():
    results = run_verify(LAB, FakeVm(carries=1462, fail_full_size=True))
    assert all(not r.ok and not r.mtu_black_hole for r in results)
    assert results[0].error == "full-size probe: fping: can't set don't fragment"
