-- SINAN (every disease: one view for all its groups): one row per notification, every column of the file, then
-- the decoded ones. Dates are DBF dates (older layouts: text YYYYMMDD); a text DT_OBITO becomes a DATE in place.
-- NU_IDADE_N is a unit digit and three digits of value ('4035' = 35 years, '3008' = 8 months). Race is SIM's
-- table (3 = Amarela, 4 = Parda). CLASSI_FIN follows the disease (ID_AGRAVO): dengue and chikungunya have their own
-- classes, the others confirmed/discarded.
-- Fields that older layouts and some diseases lack are added as NULL (untyped, so a field the files have keeps
-- its type), and the view builds on every layout.
CREATE OR REPLACE VIEW stg_notificacoes AS
WITH r AS (
    FROM records UNION ALL BY NAME
    SELECT NULL AS TP_NOT, NULL AS ID_MN_RESI, NULL AS CS_GESTANT, NULL AS CS_ESCOL_N, NULL AS ID_OCUPA_N,
           NULL AS CLASSI_FIN, NULL AS CRITERIO, NULL AS TPAUTOCTO, NULL AS COMUNINF, NULL AS DOENCA_TRA,
           NULL AS EVOLUCAO, NULL AS DT_INVEST, NULL AS DT_ENCERRA, NULL AS DT_OBITO
    WHERE false
)
SELECT
    r.* REPLACE (data_aaaammdd(r.DT_OBITO) AS DT_OBITO),
    data_aaaammdd(r.DT_NOTIFIC) AS dt_notificacao,
    data_aaaammdd(r.DT_SIN_PRI) AS dt_primeiros_sintomas,
    data_aaaammdd(r.DT_INVEST) AS dt_investigacao,
    data_aaaammdd(r.DT_ENCERRA) AS dt_encerramento,
    idade_anos(idade_unidade_de(r.NU_IDADE_N, 4), idade_valor_de(r.NU_IDADE_N, 4)) AS idade_anos,
    idade_dias(idade_unidade_de(r.NU_IDADE_N, 4), idade_valor_de(r.NU_IDADE_N, 4)) AS idade_dias,
    sexo(r.CS_SEXO) AS sexo,
    raca_cor(r.CS_RACA) AS raca_cor,
    coalesce(ag4.descricao, ag3.descricao) AS agravo,
    CASE codigo(r.TP_NOT) WHEN '1' THEN 'Negativa' WHEN '2' THEN 'Individual' WHEN '3' THEN 'Surto'
        WHEN '4' THEN 'Agregado' END AS tipo_notificacao,
    CASE codigo(r.CS_GESTANT) WHEN '1' THEN '1º trimestre' WHEN '2' THEN '2º trimestre' WHEN '3' THEN '3º trimestre'
        WHEN '4' THEN 'Idade gestacional ignorada' WHEN '5' THEN 'Não' WHEN '6' THEN 'Não se aplica' END AS gestante,
    CASE lpad(codigo(r.CS_ESCOL_N), 2, '0')
        WHEN '00' THEN 'Analfabeto' WHEN '01' THEN '1ª a 4ª série incompleta do EF'
        WHEN '02' THEN '4ª série completa do EF' WHEN '03' THEN '5ª a 8ª série incompleta do EF'
        WHEN '04' THEN 'Ensino fundamental completo' WHEN '05' THEN 'Ensino médio incompleto'
        WHEN '06' THEN 'Ensino médio completo' WHEN '07' THEN 'Educação superior incompleta'
        WHEN '08' THEN 'Educação superior completa' WHEN '10' THEN 'Não se aplica'
    END AS escolaridade,
    ocup.nome AS ocupacao,
    CASE WHEN cid(r.ID_AGRAVO) IN ('A90', 'A920') THEN
        CASE codigo(r.CLASSI_FIN) WHEN '1' THEN 'Dengue clássico' WHEN '2' THEN 'Dengue com complicações'
            WHEN '3' THEN 'Febre hemorrágica do dengue' WHEN '4' THEN 'Síndrome do choque do dengue'
            WHEN '5' THEN 'Descartado' WHEN '8' THEN 'Inconclusivo' WHEN '10' THEN 'Dengue'
            WHEN '11' THEN 'Dengue com sinais de alarme' WHEN '12' THEN 'Dengue grave' WHEN '13' THEN 'Chikungunya' END
    ELSE CASE codigo(r.CLASSI_FIN) WHEN '1' THEN 'Confirmado' WHEN '2' THEN 'Descartado' WHEN '8' THEN 'Inconclusivo' END
    END AS classificacao_final,
    CASE codigo(r.CRITERIO) WHEN '1' THEN 'Laboratorial' WHEN '2' THEN 'Clínico-epidemiológico'
        WHEN '3' THEN 'Em investigação' END AS criterio_confirmacao,
    CASE codigo(r.TPAUTOCTO) WHEN '1' THEN 'Sim' WHEN '2' THEN 'Não' WHEN '3' THEN 'Indeterminado' END AS autoctone,
    sim_nao(r.DOENCA_TRA) AS doenca_trabalho,
    CASE codigo(r.EVOLUCAO) WHEN '1' THEN 'Cura' WHEN '2' THEN 'Óbito pelo agravo notificado'
        WHEN '3' THEN 'Óbito por outras causas' WHEN '4' THEN 'Óbito em investigação' END AS evolucao_caso,
    res.municipio_ibge7 AS municipio_residencia_ibge7,
    res.municipio_nome AS municipio_residencia_nome,
    res.uf AS uf_residencia,
    nt.municipio_ibge7 AS municipio_notificacao_ibge7,
    nt.municipio_nome AS municipio_notificacao_nome,
    nt.uf AS uf_notificacao,
    inf.municipio_ibge7 AS municipio_infeccao_ibge7,
    inf.municipio_nome AS municipio_infeccao_nome,
    inf.uf AS uf_infeccao
FROM r
LEFT JOIN ref.municipios res ON res.municipio_cod6 = municipio_cod6(r.ID_MN_RESI)
LEFT JOIN ref.municipios nt ON nt.municipio_cod6 = municipio_cod6(r.ID_MUNICIP)
LEFT JOIN ref.municipios inf ON inf.municipio_cod6 = municipio_cod6(r.COMUNINF)
LEFT JOIN ref.cid10 ag4 ON ag4.cid = cid(r.ID_AGRAVO)
LEFT JOIN ref.cid10 ag3 ON ag3.cid = cid3(r.ID_AGRAVO)
LEFT JOIN ref.cbo ocup ON ocup.cbo_cod = cbo(r.ID_OCUPA_N);

CREATE OR REPLACE VIEW datas_invalidas AS
UNPIVOT (
    SELECT count_if(data_invalida(DT_NOTIFIC, data_aaaammdd(DT_NOTIFIC))) AS dt_notificacao,
           count_if(data_invalida(DT_SIN_PRI, data_aaaammdd(DT_SIN_PRI))) AS dt_primeiros_sintomas
    FROM records
) ON COLUMNS(*) INTO NAME coluna VALUE invalidas;
