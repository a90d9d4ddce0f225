-- One row per current CVE with what an analyst ranks and filters it by: the best CVSS score (v4.0 > v3.1 > v3.0 > v2,
-- NVD's Primary before a CNA's Secondary: cve_severity's order), the EPSS score of the latest score date, whether
-- the latest CISA KEV release lists it, its CWEs with their names, and the vendors and products it affects.
CREATE OR REPLACE TABLE cve_risk AS
WITH latest_epss AS (
    SELECT cve_id, max_by(epss, _source_row) AS epss, max_by(percentile, _source_row) AS percentile,
           any_value(score_date) AS score_date, any_value(model_version) AS model_version
    FROM epss.records
    WHERE score_date = (SELECT max(score_date) FROM epss.records)
    GROUP BY cve_id
),
latest_kev AS (
    SELECT cve_id, min(date_added) AS date_added, min(due_date) AS due_date,
           bool_or(known_ransomware_campaign_use = 'Known') AS ransomware
    FROM kev.records
    WHERE catalog_version = (SELECT max_by(catalog_version, date_released) FROM kev.records)
    GROUP BY cve_id
),
cwes AS (
    SELECT w.cve_id, list(w.cwe_id ORDER BY w.cwe_id) AS cwe_ids,
           list(coalesce(n.name, CASE w.cwe_id WHEN 'NVD-CWE-noinfo' THEN 'Insufficient Information'
                                               WHEN 'NVD-CWE-Other' THEN 'Other' END) ORDER BY w.cwe_id) AS cwe_names
    FROM (SELECT DISTINCT w.cve_id, w.cwe_id
          FROM weaknesses w JOIN cves_current c USING (cve_id, _source_file, _source_row)
          WHERE w.cwe_id IS NOT NULL) w
    LEFT JOIN (SELECT cwe_id, any_value(name) AS name FROM cwe.records GROUP BY cwe_id) n USING (cwe_id)
    GROUP BY w.cve_id
),
products AS (  -- cpe:2.3:part:vendor:product:…, vulnerable matches only; and CVE JSON 5's affected products
    SELECT cve_id, list(DISTINCT vendor ORDER BY vendor) AS vendors, list(DISTINCT product ORDER BY product) AS products
    FROM (
        SELECT p.cve_id, split_part(p.criteria, ':', 4) AS vendor, split_part(p.criteria, ':', 5) AS product
        FROM cpe_matches p JOIN cves_current c USING (cve_id, _source_file, _source_row)
        WHERE p.vulnerable
        UNION ALL
        SELECT a.cve_id, lower(a.vendor), lower(a.product)
        FROM affected a JOIN cves_current c USING (cve_id, _source_file, _source_row)
        WHERE a.vendor IS NOT NULL
    )
    GROUP BY cve_id
)
SELECT c.cve_id, c.published, c.last_modified, c.vuln_status,
       s.cvss_version, s.base_score, s.base_severity, s.vector_string, s.source AS cvss_source,
       e.epss, e.percentile AS epss_percentile, e.score_date AS epss_date, e.model_version AS epss_model_version,
       k.cve_id IS NOT NULL OR c.cisa_exploit_add IS NOT NULL AS in_kev,
       coalesce(k.date_added, c.cisa_exploit_add) AS kev_date_added,
       coalesce(k.due_date, c.cisa_action_due) AS kev_due_date,
       coalesce(k.ransomware, false) AS kev_ransomware,
       w.cwe_ids, w.cwe_names, p.vendors, p.products
FROM cves_current c
LEFT JOIN cve_severity s USING (cve_id)
LEFT JOIN latest_epss e USING (cve_id)
LEFT JOIN latest_kev k USING (cve_id)
LEFT JOIN cwes w USING (cve_id)
LEFT JOIN products p USING (cve_id)
ORDER BY c.cve_id;
