-- Each CVE's changes from NVD's Change History, one row per change with the period it
-- describes the record: from its creation (`valid_from`) to the next change of that CVE (`valid_to`, null for the
-- latest). A change fetched twice (in overlapping windows) counts once.
CREATE OR REPLACE VIEW cves_history AS
SELECT cve_id, cve_change_id, event_name, source_identifier, created AS valid_from,
       lead(created) OVER (PARTITION BY cve_id ORDER BY created, cve_change_id) AS valid_to,
       details
FROM (
    SELECT cve_id, cve_change_id, any_value(event_name) AS event_name,
           any_value(source_identifier) AS source_identifier, min(created) AS created,
           list({'action': action, 'type': type, 'old_value': old_value, 'new_value': new_value}
                ORDER BY detail_index) FILTER (WHERE detail_index IS NOT NULL) AS details
    FROM (SELECT DISTINCT cve_id, cve_change_id, event_name, source_identifier, created, detail_index, action,
                          type, old_value, new_value
          FROM cve_changes)
    GROUP BY cve_id, cve_change_id
);
