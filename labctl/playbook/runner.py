"""Running a playbook's steps in order, one Outcome each.

After a failed step the remaining steps are skipped, except `down`, which always
runs so a CI run never leaves a lab behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from labctl.errors import EXIT_RUNTIME, EXIT_VERIFY_FAILED, LabctlError
from labctl.playbook.schema import Step
from labctl.playbook.steps import STEPS, StepFailed


@dataclass
class Outcome:
    step: Step
    status: Literal["passed", "failed", "skipped"]
    seconds: float = 0.0
    message: str = ""
    exit_code: int = 0  # 1: an expectation did not hold; 3: the step could not run

    def to_json(self) -> dict:
        return {
            "step": self.step.label,
            "kind": self.step.kind,
            "line": self.step.line,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "message": self.message,
        }


def run(steps: list[Step], runner, report: Callable[[Outcome], None]) -> list[Outcome]:
    """Run the steps in order; after a failure only `down` steps still run."""
    outcomes, failed = [], False
    for step in steps:
        if failed and step.kind != "down":
            outcome = Outcome(step, "skipped", message="an earlier step failed")
        else:
            start = time.monotonic()
            try:
                message = STEPS[step.kind](runner, step.args) or ""
                outcome = Outcome(step, "passed", time.monotonic() - start, message)
            except StepFailed as exc:
                outcome = Outcome(step, "failed", time.monotonic() - start, str(exc), EXIT_VERIFY_FAILED)
            except LabctlError as exc:
                outcome = Outcome(step, "failed", time.monotonic() - start, str(exc), EXIT_RUNTIME)
            failed = failed or outcome.status == "failed"
        outcomes.append(outcome)
        report(outcome)
    return outcomes


def exit_code(outcomes: list[Outcome]) -> int:
    """0 all passed, 1 an expectation failed, 3 a step could not run at all."""
    return max((o.exit_code for o in outcomes), default=0)
