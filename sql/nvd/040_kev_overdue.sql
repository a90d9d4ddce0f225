-- The latest KEV release's entries past their remediation due date on the day the warehouse was built, most overdue
-- first, with the CVE's severity and EPSS for triage.
CREATE OR REPLACE TABLE kev_overdue AS
SELECT k.cve_id, k.vendor_project, k.product, k.vulnerability_name, k.date_added, k.due_date,
       current_date - k.due_date AS days_overdue, k.known_ransomware_campaign_use = 'Known' AS ransomware,
       r.base_severity, r.base_score, r.epss, r.epss_percentile, r.vuln_status
FROM kev.records k
LEFT JOIN cve_risk r USING (cve_id)
WHERE k.catalog_version = (SELECT max_by(catalog_version, date_released) FROM kev.records)
  AND k.due_date < current_date
ORDER BY days_overdue DESC, k.cve_id;
