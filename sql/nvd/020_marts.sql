-- Marts over the current version of each CVE (the metrics, weaknesses and configurations of that version).

-- Latest severity per CVE: the NVD's own (Primary) score of the newest CVSS version, else a CNA's.
CREATE OR REPLACE TABLE cve_severity AS
SELECT c.cve_id, c.published, c.vuln_status, m.cvss_version, m.base_score, m.base_severity, m.source,
       m.vector_string
FROM cves_current c
LEFT JOIN (
    SELECT m.*, row_number() OVER (PARTITION BY m.cve_id
                                   ORDER BY m.cvss_version DESC, (m.type = 'Primary') DESC, m.source) AS rn
    FROM metrics m JOIN cves_current c USING (cve_id, _source_file, _source_row)
) m ON m.cve_id = c.cve_id AND m.rn = 1;

CREATE OR REPLACE TABLE cves_per_cwe AS
SELECT w.cwe_id, count(DISTINCT w.cve_id) AS cves
FROM weaknesses w JOIN cves_current c USING (cve_id, _source_file, _source_row)
GROUP BY ALL
ORDER BY cves DESC, cwe_id;

-- cpe:2.3:part:vendor:product:version:…; vulnerable matches only (platform-only nodes are context).
CREATE OR REPLACE TABLE cves_per_product AS
SELECT split_part(p.criteria, ':', 4) AS vendor, split_part(p.criteria, ':', 5) AS product,
       count(DISTINCT p.cve_id) AS cves,
       count(DISTINCT p.cve_id) FILTER (WHERE s.base_severity = 'CRITICAL') AS critical
FROM cpe_matches p
JOIN cves_current c USING (cve_id, _source_file, _source_row)
LEFT JOIN cve_severity s ON s.cve_id = p.cve_id
WHERE p.vulnerable
GROUP BY ALL
ORDER BY cves DESC, vendor, product;
