from labctl.inventory import parse_inventory
from labctl.verify import PingResult, parse_fping, render_table, result_of

FPING = """172.16.0.2 : 7.68 0.594 0.251
172.16.0.9 : - - -
172.16.0.3 : 0.5 - 0.7
"""
LAB = parse_inventory(
    "name: demo\nhosts:\n  h1: {vms: {vm1: {ip: 172.16.0.1/24}}}\n  h2: {vms: {vm2: {ip: 172.16.0.2/24}}}\n"
)


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
    assert table.splitlines()[-1] == "1/2 pairs reachable with 0% loss"
