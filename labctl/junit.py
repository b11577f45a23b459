"""JUnit XML, the format CI systems show as test results."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Case:
    name: str
    classname: str
    seconds: float = 0.0
    failure: str | None = None  # message when it failed
    detail: str = ""  # longer text: what was expected, what was seen
    skipped: str | None = None


def write(path: str | Path, suite: str, cases: list[Case]) -> None:
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(sum(c.failure is not None for c in cases)),
        skipped=str(sum(c.skipped is not None for c in cases)),
        errors="0",
        time=f"{sum(c.seconds for c in cases):.3f}",
    )
    for case in cases:
        element = ET.SubElement(
            root, "testcase", name=case.name, classname=case.classname, time=f"{case.seconds:.3f}"
        )
        if case.failure is not None:
            ET.SubElement(element, "failure", message=case.failure).text = case.detail or case.failure
        elif case.skipped is not None:
            ET.SubElement(element, "skipped", message=case.skipped)
    ET.indent(root)
    Path(path).write_text(
        ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n", encoding="utf-8"
    )
