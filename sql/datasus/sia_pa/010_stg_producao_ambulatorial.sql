-- SIA PA (produção ambulatorial): one row per line of outpatient production, every column of the file, then the
-- decoded ones. PA_CMP is the competence month (YYYYMM); PA_IDADE the patient's age in years (999 unknown);
-- PA_RACACOR SIH's two-digit table (03 = Parda, 04 = Amarela); PA_UFMUN the establishment's municipality,
-- PA_MUNPCN the patient's. Fields that older layouts lack are added as NULL (untyped, so a field the files have
-- keeps its type), and the view builds on every layout.
CREATE OR REPLACE VIEW stg_producao_ambulatorial AS
WITH r AS (
    FROM records UNION ALL BY NAME
    SELECT NULL AS PA_TPUPS, NULL AS PA_TPFIN, NULL AS PA_NIVCPL, NULL AS PA_DOCORIG, NULL AS PA_CBOCOD,
           NULL AS PA_MOTSAI, NULL AS PA_CIDPRI, NULL AS PA_CATEND, NULL AS PA_RACACOR, NULL AS PA_MUNPCN
    WHERE false
)
SELECT
    r.*,
    competencia_aaaamm(r.PA_CMP) AS competencia,
    idade_em_anos(r.PA_IDADE, 999) AS idade_anos,
    sexo(r.PA_SEXO) AS sexo,
    raca_cor_sih(r.PA_RACACOR) AS raca_cor,
    tipo_unidade(r.PA_TPUPS) AS tipo_unidade,
    CASE lpad(codigo(r.PA_TPFIN), 2, '0') WHEN '01' THEN 'Atenção básica (PAB)' WHEN '02' THEN 'Assistência farmacêutica'
        WHEN '04' THEN 'Fundo de Ações Estratégicas e Compensações (FAEC)' WHEN '05' THEN 'Incentivo - MAC'
        WHEN '06' THEN 'Média e alta complexidade (MAC)' WHEN '07' THEN 'Vigilância em saúde'
    END AS tipo_financiamento,
    complexidade(r.PA_NIVCPL) AS complexidade,
    CASE upper(codigo(r.PA_DOCORIG)) WHEN 'B' THEN 'BPA consolidado' WHEN 'I' THEN 'BPA individualizado'
        WHEN 'P' THEN 'APAC - procedimento principal' WHEN 'S' THEN 'APAC - procedimento secundário'
    END AS instrumento_registro,
    carater_atendimento(r.PA_CATEND) AS carater_atendimento,
    motivo_saida(r.PA_MOTSAI) AS motivo_saida,
    ocup.nome AS ocupacao_profissional,
    coalesce(cp4.descricao, cp3.descricao) AS cid_principal_descricao,
    res.municipio_ibge7 AS municipio_residencia_ibge7,
    res.municipio_nome AS municipio_residencia_nome,
    res.uf AS uf_residencia,
    est.municipio_ibge7 AS municipio_estabelecimento_ibge7,
    est.municipio_nome AS municipio_estabelecimento_nome,
    est.uf AS uf_estabelecimento
FROM r
LEFT JOIN ref.municipios res ON res.municipio_cod6 = municipio_cod6(r.PA_MUNPCN)
LEFT JOIN ref.municipios est ON est.municipio_cod6 = municipio_cod6(r.PA_UFMUN)
LEFT JOIN ref.cid10 cp4 ON cp4.cid = cid(r.PA_CIDPRI)
LEFT JOIN ref.cid10 cp3 ON cp3.cid = cid3(r.PA_CIDPRI)
LEFT JOIN ref.cbo ocup ON ocup.cbo_cod = cbo(r.PA_CBOCOD);

-- PA has no day dates; its competence months are checked instead.
CREATE OR REPLACE VIEW datas_invalidas AS
UNPIVOT (
    SELECT count_if(data_invalida(PA_CMP, competencia_aaaamm(PA_CMP))) AS competencia FROM records
) ON COLUMNS(*) INTO NAME coluna VALUE invalidas;
