"""A CWE catalogue in MITRE's CSV form (`1000.csv`'s columns, each line ending in a comma) for the CWEs the NVD
sample names; names, abstractions and statuses as MITRE publishes them (CWE 4.x)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from etl.files import atomic_path

WEAKNESSES = [
    ("20", "Improper Input Validation", "Class", "Stable"),
    (
        "22",
        "Improper Limitation of a Pathname to a Restricted Directory ('Path Traversal')",
        "Base",
        "Stable",
    ),
    (
        "78",
        "Improper Neutralization of Special Elements used in an OS Command ('OS Command Injection')",
        "Base",
        "Stable",
    ),
    (
        "79",
        "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')",
        "Base",
        "Stable",
    ),
    (
        "89",
        "Improper Neutralization of Special Elements used in an SQL Command ('SQL Injection')",
        "Base",
        "Stable",
    ),
    ("94", "Improper Control of Generation of Code ('Code Injection')", "Base", "Draft"),
    ("125", "Out-of-bounds Read", "Base", "Draft"),
    ("352", "Cross-Site Request Forgery (CSRF)", "Compound", "Stable"),
    ("416", "Use After Free", "Variant", "Stable"),
    ("502", "Deserialization of Untrusted Data", "Base", "Draft"),
    ("787", "Out-of-bounds Write", "Base", "Draft"),
]
HEADER = [
    "CWE-ID", "Name", "Weakness Abstraction", "Status", "Description", "Extended Description", "Related Weaknesses",
    "Weakness Ordinalities", "Applicable Platforms", "Background Details", "Alternate Terms", "Modes Of Introduction",
    "Exploitation Factors", "Likelihood of Exploit", "Common Consequences", "Detection Methods",
    "Potential Mitigations", "Observed Examples", "Functional Areas", "Affected Resources", "Taxonomy Mappings",
    "Related Attack Patterns", "Notes",
]  # fmt: skip


def write_sample(path: Path) -> Path:
    path = Path(path)
    if path.exists():
        return path
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*HEADER, ""])
    for cwe, name, abstraction, status in WEAKNESSES:
        description = f"The product is affected by {name.split(' (')[0].lower()}.\nSee CWE-{cwe}."
        writer.writerow([cwe, name, abstraction, status, description, *[""] * (len(HEADER) - 5), ""])
    with atomic_path(path) as tmp:
        tmp.write_text(out.getvalue())
    return path
