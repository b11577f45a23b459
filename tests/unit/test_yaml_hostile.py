"""Hostile and broken YAML: every way PyYAML can fail is `file:line: what`, exit 2, one line.

Each case is checked against PyYAML itself first, so the test names the error class
it is about (reader, scanner, parser, composer, constructor) and cannot drift into
testing another. Bounds (file size, alias expansion, nesting) are counts, not timings.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from labctl import yamlfile
from labctl.errors import InventoryError
from labctl.inventory import load_inventory, parse_inventory
from labctl.playbook import load_playbook
from labctl.yamlfile import MAX_BYTES, MAX_DEPTH, MAX_NODES, YamlProblem, load_yaml
from tests.conftest import REPO

GOOD = """\
name: demo
hosts:
  host1:
    vms:
      vm1: {ip: 172.16.0.1/24}
"""

# Nine levels of nine aliases each: 9**9 (387 million) strings once expanded.
ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]\n"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "name: demo\nhosts: {host1: {}}\n"
)


def problem_of(text: str) -> str:
    with pytest.raises(InventoryError) as info:
        parse_inventory(text, "lab.yaml")
    [problem] = info.value.problems
    return problem


@pytest.mark.parametrize(
    "pyyaml_error, text, expected",
    [
        (
            yaml.reader.ReaderError,
            "name: demo\nhosts: {host1: {}}\x00\n",
            "lab.yaml:2: character U+0000 is not allowed in YAML",
        ),
        (
            yaml.scanner.ScannerError,
            "name: demo\nhosts:\n\thost1: {}\n",
            "lab.yaml:3: YAML syntax error: found character '\\t' that cannot start any token",
        ),
        (
            yaml.parser.ParserError,
            "name: demo\nhosts: {host1: {}}\n- host2\n",
            "lab.yaml:3: YAML syntax error: expected <block end>, but found '-'",
        ),
        (
            yaml.composer.ComposerError,
            "name: demo\nhosts: *everything\n",
            "lab.yaml:2: YAML syntax error: found undefined alias 'everything'",
        ),
        (
            yaml.constructor.ConstructorError,
            "name: demo\nhosts: !hosts {host1: {}}\n",
            "lab.yaml:2: YAML tag !hosts is not allowed: only plain data",
        ),
        (
            yaml.constructor.ConstructorError,
            "name: !!python/object/apply:os.system ['true']\nhosts: {}\n",
            "lab.yaml:1: YAML tag !!python/object/apply:os.system is not allowed: only plain data",
        ),
        (
            ValueError,  # PyYAML's own int constructor lets this escape as a bare ValueError
            "name: demo\nhosts:\n  host1: {port: !!int twenty-two}\n",
            "lab.yaml:3: cannot read 'twenty-two' as !!int (quote it if it is meant as text)",
        ),
        (
            ValueError,  # an implicit timestamp with a 13th month
            "name: demo\ndescription: 2024-13-01\nhosts: {host1: {}}\n",
            "lab.yaml:2: cannot read '2024-13-01' as !!timestamp",
        ),
    ],
    ids=[
        "reader-nul",
        "scanner",
        "parser",
        "composer",
        "constructor-tag",
        "constructor-python",
        "int",
        "date",
    ],
)
def test_every_pyyaml_error_class_is_one_problem_with_a_line(pyyaml_error, text, expected):
    with pytest.raises(pyyaml_error):
        yaml.safe_load(text)
    assert problem_of(text).startswith(expected)


def test_duplicate_keys_name_both_lines():
    assert problem_of(GOOD + "  host1: {}\n") == "lab.yaml:6: duplicate key 'host1' (first on line 3)"


def test_an_alias_bomb_is_refused_while_it_is_composed():
    assert problem_of(ALIAS_BOMB).startswith(
        f"lab.yaml:5: alias *d expands the document past {MAX_NODES} values (nested aliases"
    )


def test_an_alias_inside_its_own_anchor_is_refused():
    text = "name: demo\nhosts: &all\n  host1: {vms: *all}\n"
    assert problem_of(text) == "lab.yaml:3: alias *all is inside its own anchor (a loop)"


def test_a_document_with_too_many_values_is_refused_without_aliases():
    text = "name: demo\ndescription: [" + "1," * MAX_NODES + "1]\nhosts: {host1: {}}\n"
    assert problem_of(text) == f"lab.yaml:2: the document has more than {MAX_NODES} values; refused"


def test_nesting_is_bounded():
    text = "name: demo\nhosts: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"
    assert problem_of(text) == f"lab.yaml:2: nested more than {MAX_DEPTH} levels deep; refused"


def test_ordinary_anchors_aliases_and_merge_keys_work():
    text = """\
