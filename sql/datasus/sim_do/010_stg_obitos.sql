-- SIM DO (declarações de óbito): one row per death, every column of the file, then the decoded ones.
-- SIM's own code tables: RACACOR 3 = Amarela, 4 = Parda (not SIH's); IDADE is a unit digit and two digits of value.
-- The raw SEXO is kept as SEXO_COD (DuckDB's names ignore case, so it cannot sit beside `sexo`).
-- Fields that older layouts (and small extracts) lack are added as NULL (untyped, so a field the files have keeps
-- its type), and the view builds on every layout.
CREATE OR REPLACE VIEW stg_obitos AS
WITH r AS (
    FROM records UNION ALL BY NAME
    SELECT NULL AS TIPOBITO, NULL AS LOCOCOR, NULL AS ESTCIV, NULL AS ESC,
           NULL AS OCUP, NULL AS CODMUNOCOR, NULL AS CIRCOBITO,
           NULL AS ACIDTRAB, NULL AS ASSISTMED, NULL AS NECROPSIA,
           NULL AS GESTACAO, NULL AS GRAVIDEZ, NULL AS PARTO,
           NULL AS OBITOPARTO, NULL AS OBITOGRAV, NULL AS OBITOPUERP
    WHERE false
)
SELECT
    r.* RENAME (SEXO AS SEXO_COD),
    data_ddmmaaaa(r.DTOBITO) AS dt_obito,
    data_ddmmaaaa(r.DTNASC) AS dt_nascimento,
    idade_anos(idade_unidade_de(r.IDADE, 3), idade_valor_de(r.IDADE, 3)) AS idade_anos,
    idade_dias(idade_unidade_de(r.IDADE, 3), idade_valor_de(r.IDADE, 3)) AS idade_dias,
    sexo(r.SEXO) AS sexo,
    raca_cor(r.RACACOR) AS raca_cor,
    CASE codigo(r.TIPOBITO) WHEN '1' THEN 'Fetal' WHEN '2' THEN 'Não fetal' END AS tipo_obito,
    CASE codigo(r.LOCOCOR) WHEN '1' THEN 'Hospital' WHEN '2' THEN 'Outro estabelecimento de saúde'
        WHEN '3' THEN 'Domicílio' WHEN '4' THEN 'Via pública' WHEN '5' THEN 'Outros' WHEN '6' THEN 'Aldeia indígena'
    END AS local_ocorrencia,
    estado_civil(r.ESTCIV) AS estado_civil,
    escolaridade_anos(r.ESC) AS escolaridade,
    ocup.nome AS ocupacao,
    CASE codigo(r.CIRCOBITO) WHEN '1' THEN 'Acidente' WHEN '2' THEN 'Suicídio' WHEN '3' THEN 'Homicídio'
        WHEN '4' THEN 'Outro' END AS circunstancia_obito,
    sim_nao(r.ACIDTRAB) AS acidente_trabalho,
    sim_nao(r.ASSISTMED) AS assistencia_medica,
    sim_nao(r.NECROPSIA) AS necropsia,
    semanas_gestacao(r.GESTACAO) AS semanas_gestacao,
    tipo_gravidez(r.GRAVIDEZ) AS tipo_gravidez,
    tipo_parto(r.PARTO) AS tipo_parto,
    CASE codigo(r.OBITOPARTO) WHEN '1' THEN 'Antes' WHEN '2' THEN 'Durante' WHEN '3' THEN 'Depois' END
        AS momento_obito_parto,
    CASE codigo(r.OBITOGRAV) WHEN '1' THEN 'Sim' WHEN '2' THEN 'Não' END AS obito_na_gravidez,
    CASE codigo(r.OBITOPUERP) WHEN '1' THEN 'De 0 a 42 dias' WHEN '2' THEN 'De 43 dias a 1 ano' WHEN '3' THEN 'Não'
    END AS obito_no_puerperio,
    res.municipio_ibge7 AS municipio_residencia_ibge7,
    res.municipio_nome AS municipio_residencia_nome,
    res.uf AS uf_residencia,
    oco.municipio_ibge7 AS municipio_ocorrencia_ibge7,
    oco.municipio_nome AS municipio_ocorrencia_nome,
    oco.uf AS uf_ocorrencia,
    coalesce(cb4.descricao, cb3.descricao) AS causa_basica_descricao,
    coalesce(cb4.capitulo_descricao, cb3.capitulo_descricao) AS causa_basica_capitulo
FROM r
LEFT JOIN ref.municipios res ON res.municipio_cod6 = municipio_cod6(r.CODMUNRES)
LEFT JOIN ref.municipios oco ON oco.municipio_cod6 = municipio_cod6(r.CODMUNOCOR)
LEFT JOIN ref.cid10 cb4 ON cb4.cid = cid(r.CAUSABAS)
LEFT JOIN ref.cid10 cb3 ON cb3.cid = cid3(r.CAUSABAS)
LEFT JOIN ref.cbo ocup ON ocup.cbo_cod = cbo(r.OCUP);

-- Per decoded date, how many of the file's values hold something but are not a date (NULL in the view).
CREATE OR REPLACE VIEW datas_invalidas AS
UNPIVOT (
    SELECT count_if(data_invalida(DTOBITO, data_ddmmaaaa(DTOBITO))) AS dt_obito,
           count_if(data_invalida(DTNASC, data_ddmmaaaa(DTNASC))) AS dt_nascimento
    FROM records
) ON COLUMNS(*) INTO NAME coluna VALUE invalidas;
