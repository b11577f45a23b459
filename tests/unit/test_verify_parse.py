from labctl.inventory import parse_inventory
from labctl.sweep import PairOutcome
from labctl.transport.base import Completed
from labctl.verify import PingResult, parse_fping, ping_all, result_of
from labctl.verify_report import failure, render_table, summary, to_json
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