name: demo
controller: {kind: ryu, apps: &apps [simple_switch]}
hosts:
  host1: &kvm
    driver: kvm
    address: root@kvm1
    image: base.qcow2
    vms:
      vm1: {ip: 172.16.0.1/24}
  host2:
    <<: *kvm
    address: root@kvm2
    vms:
      vm2: {ip: 172.16.0.2/24}
"""
    lab = parse_inventory(text, "lab.yaml", simulate=True)
    assert lab.controller.apps == ("simple_switch",)
    assert [(h.name, h.flavor, [v.name for v in h.vms]) for h in lab.hosts] == [
        ("host1", "kvm", ["vm1"]),
        ("host2", "kvm", ["vm2"]),
    ]
    # a key merged in is named at the line it is written on; one set here, at its own
    broken = text.replace("root@kvm2", "'root kvm2'").replace("base.qcow2", "'base;qcow2'")
    with pytest.raises(InventoryError) as info:
        parse_inventory(broken, "lab.yaml", simulate=True)
    assert [p.split(":", 3)[:3] for p in info.value.problems] == [
        ["lab.yaml", "7", " hosts.host1.image"],
        ["lab.yaml", "12", " hosts.host2.address"],
        ["lab.yaml", "7", " hosts.host2.image"],
    ]
    assert load_yaml("a: &x 1\nb: *x\n").data == {"a": 1, "b": 1}


def test_a_key_merged_twice_is_still_a_duplicate_when_written_twice():
    text = "name: demo\nhosts:\n  host1: &h {driver: kvm}\n  host2: {<<: *h, driver: xen, driver: ovs}\n"
    assert problem_of(text) == "lab.yaml:4: duplicate key 'driver' (first on line 4)"


def test_non_utf8_bytes_are_named_by_line_and_column(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_bytes(b"name: demo\ndescription: caf\xe9\nhosts: {host1: {}}\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.problems == [f"{path}:2: not UTF-8 text: byte 0xe9 at column 17"]


def test_a_large_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "lab.yaml"
    path.write_text(GOOD)
    with open(path, "ab") as fh:
        fh.truncate(64 * MAX_BYTES)  # sparse: large on paper, nothing to write
    reads = []
    real_open = open

    class Spy:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def fileno(self):
            return self.fh.fileno()

        def read(self, size=-1):
            reads.append(size)
            return self.fh.read(size)

    monkeypatch.setattr(yamlfile, "open", lambda *a, **k: Spy(real_open(*a, **k)), raising=False)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.problems == [
        f"{path}: file is {64 * MAX_BYTES} bytes; refused unread (at most 256 KiB)"
    ]
    assert reads == []


def test_text_over_the_limit_is_refused_too():
    with pytest.raises(YamlProblem, match="refused unread"):
        load_yaml("#" * (MAX_BYTES + 1))


def test_a_playbook_gets_the_same_treatment(tmp_path):
    path = tmp_path / "book.yaml"
    path.write_text("name: smoke\nsteps:\n  - up\x07\n")
    with pytest.raises(InventoryError) as info:
        load_playbook(path)
    assert info.value.problems == [
        f"{path}:3: character U+0007 is not allowed in YAML (a control character?)"
    ]


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"name: demo\x00\nhosts: {host1: {}}\n", ":1: character U+0000 is not allowed in YAML"),
        (ALIAS_BOMB.encode(), ":5: alias *d expands the document past"),
        (b"name: d\xe9mo\nhosts: {host1: {}}\n", ":1: not UTF-8 text: byte 0xe9 at column 8"),
        (b"name: demo\nhosts: !!python/name:os.system {}\n", ":2: YAML tag !!python/name:os.system"),
        (b"#" * (MAX_BYTES + 1), f": file is {MAX_BYTES + 1} bytes; refused unread"),
    ],
    ids=["nul", "alias-bomb", "latin-1", "python-tag", "large"],
)
def test_the_command_line_says_one_line_and_exits_2(tmp_path, content, expected):
    path = tmp_path / "lab.yaml"
    path.write_bytes(content)
    env = {**os.environ, "PYTHONPATH": str(REPO), "LABCTL_STATE_DIR": str(tmp_path / "state")}
    for command in (["graph"], ["up"], ["down"]):
        proc = subprocess.run(
            [sys.executable, "-m", "labctl", *command, "-i", str(path)],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 2, proc.stderr
        [line] = proc.stderr.splitlines()
        assert line.startswith(f"labctl: error: {path}{expected}"), line
        assert proc.stdout == ""
    assert not (tmp_path / "state").exists()
