"""The SSH keys of a lab's real guests, kept in the lab's state directory.

One client key pair per lab: its public half goes into every guest's NoCloud seed
(ssh_authorized_keys), its private half stays here (mode 0600) and is how labctl logs in.
One host key pair per guest: the seed hands it to the guest (cloud-init's `ssh_keys`,
labctl's initramfs converts it for dropbear), so labctl knows which key the guest must
show and checks it, with no known_hosts to fill in and no trust on first use. Both are
ed25519. `down` removes them with the lab's state directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DIR = "guest-keys"
CLIENT = "id_ed25519"


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public: str  # one OpenSSH line: "ssh-ed25519 AAAA... comment"

    @property
    def private_text(self) -> str:
        return self.private_path.read_text()


def _generate(path: Path, comment: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    # created 0600, never readable by anyone else for an instant
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    Path(f"{partial}.pub").write_text(f"{public.decode()} {comment}\n")
    os.replace(f"{partial}.pub", f"{path}.pub")
    os.replace(partial, path)  # last: its presence says the pair is whole


class LabKeys:
    """The keys of one lab, made on first use."""

    def __init__(self, state_dir: Path, lab: str):
        self.dir, self.lab = Path(state_dir) / DIR, lab

    def _pair(self, name: str, comment: str) -> KeyPair:
        path = self.dir / name
        if not path.exists():
            _generate(path, comment)
        return KeyPair(path, Path(f"{path}.pub").read_text().strip())

    def client(self) -> KeyPair:
        return self._pair(CLIENT, f"labctl-{self.lab}")

    def host(self, vm: str) -> KeyPair:
        return self._pair(f"host-{vm}", f"labctl-{self.lab}-{vm}")
