"""Playbooks: what CI smoke tests and workshops run, step by step, with JUnit results."""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.lab

SMOKE = REPO / "playbooks" / "ci-smoke.yaml"


def junit_cases(path) -> dict[str, str]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuite"
    status = {}
    for case in root.iter("testcase"):
        status[case.get("name")] = (
            "failed"
            if case.find("failure") is not None
            else "skipped"
            if case.find("skipped") is not None
            else "passed"
        )
    return status


def test_ci_smoke_playbook_passes_and_its_junit_parses(make_lab, tmp_path):
    lab = make_lab()  # the playbook's steps on a lab of the test's own
    report = tmp_path / "smoke.xml"
    result = lab.run("run", str(SMOKE), "--junit", str(report))
    assert "ci-smoke: 6 passed, 0 failed, 0 skipped" in result.stdout
    cases = junit_cases(report)
    assert len(cases) == 6 and set(cases.values()) == {"passed"}


def test_workshop_playbook_shows_flows_expiring_and_a_link_breaking_a_ping(make_lab):
    lab = make_lab()
    result = lab.run("run", str(REPO / "playbooks" / "workshop-timeouts.yaml"), "--json", timeout=180)
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [s["status"] for s in report["steps"]] == ["passed"] * 10


def test_a_failing_step_exits_1_and_junit_marks_exactly_that_step(make_lab, tmp_path):
    lab = make_lab()
    report = tmp_path / "failing.xml"
    result = lab.run(
        "run", str(REPO / "tests" / "data" / "failing-playbook.yaml"), "--junit", str(report), check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "expected vm1 not to reach vm2, saw 1/1 answered" in result.stdout
    cases = junit_cases(report)
    assert list(cases.values()) == ["passed", "failed", "skipped", "passed"]  # down still ran
    failure = ET.parse(report).getroot().find(".//failure")
    assert "failing-playbook.yaml:4" in failure.text


def test_a_step_that_cannot_run_exits_3_and_down_still_runs(make_lab, tmp_path):
    lab = make_lab()
    book = tmp_path / "no-up.yaml"
    book.write_text(
        "name: no-up\nsteps:\n"
        "  - flows-contain: {host: host1, match: icmp}\n"
        "  - ping: {from: vm1, to: vm2}\n"
        "  - down\n"
    )
    result = lab.run("run", str(book), "--json", check=False)
    assert result.returncode == 3, result.stdout + result.stderr  # no lab: ovs-ofctl cannot reach host1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["exit"] == 3
    steps = report["steps"]
    assert [s["status"] for s in steps] == ["failed", "skipped", "passed"]
    assert "host1" in steps[0]["message"]


def test_a_broken_playbook_is_refused_with_its_line(make_lab, tmp_path):
    lab = make_lab()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - up\n  - pingg: {from: vm1, to: vm2}\n  - ping: {from: vm1}\n")
    result = lab.run("run", str(bad), check=False)
    assert result.returncode == 2
    assert f"{bad}:4: steps.1: expected one of" in result.stderr
    assert f"{bad}:5: steps.2.ping.to: Field required" in result.stderr


def test_the_ci_workflow_runs_the_same_smoke_playbooks():
    workflow = yaml.safe_load((REPO / "docs" / "ci" / "github-actions.yml").read_text())
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    commands = [argv[1:] if argv[:1] == ["sudo"] else argv for argv in map(shlex.split, runs)]
    playbooks = [
        argv[argv.index("run") + 1] for argv in commands if argv and "labctl" in argv[0] and "run" in argv
    ]
    # exactly the playbooks the tests run (this file and tests/e2e/test_nested_guests.py)
    assert [REPO / p for p in playbooks] == [SMOKE, REPO / "playbooks" / "ci-nested.yaml"]
    assert any(argv[-1:] == ["scripts/setup.sh"] for argv in commands)
    assert any(argv[-2:] == ["scripts/setup.sh", "--libvirt"] for argv in commands)
