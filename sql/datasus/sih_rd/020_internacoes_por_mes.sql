-- Admissions, deaths and amounts paid per month of competence and state of residence.
CREATE OR REPLACE VIEW internacoes_por_mes AS
SELECT competencia, uf_residencia, count(*) AS internacoes, count(*) FILTER (WHERE obito) AS obitos,
       round(sum(VAL_TOT), 2) AS valor_total, round(avg(DIAS_PERM), 2) AS permanencia_media
FROM stg_internacoes
GROUP BY ALL
ORDER BY competencia, uf_residencia;
