"""What labctl made, written down *before* it is made.

Each lab has a directory under the state root (default /run/labctl, or
$LABCTL_STATE_DIR) holding a journal: one JSON object per line, appended and
flushed before the resource it names is created. `down` undoes what the
journal lists -- and only that -- so it works after a failed or killed `up`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from labctl.errors import InputError, LockedError

DEFAULT_ROOT = "/run/labctl"
# A lab's name is its state directory's name (and part of every namespace's), so
# it is checked here too: `down --lab ..` must never name a directory above the root.
LAB_NAME_PATTERN = r"[a-z][a-z0-9-]{0,19}"
LAB_NAME_RULE = "1-20 characters: lower-case letters, digits or '-', starting with a letter"


def state_root() -> Path:
    return Path(os.environ.get("LABCTL_STATE_DIR", DEFAULT_ROOT))


def labs_with_state(root: Path | None = None) -> list[str]:
    """The names of the labs that have a journal under the state root."""
    root = root or state_root()
    try:
        names = sorted(entry.name for entry in root.iterdir() if (entry / "journal.jsonl").is_file())
    except OSError:
        return []
    return [name for name in names if re.fullmatch(LAB_NAME_PATTERN, name)]


class LabState:
    def __init__(self, lab_name: str, root: Path | None = None):
        if not isinstance(lab_name, str) or not re.fullmatch(LAB_NAME_PATTERN, lab_name):
            raise InputError(f"{lab_name!r} is not a lab name ({LAB_NAME_RULE})")
        self.lab_name = lab_name
        self.dir = (root or state_root()) / lab_name
        self.journal_path = self.dir / "journal.jsonl"
        self.info_path = self.dir / "lab.json"
        self._write_lock = threading.Lock()

    # --- the journal ---
    def exists(self) -> bool:
        return os.path.exists(self.journal_path)  # False, not an error, where we may not look

    def record(self, kind: str, **fields) -> None:
        line = json.dumps({"kind": kind, **fields}, sort_keys=True) + "\n"
        with self._write_lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.journal_path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())

    def records(self, kind: str | None = None) -> list[dict]:
        try:
            lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash names nothing that was made
            if kind is None or entry.get("kind") == kind:
                out.append(entry)
        return out

    def has(self, kind: str, **fields) -> bool:
        return any(all(r.get(k) == v for k, v in fields.items()) for r in self.records(kind))

    # --- facts about the lab (what up decided) ---
    def write_info(self, info: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self.info_path)

    def read_info(self) -> dict:
        """lab.json, or {} when it is missing, unreadable or garbled (it only helps)."""
        try:
            info = json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # ValueError: bad JSON, bytes that are not UTF-8
            return {}
        return info if isinstance(info, dict) else {}

    def recorded_simulated(self) -> bool | None:
        """How the lab that is up was made: True simulated, False on real hosts, None
        when it is not up or that is not known (then the command line decides).

        lab.json says so (`up` writes it first); when it is lost or garbled, a journal
        that lists namespaces is a simulated lab's (real hosts make none here)."""
        if not self.exists():
            return None
        simulated = self.read_info().get("simulated")
        if isinstance(simulated, bool):
            return simulated
        try:
            return True if self.records("netns") else None
        except OSError:
            return None

    def unwritable(self) -> Path | None:
        """The directory this process would have to write the lab's state in, and may
        not (None when it may): the lab's own directory, and the root that holds the
        locks -- or, where they do not exist yet, the directory they would be made in."""
        for path in (self.dir, self.dir.parent):
            while not os.path.isdir(path):
                if os.path.lexists(path) or path == path.parent:  # a file where a directory goes
                    return path
                path = path.parent
            if not os.access(path, os.W_OK | os.X_OK, effective_ids=True):
                return path
        return None

    @contextmanager
    def command_log(self) -> Iterator[Path]:
        """Append every command run on every host (logger labctl.commands) to commands.log."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "commands.log"
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger = logging.getLogger("labctl.commands")
        logger.addHandler(handler)
        previous = logger.level
        logger.setLevel(logging.DEBUG)
        try:
            yield path
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous)
            handler.close()

    def remove(self) -> None:
        """Forget the lab: its directory holds only files labctl wrote."""
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            self.dir.parent.rmdir()  # the root too, when no other lab is left
        except OSError:
            pass

    # --- one labctl at a time per lab ---
    @contextmanager
    def lock(self, action: str) -> Iterator[None]:
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.dir.parent / f".{self.lab_name}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another labctl"
                raise LockedError(
                    f"lab {self.lab_name!r} is busy: {holder} is running; try again when it has finished"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"labctl {action} (pid {os.getpid()})".encode(), 0)
            yield
        finally:
            os.close(fd)
            # The lock file goes when nothing is left of the lab.
            if not self.dir.exists():
                try:
                    lock_path.unlink()
                    self.dir.parent.rmdir()
                except OSError:
                    pass
