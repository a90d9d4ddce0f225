"""CVE records shaped like NVD's API 2.0 output, deterministic: every metric version (both generations of CVSS v4.0
key names), CISA KEV fields, nested configurations, Rejected records, and 2026-style fields NVD's schema lacks."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from etl.sources.nvd_pages import COMPLETE, write_page

VENDORS = [
    ("microsoft", "windows_10"),
    ("apache", "http_server"),
    ("linux", "linux_kernel"),
    ("google", "chrome"),
    ("oracle", "mysql"),
    ("cisco", "ios_xe"),
    ("openssl", "openssl"),
    ("mozilla", "firefox"),
    ("paloaltonetworks", "pan-os"),
    ("wordpress", "wordpress"),
]
CWES = [
    "CWE-79",
    "CWE-787",
    "CWE-89",
    "CWE-20",
    "CWE-125",
    "CWE-78",
    "CWE-416",
    "CWE-22",
    "CWE-352",
    "NVD-CWE-noinfo",
]
SEVERITY = [(9.8, "CRITICAL"), (8.8, "HIGH"), (7.5, "HIGH"), (6.1, "MEDIUM"), (5.3, "MEDIUM"), (3.3, "LOW")]
EPOCH = dt.datetime(2018, 1, 1)


def _stamp(t: dt.datetime, z: bool = False) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}" + ("Z" if z else "")


def make_cve(i: int, *, modified: dt.datetime | None = None, seed: int = 0) -> dict:
    """The i-th generated vulnerability (`{"cve": {…}}`), as a page of the API holds it."""
    rng = random.Random(seed * 1_000_003 + i)
    published = EPOCH + dt.timedelta(minutes=i * 37 + rng.randint(0, 30))
    modified = modified or published + dt.timedelta(days=rng.randint(0, 400), seconds=rng.randint(0, 86399))
    year = published.year
    cve_id = f"CVE-{year}-{10000 + i}"
    status = "Rejected" if i % 97 == 13 else rng.choice(["Analyzed", "Modified", "Awaiting Analysis"])
    cve: dict = {
        "id": cve_id,
        "sourceIdentifier": rng.choice(["cve@mitre.org", "secure@microsoft.com", "psirt@cisco.com"]),
        "published": _stamp(published),
        "lastModified": _stamp(modified, z=i % 5 == 0),
        "vulnStatus": status,
        "cveTags": [{"sourceIdentifier": "cve@mitre.org", "tags": ["disputed"]}] if i % 31 == 0 else [],
        "descriptions": [
            {"lang": "en", "value": f"Generated vulnerability {i} in {VENDORS[i % 10][1]}."},
            {"lang": "es", "value": f"Vulnerabilidad generada {i}."},
        ],
        "metrics": {},
        "references": [],
        "weaknesses": [],
        "configurations": [],
    }
    if status == "Rejected":
        cve["descriptions"] = [{"lang": "en", "value": "** REJECT ** Not used."}]
        return {"cve": cve}
    score, severity = SEVERITY[i % len(SEVERITY)]
    v3 = {
        "source": "nvd@nist.gov",
        "type": "Primary",
        "cvssData": {
            "version": "3.1",
            "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "baseScore": score,
            "baseSeverity": severity,
            "attackVector": "NETWORK",
            "attackComplexity": "LOW",
            "privilegesRequired": "NONE",
            "userInteraction": "NONE",
            "scope": "UNCHANGED",
            "confidentialityImpact": "HIGH",
            "integrityImpact": "HIGH",
            "availabilityImpact": "HIGH",
        },
        "exploitabilityScore": 3.9,
        "impactScore": 5.9,
    }
    cve["metrics"]["cvssMetricV31" if i % 4 else "cvssMetricV30"] = [
        v3
        if i % 4
        else {
            **v3,
            "cvssData": {
                **v3["cvssData"],
                "version": "3.0",
                "vectorString": v3["cvssData"]["vectorString"].replace("3.1", "3.0"),
            },
        }
    ]
    if year < 2022:
        cve["metrics"]["cvssMetricV2"] = [
            {
                "source": "nvd@nist.gov",
                "type": "Primary",
                "cvssData": {
                    "version": "2.0",
                    "vectorString": "AV:N/AC:L/Au:N/C:P/I:P/A:P",
                    "baseScore": 7.5,
                    "accessVector": "NETWORK",
                    "accessComplexity": "LOW",
                    "authentication": "NONE",
                    "confidentialityImpact": "PARTIAL",
                    "integrityImpact": "PARTIAL",
                    "availabilityImpact": "PARTIAL",
                },
                "baseSeverity": "HIGH",
                "exploitabilityScore": 10.0,
                "impactScore": 6.4,
                "acInsufInfo": False,
                "obtainAllPrivilege": False,
                "obtainUserPrivilege": False,
                "obtainOtherPrivilege": False,
                "userInteractionRequired": False,
            }
        ]
    if i % 3 == 0:
        early = i % 2 == 0  # NVD's first v4.0 records used other key names than FIRST's
        names = (
            (
                "vulnerableSystemConfidentiality",
                "subsequentSystemConfidentiality",
                "confidentialityRequirements",
                "safety",
            )
            if early
            else (
                "vulnConfidentialityImpact",
                "subConfidentialityImpact",
                "confidentialityRequirement",
                "Safety",
            )
        )
        cve["metrics"]["cvssMetricV40"] = [
            {
                "source": "cna@vuldb.com",
                "type": "Secondary",
                "cvssData": {
                    "version": "4.0",
                    "vectorString": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                    "baseScore": 9.3,
                    "baseSeverity": "CRITICAL",
                    "attackVector": "NETWORK",
                    "attackComplexity": "LOW",
                    "attackRequirements": "NONE",
                    "privilegesRequired": "NONE",
                    "userInteraction": "NONE",
                    names[0]: "HIGH",
                    names[1]: "NONE",
                    names[2]: "NOT_DEFINED",
                    names[3]: "NOT_DEFINED",
                },
            }
        ]
    if i % 11 == 0:  # 2026 records carry metric types and top-level keys NVD's schema 2.2.2 lacks
        cve["metrics"]["ssvcV203"] = [
            {
                "source": "134c704f-9b21-4f2e-91b3-4a467353bcc0",
                "type": "Secondary",
                "ssvcData": {
                    "id": cve_id,
                    "role": "CISA Coordinator",
                    "timestamp": _stamp(published + dt.timedelta(days=2)),
                    "version": "2.0.3",
                    "exploitation": "active" if i % 7 == 0 else "none",
                    "automatable": "yes",
                    "technicalImpact": "total",
                },
            }
        ]
        vendor, product = VENDORS[i % 10]
        cve["affected"] = [
            {
                "source": "cve@mitre.org",
                "vendor": vendor,
                "product": product,
                "collectionURL": "https://repo.example.org",
                "packageName": product,
                "cpes": [f"cpe:2.3:a:{vendor}:{product}:*:*:*:*:*:*:*:*"],
                "defaultStatus": "unaffected",
                "versions": [
                    {
                        "version": "0",
                        "lessThan": f"{i % 9 + 1}.{i % 7}",
                        "status": "affected",
                        "versionType": "semver",
                    }
                ],
            }
        ]
    if i % 13 == 0:
        cve["evaluatorImpact"] = "Only configurations with the module enabled are affected."
        cve["vendorComments"] = [
            {
                "organization": VENDORS[i % 10][0].title(),
                "comment": "Fixed in the next release.",
                "lastModified": _stamp(published + dt.timedelta(days=5)),
            }
        ]
    if i % 7 == 0:
        added = published.date() + dt.timedelta(days=30)
        cve.update(
            cisaExploitAdd=added.isoformat(),
            cisaActionDue=(added + dt.timedelta(days=21)).isoformat(),
            cisaRequiredAction="Apply updates.",
            cisaVulnerabilityName=f"{VENDORS[i % 10][0].title()} vulnerability {i}",
        )
    cve["weaknesses"] = [
        {
            "source": "nvd@nist.gov",
            "type": "Primary",
            "description": [{"lang": "en", "value": CWES[i % len(CWES)]}],
        }
    ]
    cve["references"] = [
        {
            "url": f"https://example.org/advisory/{i}",
            "source": "cve@mitre.org",
            "tags": ["Vendor Advisory"] if i % 2 else ["Patch", "Third Party Advisory"],
        }
    ]
    vendor, product = VENDORS[i % 10]
    matches = [
        {
            "vulnerable": True,
            "criteria": f"cpe:2.3:a:{vendor}:{product}:*:*:*:*:*:*:*:*",
            "versionEndExcluding": f"{i % 9 + 1}.{i % 7}",
            "matchCriteriaId": f"{i:08X}-0000-0000-0000-000000000000",
        }
    ]
    nodes = [{"operator": "OR", "negate": False, "cpeMatch": matches}]
    if i % 6 == 0:  # an application on a given platform: AND of two nodes
        nodes.append(
            {
                "operator": "OR",
                "negate": False,
                "cpeMatch": [
                    {
                        "vulnerable": False,
                        "criteria": "cpe:2.3:o:linux:linux_kernel:-:*:*:*:*:*:*:*",
                        "matchCriteriaId": "703AF700-7A70-47E2-BC3A-7FD03B3CA9C1",
                    }
                ],
            }
        )
        cve["configurations"] = [{"operator": "AND", "nodes": nodes}]
    else:
        cve["configurations"] = [{"nodes": nodes}]
    return {"cve": cve}


def write_sample(folder: Path, pages: int = 6, per_page: int = 500) -> Path:
    """A complete sync window of pages; the last page repeats a few CVEs modified again (as later syncs do)."""
    folder = Path(folder)
    if (folder / COMPLETE).exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    total = pages * per_page
    for p in range(pages):
        vulns = [make_cve(i) for i in range(p * per_page, (p + 1) * per_page)]
        if p == pages - 1:
            vulns[-5:] = [make_cve(i, modified=dt.datetime(2026, 11, 1, 12, 0, 0)) for i in range(5)]
        write_page(folder / f"page-{p * per_page:08d}.json.gz", vulns, p * per_page, total)
    (folder / COMPLETE).write_text("")
    return folder


def make_change(i: int, n: int, created: dt.datetime) -> dict:
    """The n-th change (0: received, 1: initial analysis, 2+: modified) of CVE i, as the Change History API has it."""
    cve = make_cve(i)["cve"]
    rng = random.Random(i * 7919 + n)
    score, severity = SEVERITY[(i + n) % len(SEVERITY)]
    if n == 0:
        event = "New CVE Received"
        details = [{"action": "Added", "type": "Description", "newValue": cve["descriptions"][0]["value"]}]
    elif n == 1:
        event = "Initial Analysis"
        details = [
            {
                "action": "Added",
                "type": "CVSS V3.1",
                "newValue": f"NIST AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H ({score})",
            },
            {"action": "Added", "type": "CWE", "newValue": f"NIST {CWES[i % len(CWES)]}"},
        ]
    else:
        old, _ = SEVERITY[(i + n - 1) % len(SEVERITY)]
        event = rng.choice(["CVE Modified", "Reanalysis"])
        details = [
            {
                "action": "Changed",
                "type": "CVSS V3.1",
                "oldValue": f"NIST ({old})",
                "newValue": f"NIST ({score})",
            }
        ]
        if n % 2:
            details.append(
                {"action": "Added", "type": "Reference", "newValue": f"https://example.org/fix/{i}/{n}"}
            )
    return {
        "change": {
            "cveId": cve["id"],
            "eventName": event,
            "cveChangeId": f"{i:08X}-{n:04X}-4000-8000-{rng.getrandbits(48):012X}",
            "sourceIdentifier": "nvd@nist.gov" if n else cve["sourceIdentifier"],
            "created": _stamp(created),
            "details": details,
        }
    }


def history(cves: int) -> list[dict]:
    """The changes of the first `cves` sample CVEs, in creation order: received, analysed, then every fourth
    one modified once or twice."""
    changes = []
    for i in range(cves):
        published = dt.datetime.fromisoformat(make_cve(i)["cve"]["published"])
        steps = [published, published + dt.timedelta(days=2, hours=i % 24)]
        steps += [
            published + dt.timedelta(days=30 * k, minutes=i)
            for k in range(1, 1 + (i % 4 == 0) + (i % 8 == 0))
        ]
        changes += [(t, i, n) for n, t in enumerate(steps)]
    return [make_change(i, n, t) for t, i, n in sorted(changes)]


def write_history_sample(folder: Path, cves: int = 600, per_page: int = 500) -> Path:
    """A complete Change History window for the first `cves` CVEs of the NVD sample."""

    folder = Path(folder)
    if (folder / COMPLETE).exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    changes = history(cves)
    for start in range(0, len(changes), per_page):
        items = changes[start : start + per_page]
        write_page(folder / f"page-{start:08d}.json.gz", items, start, len(changes), history=True)
    (folder / COMPLETE).write_text("")
    return folder
