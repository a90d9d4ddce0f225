-- SIM DO (declarações de óbito): dates are text DDMMYYYY; IDADE's first digit is the unit
-- (0 minutes, 1 hours, 2 days, 3 months, 4 years, 5 years over 100), the other two the value.
CREATE OR REPLACE VIEW stg_obitos AS
SELECT
    CAST(try_strptime(DTOBITO, '%d%m%Y') AS DATE) AS dt_obito,
    CAST(try_strptime(DTNASC, '%d%m%Y') AS DATE) AS dt_nascimento,
    CASE left(CAST(IDADE AS VARCHAR), 1)
        WHEN '4' THEN TRY_CAST(right(CAST(IDADE AS VARCHAR), 2) AS INTEGER)
        WHEN '5' THEN 100 + TRY_CAST(right(CAST(IDADE AS VARCHAR), 2) AS INTEGER)
        WHEN '0' THEN 0 WHEN '1' THEN 0 WHEN '2' THEN 0 WHEN '3' THEN 0
    END AS idade_anos,
    CASE CAST(SEXO AS VARCHAR) WHEN '1' THEN 'Masculino' WHEN '2' THEN 'Feminino' END AS sexo,
    rc.raca_cor,
    CAST(CODMUNRES AS VARCHAR) AS codmunres,
    uf.sigla AS uf_residencia,
    CAUSABAS AS causa_basica,
    _source_file,
    _source_row
FROM records
LEFT JOIN uf ON uf.codigo = left(CAST(records.CODMUNRES AS VARCHAR), 2)
LEFT JOIN raca_cor rc ON rc.codigo = CAST(records.RACACOR AS VARCHAR);
