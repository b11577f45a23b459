from labctl.verify import PingResult, parse_ping, render_table

OK = """PING 172.16.0.2 (172.16.0.2) 56(84) bytes of data.

--- 172.16.0.2 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 402ms
rtt min/avg/max/mdev = 0.412/2.490/6.590/2.900 ms
"""
LOSS = """--- 172.16.0.2 ping statistics ---
3 packets transmitted, 1 received, 66.6667% packet loss, time 2030ms
rtt min/avg/max/mdev = 0.4/0.4/0.4/0 ms
"""


def test_parse_successful_ping():
    r = parse_ping("vm1", "vm2", "172.16.0.2", OK, 3)
    assert (r.sent, r.received, r.loss_pct, r.rtt_avg_ms, r.ok) == (3, 3, 0.0, 2.49, True)


def test_parse_partial_loss_is_not_ok():
    r = parse_ping("vm1", "vm2", "172.16.0.2", LOSS, 3)
    assert (r.received, r.loss_pct, r.ok) == (1, 66.7, False)


def test_unparseable_output_is_an_error_result():
    r = parse_ping("vm1", "vm2", "172.16.0.2", "connect: Network is unreachable\n", 3)
    assert not r.ok and r.error == "connect: Network is unreachable"


def test_table_lists_every_pair_and_a_summary():
    rows = [
        PingResult("vm1", "vm2", "172.16.0.2", 3, 3, 0.1, 0.2, 0.3),
        PingResult("vm2", "vm1", "172.16.0.1", 3, 0, None, None, None),
    ]
    table = render_table(rows)
    assert "vm1 -> vm2 (172.16.0.2)" in table and "100%" in table
    assert table.splitlines()[-1] == "1/2 pairs reachable with 0% loss"
