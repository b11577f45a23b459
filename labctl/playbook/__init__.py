"""Playbooks: scripted scenarios for CI smoke tests and workshops (`labctl run FILE`).

    name: ci-smoke
    inventory: ../inventories/blog-2host.yaml      # relative to the playbook
    steps:
      - up
      - ping: {from: vm1, to: vm2, expect: success}
      - flows-contain: {host: host1, match: icmp}
      - down

schema.py says what a playbook may contain and loads it (FILE:LINE errors,
exit 2); steps.py does each step; runner.py runs them in order and keeps
`down` running after a failure.
"""

from labctl.playbook.runner import Outcome, exit_code, run
from labctl.playbook.schema import LoadedPlaybook, Step, load_playbook
from labctl.playbook.steps import StepFailed

__all__ = ["LoadedPlaybook", "Outcome", "Step", "StepFailed", "exit_code", "load_playbook", "run"]
