-- The latest version of each CVE: every version fetched stays in the Parquet zone; this view keeps the one
-- with the latest last_modified, ties broken by the later page and position (deterministic).
CREATE OR REPLACE VIEW cves_current AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY cve_id
                                 ORDER BY last_modified DESC, _source_file DESC, _source_row DESC) AS rn
    FROM cves
) WHERE rn = 1;
