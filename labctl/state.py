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
from labctl.faults import Fault

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
            with open(self.journal_path, "ab") as fh:
                # A line cut short (a crash while writing it) has no newline: the next
                # record must not be glued to it, or it would be unreadable too.
                if fh.tell() and not self._ends_with_newline():
                    line = "\n" + line
                fh.write(line.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.journal_path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def _lines(self) -> list[tuple[str, dict | None]]:
        """Each line of the journal, with its record (None: not a record, e.g. cut short)."""
        try:
            text = self.journal_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        out: list[tuple[str, dict | None]] = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = None
            out.append((line, entry if isinstance(entry, dict) else None))
        return out

    def records(self, kind: str | None = None) -> list[dict]:
        # A line cut short by a crash names nothing that was made: it is skipped.
        return [e for _, e in self._lines() if e is not None and (kind is None or e.get("kind") == kind)]

    def broken_lines(self) -> list[int]:
        """The journal's lines (from 1) that are not records: cut short by a crash, or garbled."""
        return [n for n, (_, entry) in enumerate(self._lines(), 1) if entry is None]

    def drop_broken_lines(self) -> int:
        """Write the journal again without its broken lines (atomically); how many went.

        A record is written before what it names is made, so a line cut short names
        nothing that was made; leaving it would only keep status reporting it."""
        with self._write_lock:
            lines = self._lines()
            keep = [line for line, entry in lines if entry is not None]
            if len(keep) == len(lines):
                return 0
            tmp = self.journal_path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write("".join(f"{line}\n" for line in keep))
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self.journal_path)
            return len(lines) - len(keep)

    def faults(self) -> list[Fault]:
        """What is wrong with the lab's own files, and what `up` does about it."""
        found = []
        broken = self.broken_lines()
        if broken:
            one = len(broken) == 1
            numbers = f"line {broken[0]}" if one else f"lines {', '.join(map(str, broken))}"
            are = "is" if one else "are"
            found.append(
                Fault(
                    f"{numbers} of the journal {are} cut short or garbled ({self.journal_path})",
                    f"up writes the journal again without {'it' if one else 'them'}",
                )
            )
        problem = self.info_problem()
        if problem:
            found.append(Fault(f"{self.info_path.name} {problem} ({self.info_path})", "up writes it again"))
        return found

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

    def info_problem(self) -> str | None:
        """Why lab.json does not say what `up` decided (None when it does)."""
        if not self.info_path.exists():
            return "is missing"
        if not isinstance(self.read_info().get("simulated"), bool):
            return "is garbled: not what up wrote"
        return None

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
