-- The largest EPSS changes between the latest score date and the latest one at least 7 days before it (the earliest
-- date held, when none is that old). `model_changed`: the two scores come from different EPSS models, which are
-- not comparable.
CREATE OR REPLACE TABLE epss_movers AS
WITH dates AS (
    SELECT max(score_date) AS date_to FROM epss.records
),
span AS (
    SELECT date_to,
           coalesce(max(score_date) FILTER (WHERE score_date <= date_to - 7),
                    min(score_date)) AS date_from
    FROM (SELECT DISTINCT score_date FROM epss.records), dates
    GROUP BY date_to
)
SELECT t.cve_id, span.date_from, span.date_to, f.epss AS epss_from, t.epss AS epss_to,
       round(t.epss - f.epss, 5) AS epss_change, f.percentile AS percentile_from, t.percentile AS percentile_to,
       f.model_version IS DISTINCT FROM t.model_version AS model_changed,
       r.in_kev, r.base_severity
FROM span
JOIN epss.records t ON t.score_date = span.date_to
JOIN epss.records f ON f.score_date = span.date_from AND f.cve_id = t.cve_id
LEFT JOIN cve_risk r ON r.cve_id = t.cve_id
WHERE span.date_from < span.date_to AND t.epss IS DISTINCT FROM f.epss
ORDER BY abs(t.epss - f.epss) DESC, t.cve_id;
