"""Announcements before verify's set-ups (announce.py): paced, heard, out of time; and the
gratuitous ARP they are (garp.py)."""

from __future__ import annotations

import socket

from labctl.announce import Announcements
from labctl.garp import announced, gratuitous_arp
from labctl.pacing import Pacer
from labctl.sweep import Purpose, Sweep

VMS = [f"vm{i}" for i in range(1, 7)]


def test_announcements_go_out_as_the_window_allows_and_end_when_every_vm_heard_them():
    pacer = Pacer(window=2)
    plan = Announcements(VMS, pacer)
    assert plan.due(0.0) == ["vm1", "vm2"]
    assert plan.due(0.0) == []  # the window is full
    for listener in VMS[1:]:
        plan.heard("vm1", listener, 0.01)
    assert plan.heard_by_all == ["vm1"] and pacer.window == 3  # slow start: one more per answer
    assert plan.due(0.01) == ["vm3", "vm4"]
    assert not plan.done


def test_an_announcement_half_the_vms_heard_frees_its_place_in_the_window():
    pacer = Pacer(window=1)
    plan = Announcements(VMS, pacer)
    assert plan.due(0.0) == ["vm1"]
    for listener in ("vm2", "vm3"):
        plan.heard("vm1", listener, 0.01)
    assert plan.due(0.01) == []  # 2 of 5: not half yet
    plan.heard("vm1", "vm4", 0.01)
    plan.heard("vm1", "vm4", 0.01)  # twice is once
    assert plan.due(0.01) == ["vm2", "vm3"]  # 3 of 5: vm1's slot is free, and the window grew
    for vm in ("vm2", "vm3"):
        for listener in VMS:
            plan.heard(vm, listener, 0.02)
    plan.expire(5.0)
    assert pacer.decreases == 0  # most VMs heard it quickly: no queue at the controller
    assert plan.due(5.0)[-1] == "vm1"  # once more, to vm5 and vm6 alone
    plan.heard("vm1", "vm5", 5.1)
    plan.expire(7.1)
    assert plan.not_heard["vm1"] == {"vm6"}


def test_an_announcement_most_vms_miss_halves_the_window_and_goes_once_more_to_those_who_missed_it():
    pacer = Pacer(window=4)
    plan = Announcements(VMS[:3], pacer, timeout_s=2.0)
    assert plan.due(0.0) == ["vm1", "vm2", "vm3"]
    for listener in ("vm1", "vm3"):
        plan.heard("vm2", listener, 0.1)
    plan.heard("vm1", "vm2", 0.1)  # one of two: half
    plan.expire(1.9)
    assert plan.not_heard == {} and not plan.done
    plan.expire(2.0)
    assert pacer.decreases == 1 and pacer.window == 3.0  # grew twice, then halved once for one queue
    assert plan.not_heard == {} and plan.due(2.0) == ["vm1", "vm3"]  # after the others, once more
    plan.heard("vm1", "vm3", 2.1)  # the one that missed it hears it now
    assert plan.heard_by_all == ["vm2", "vm1"]
    plan.expire(4.0)
    assert plan.not_heard == {"vm3": {"vm1", "vm2"}}  # twice unheard: over
    assert plan.done and plan.due(5.0) == []
    plan.heard("vm3", "vm2", 5.0)  # too late: changes nothing
    assert plan.heard_by_all == ["vm2", "vm1"]


def test_a_gratuitous_arp_announces_its_sender_and_an_ordinary_request_announces_nothing():
    mac = bytes.fromhex("0200ac100001")
    frame = gratuitous_arp(mac, "172.16.0.1")
    assert len(frame) == 28 and frame[6:8] == b"\x00\x01"  # a request
    assert frame[8:14] == mac and frame[14:18] == frame[24:28] == socket.inet_aton("172.16.0.1")
    assert announced(frame) == "172.16.0.1"
    asks = frame[:24] + socket.inet_aton("172.16.0.2")  # who has .2? tell .1
    assert announced(asks) is None
    assert announced(frame[:20]) is None


def test_measurement_probes_confirm_the_neighbour_only_after_their_set_up_answered():
    """A probe that confirms the kernel's neighbour entry (MSG_CONFIRM) says the path worked:
    never for a pair whose set-up ran out of time and is measured anyway."""
    sweep = Sweep(["a", "b"], Pacer(window=1), count=1, period_s=0.1, setup_timeout_s=1.0, setup_budget_s=1.0)
    setup = sweep.due(0.0)[0]
    assert setup.purpose is Purpose.SETUP and not setup.answered
    sweep.answered(setup.id, 5.0, 0.005)
    sent = sweep.due(0.005)
    measure = [p for p in sent if p.purpose is Purpose.MEASURE]
    assert measure and measure[0].answered
    reverse = [p for p in sent if p.purpose is Purpose.SETUP][0]
    sweep.expire(1.1)  # b -> a never answered, its budget is spent: measured anyway
    late = [p for p in sweep.due(1.1) if p.src == "b"]
    assert late and late[0].purpose is Purpose.MEASURE and not late[0].answered
    assert reverse.src == "b"
