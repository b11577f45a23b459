from labctl.inventory import parse_inventory
from labctl.verify import (
    PingResult,
    first_wave_spacing_ms,
    in_first_half,
    parse_fping,
    result_of,
)
from labctl.verify_report import render_table, summary
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
