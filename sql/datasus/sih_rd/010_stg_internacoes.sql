-- SIH RD (AIH reduzida): one row per hospital admission, typed and labelled as microdatasus users expect.
-- Dates are text YYYYMMDD in RD files (invalid ones become NULL); IDADE is coded by COD_IDADE:
-- 2 days, 3 months, 4 years, 5 years over 100. Municipality codes stay text (leading zeros matter).
CREATE OR REPLACE VIEW stg_internacoes AS
SELECT
    N_AIH AS n_aih,
    make_date(TRY_CAST(ANO_CMPT AS INTEGER), TRY_CAST(MES_CMPT AS INTEGER), 1) AS competencia,
    UF_ZI AS uf_zi,
    uf.sigla AS uf_residencia,
    MUNIC_RES AS munic_res,
    MUNIC_MOV AS munic_mov,
    CAST(try_strptime(NASC, '%Y%m%d') AS DATE) AS nascimento,
    CAST(try_strptime(DT_INTER, '%Y%m%d') AS DATE) AS dt_internacao,
    CAST(try_strptime(DT_SAIDA, '%Y%m%d') AS DATE) AS dt_saida,
    CASE SEXO WHEN '1' THEN 'Masculino' WHEN '2' THEN 'Feminino' WHEN '3' THEN 'Feminino' END AS sexo,
    CASE COD_IDADE
        WHEN '2' THEN 0 WHEN '3' THEN 0 WHEN '4' THEN IDADE WHEN '5' THEN IDADE + 100
    END AS idade_anos,
    CASE COD_IDADE WHEN '2' THEN 'dias' WHEN '3' THEN 'meses' WHEN '4' THEN 'anos' WHEN '5' THEN 'anos'
    END AS idade_unidade,
    IDADE AS idade_valor,
    rc.raca_cor,
    DIAG_PRINC AS diag_princ,
    PROC_REA AS proc_rea,
    ESPEC AS especialidade,
    CNES AS cnes,
    DIAS_PERM AS dias_permanencia,
    UTI_MES_TO AS dias_uti,
    MORTE = 1 AS obito,
    VAL_TOT AS val_tot,
    _source_file,
    _source_row
FROM records
LEFT JOIN uf ON uf.codigo = left(records.MUNIC_RES, 2)
LEFT JOIN raca_cor rc ON rc.codigo = ltrim(records.RACA_COR, '0');
