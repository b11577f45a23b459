"""One error family; each error knows the exit code the CLI turns it into.

Exit codes (the CLI contract): 0 ok, 1 verification failed, 2 bad input,
3 provisioning or runtime failure.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_VERIFY_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_RUNTIME = 3


class LabctlError(Exception):
    """Base class: a failure we can explain in one message, without a traceback."""

    exit_code = EXIT_RUNTIME


class InputError(LabctlError):
    """The user's input (inventory, options) is wrong; nothing was touched."""

    exit_code = EXIT_BAD_INPUT


class InventoryError(InputError):
    """One or more problems in an inventory file, each with file, line and field."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class LockedError(LabctlError):
    """Another labctl process is working on the same lab."""


class PrivilegeError(LabctlError):
    """This process may not do what the command needs (root, the state directory);
    raised before anything is touched. Exit 3: the input is fine, this machine is not."""


class ProvisionError(LabctlError):
    """A step failed on a host; names the host and the step."""

    def __init__(self, host: str, step: str, detail: str):
        self.host, self.step, self.detail = host, step, detail
        super().__init__(f"{host}: {step} failed: {detail}")


class CommandError(LabctlError):
    """A command exited non-zero (or could not start) on a host."""

    def __init__(self, host: str, argv: Sequence[str], returncode: int, stderr: str):
        self.host, self.argv, self.returncode = host, list(argv), returncode
        self.stderr = stderr.strip()
        last = self.stderr.splitlines()[-1] if self.stderr else "no error output"
        super().__init__(f"{host}: `{' '.join(self.argv)}` exited {returncode}: {last}")
