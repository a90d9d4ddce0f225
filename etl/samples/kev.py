"""Two CISA KEV catalogue releases for the NVD sample's CVEs (those with CISA fields), deterministic: the second
adds entries and removes one, as CISA's releases do."""

from __future__ import annotations

import json
from pathlib import Path

from etl.files import atomic_path
from etl.samples.nvd import VENDORS, make_cve

RELEASES = (
    ("2026.10.15", "2026-10-15T14:02:11.2411Z", 2400),
    ("2026.11.01", "2026-11-01T17:04:19.9796Z", 3000),
)
REMOVED = 49  # in the first release, not the second


def entry(i: int) -> dict | None:
    """The KEV entry of the NVD sample's CVE i, if it has one."""
    cve = make_cve(i)["cve"]
    if "cisaExploitAdd" not in cve:
        return None
    vendor, product = VENDORS[i % len(VENDORS)]
    return {
        "cveID": cve["id"],
        "vendorProject": vendor.title(),
        "product": product,
        "vulnerabilityName": cve["cisaVulnerabilityName"],
        "dateAdded": cve["cisaExploitAdd"],
        "shortDescription": cve["descriptions"][0]["value"],
        "requiredAction": cve["cisaRequiredAction"],
        "dueDate": cve["cisaActionDue"],
        "knownRansomwareCampaignUse": "Known" if i % 5 == 0 else "Unknown",
        "notes": f"https://nvd.nist.gov/vuln/detail/{cve['id']}",
        "cwes": [
            w["description"][0]["value"]
            for w in cve["weaknesses"]
            if w["description"][0]["value"].startswith("CWE-")
        ],
    }


def write_sample(folder: Path) -> list[Path]:
    """The releases as `known_exploited_vulnerabilities-<catalogVersion>.json` (written once; kept as they are)."""
    folder = Path(folder)
    paths = []
    for n, (version, released, upto) in enumerate(RELEASES):
        path = folder / f"known_exploited_vulnerabilities-{version}.json"
        paths.append(path)
        if path.exists():
            continue
        entries = [e for i in range(upto) if (n == 0 or i != REMOVED) and (e := entry(i))]
        catalog = {
            "title": "CISA Catalog of Known Exploited Vulnerabilities",
            "catalogVersion": version,
            "dateReleased": released,
            "count": len(entries),
            "vulnerabilities": entries,
        }
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(catalog, indent=2))
    return paths
