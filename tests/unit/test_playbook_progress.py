"""What a playbook run (and up/down) shows while it works: plain lines in CI, a live line on a terminal."""

from __future__ import annotations

import io

from labctl.progress import CLEAR_LINE, Reporter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ci_logs_get_plain_lines_without_terminal_control_codes():
    log = io.StringIO()
    report = Reporter(stream=log)
    report.changed("host1", "bridge br0 created")
    report.info("host2", "already there")
    lines = log.getvalue().splitlines()
    assert [line.split("s ", 1)[1] for line in lines] == [
        "[host1] bridge br0 created",
        "[host2] already there",
    ]
    assert "\x1b" not in log.getvalue() and "\r" not in log.getvalue()
    assert report.changes == 1


def test_a_terminal_gets_the_lines_and_a_status_line_per_host_that_is_erased_before_results(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    screen = Terminal()
    report = Reporter(stream=screen)
    report.changed("host1", "bridge br0 created")
    report.changed("host2", "vm vm2 started")
    report.changed("host1", "tunnel gre-host2 added")
    shown = screen.getvalue()
    assert "[host1] tunnel gre-host2 added\n" in shown  # the history still scrolls by
    status = shown.rsplit("\n", 1)[1]  # the line being redrawn, no newline yet
    assert "host1 2: tunnel gre-host2 added" in status and "host2 1: vm vm2 started" in status
    report.settle()
    assert screen.getvalue().endswith(CLEAR_LINE)
    assert report.changes == 3


def test_quiet_shows_nothing_even_on_a_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    screen = Terminal()
    report = Reporter(quiet=True, stream=screen)
    report.changed("host1", "bridge br0 created")
    report.settle()
    assert screen.getvalue() == "" and report.changes == 1
