-- The marts below join the enrichment datasets by their conventional names: `kev` (kind kev), `epss` (kind epss),
-- and `cwe` (kind cwe). One that is not configured is an empty stand-in here, so
-- the marts still build (without KEV, `in_kev` falls back to NVD's own CISA fields).
CREATE SCHEMA IF NOT EXISTS kev;
CREATE VIEW IF NOT EXISTS kev.records AS
SELECT NULL::VARCHAR AS catalog_version, NULL::TIMESTAMPTZ AS date_released, NULL::VARCHAR AS cve_id,
       NULL::VARCHAR AS vendor_project, NULL::VARCHAR AS product, NULL::VARCHAR AS vulnerability_name,
       NULL::DATE AS date_added, NULL::DATE AS due_date, NULL::VARCHAR AS known_ransomware_campaign_use,
       NULL::VARCHAR[] AS cwes
WHERE false;

CREATE SCHEMA IF NOT EXISTS epss;
CREATE VIEW IF NOT EXISTS epss.records AS
SELECT NULL::VARCHAR AS cve_id, NULL::DOUBLE AS epss, NULL::DOUBLE AS percentile, NULL::DATE AS score_date,
       NULL::VARCHAR AS model_version, NULL::VARCHAR AS _source_file, NULL::BIGINT AS _source_row
WHERE false;

CREATE SCHEMA IF NOT EXISTS cwe;
CREATE VIEW IF NOT EXISTS cwe.records AS
SELECT NULL::VARCHAR AS cwe_id, NULL::VARCHAR AS name, NULL::VARCHAR AS kind, NULL::VARCHAR AS abstraction,
       NULL::VARCHAR AS status
WHERE false;

