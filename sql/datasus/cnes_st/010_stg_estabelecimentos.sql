-- CNES ST (estabelecimentos): one row per establishment and competence month, every column of the file, then the
-- decoded ones. COMPETEN is YYYYMM; CODUFMUN the municipality (6 digits). Two-digit codes are compared padded
-- ('03' and '3' are the same turn). Fields that older layouts lack are added as NULL (untyped, so a field the
-- files have keeps its type), and the view builds on every layout.
CREATE OR REPLACE VIEW stg_estabelecimentos AS
WITH r AS (
    FROM records UNION ALL BY NAME
    SELECT NULL AS PF_PJ, NULL AS NIV_DEP, NULL AS VINC_SUS, NULL AS TPGESTAO, NULL AS ESFERA_A, NULL AS ATIVIDAD,
           NULL AS CLIENTEL, NULL AS TURNO_AT, NULL AS TP_PREST, NULL AS NAT_JUR
    WHERE false
)
SELECT
    r.*,
    competencia_aaaamm(r.COMPETEN) AS competencia,
    mun.municipio_ibge7 AS municipio_ibge7,
    mun.municipio_nome AS municipio_nome,
    mun.uf AS uf,
    tipo_unidade(r.TP_UNID) AS tipo_unidade,
    CASE upper(codigo(r.TPGESTAO)) WHEN 'D' THEN 'Dupla' WHEN 'E' THEN 'Estadual' WHEN 'M' THEN 'Municipal'
        WHEN 'S' THEN 'Sem gestão' WHEN 'Z' THEN 'Sem gestão' END AS tipo_gestao,
    CASE lpad(codigo(r.ESFERA_A), 2, '0') WHEN '01' THEN 'Federal' WHEN '02' THEN 'Estadual' WHEN '03' THEN 'Municipal'
        WHEN '04' THEN 'Privada' END AS esfera_administrativa,
    CASE codigo(r.PF_PJ) WHEN '1' THEN 'Pessoa física' WHEN '3' THEN 'Pessoa jurídica' END AS pessoa_fisica_juridica,
    CASE codigo(r.NIV_DEP) WHEN '1' THEN 'Individual' WHEN '3' THEN 'Mantida' END AS nivel_dependencia,
    CASE codigo(r.VINC_SUS) WHEN '1' THEN 'Sim' WHEN '0' THEN 'Não' WHEN '2' THEN 'Não' END AS vinculo_sus,
    CASE lpad(codigo(r.ATIVIDAD), 2, '0') WHEN '01' THEN 'Unidade universitária'
        WHEN '02' THEN 'Unidade escola superior isolada' WHEN '03' THEN 'Unidade auxiliar de ensino'
        WHEN '04' THEN 'Unidade sem atividade de ensino' WHEN '05' THEN 'Hospital de ensino' END AS atividade_ensino,
    CASE lpad(codigo(r.CLIENTEL), 2, '0') WHEN '00' THEN 'Fluxo de clientela não exigido'
        WHEN '01' THEN 'Atendimento de demanda espontânea' WHEN '02' THEN 'Atendimento de demanda referenciada'
        WHEN '03' THEN 'Atendimento de demanda espontânea e referenciada' END AS fluxo_clientela,
    CASE lpad(codigo(r.TURNO_AT), 2, '0') WHEN '01' THEN 'Turnos intermitentes'
        WHEN '02' THEN 'Contínuo 24h/dia (plantão: sábados, domingos e feriados)' WHEN '03' THEN 'Manhã / Tarde / Noite'
        WHEN '04' THEN 'Manhã' WHEN '05' THEN 'Tarde' WHEN '06' THEN 'Manhã / Tarde' WHEN '07' THEN 'Noite'
    END AS turno_atendimento
FROM r
LEFT JOIN ref.municipios mun ON mun.municipio_cod6 = municipio_cod6(r.CODUFMUN);

CREATE OR REPLACE VIEW datas_invalidas AS
UNPIVOT (
    SELECT count_if(data_invalida(COMPETEN, competencia_aaaamm(COMPETEN))) AS competencia FROM records
) ON COLUMNS(*) INTO NAME coluna VALUE invalidas;
