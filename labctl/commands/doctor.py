"""`labctl doctor -i FILE`: check each real host is ready for the lab, over its transport.

It starts with the versions a bug report needs (labctl, Python, the system, this
machine's OVS, the controllers, libvirt; labctl/versions.py), then the checks.

Checks per host: it can be reached (SSH, key or agent, known_hosts), Open
vSwitch is installed and its database answers with our permissions (root or
passwordless sudo), the datapath (kernel module or userspace), what the
hypervisor driver needs (libvirt, xl, XenAPI login); and a note on the
firewall (GRE is IP protocol 47; the controller port). Exit 3 when a check
fails. Simulated hosts need this machine's kernel limits to fit the lab (the
ARP table and socket buffers shared by all namespaces, see simlimits), and a
simulated kvm host with real guests what they need here (libvirtd, QEMU, and
whether KVM or TCG will run them).
"""

from __future__ import annotations

import json
import sys

import click

from labctl.clikit import handles_errors, inventory_option, load_lab, setup_output
from labctl.errors import EXIT_RUNTIME


def register(cli: click.Group) -> None:
    cli.add_command(doctor)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@inventory_option
@click.pass_context
@handles_errors
def doctor(ctx, as_json, inventory, simulate, quiet, verbose):
    """Check every real host has what the lab needs (OVS, permissions, hypervisor), and that
    this machine's kernel limits fit a simulated lab. Starts with the versions of labctl,
    Python, OVS, the controllers and libvirt (for a bug report); each real host's OVS
    version is in its checks."""
    from labctl.drivers import LabSession, make_driver
    from labctl.drivers.checks import Check, driver_checks, host_checks
    from labctl.drivers.simlimits import shortfalls
    from labctl.parallel import in_parallel
    from labctl.state import LabState
    from labctl.versions import render
    from labctl.versions import report as version_report

    report = setup_output(ctx, quiet, verbose)
    lab = load_lab(inventory, simulate)
    versions = version_report(lab.controller)
    context = LabSession(lab, LabState(lab.name), report)
    real = [h for h in lab.hosts if h.driver != "sim"]
    limits = [Check("this machine", "kernel limits", False, s.advice()) for s in shortfalls(lab)]
    if any(h.driver == "sim" for h in lab.hosts) and not limits:
        limits = [Check("this machine", "kernel limits", True, "ARP table and socket buffers fit the lab")]
    drivers = {h.name: make_driver(context, h) for h in lab.hosts}
    outcomes = in_parallel(lambda h: host_checks(lab, drivers[h.name]), real, lambda h: h.name)
    for driver in drivers.values():
        driver.transport().close()
    # a simulated host is this machine, nothing to reach: only its driver's own checks (real guests)
    simulated_checks = [c for h in lab.hosts if h.driver == "sim" for c in driver_checks(drivers[h.name])]
    checks = limits + simulated_checks + [c for o in outcomes for c in (o.value or [])]
    failed = any(not c.ok for c in checks) or any(o.error for o in outcomes)
    if as_json:
        rows = [c.__dict__ for c in checks] + [
            {"host": o.name, "name": "doctor", "ok": False, "detail": str(o.error)}
            for o in outcomes
            if o.error
        ]
        click.echo(
            json.dumps(
                {"ok": not failed, "versions": [v.to_json() for v in versions], "checks": rows}, indent=2
            )
        )
    else:
        if not report.quiet:
            click.echo(render(versions) + "\n")
        simulated = [f"{h.name} ({h.flavor})" for h in lab.hosts if h.driver == "sim"]
        if simulated:  # one line, however big the lab
            click.echo(f"simulated, nothing to check on a real host: {', '.join(simulated)}")
        for c in checks:
            click.echo(f"{c.host}: {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
        for o in outcomes:
            if o.error:
                click.echo(f"{o.name}: FAIL doctor: {o.error}")
    if failed:
        sys.exit(EXIT_RUNTIME)
