-- SINASC DN (declarações de nascido vivo): one row per live birth, every column of the file, then the decoded ones.
-- Dates are text DDMMYYYY; RACACOR is SIM's table (3 = Amarela, 4 = Parda), for the newborn (RACACORMAE for the
-- mother); IDADEMAE is the mother's age in years. The raw SEXO is kept as SEXO_COD (DuckDB's names ignore case).
-- Fields that older layouts (and small extracts) lack are added as NULL (untyped, so a field the files have keeps
-- its type), and the view builds on every layout.
CREATE OR REPLACE VIEW stg_nascidos_vivos AS
WITH r AS (
    FROM records UNION ALL BY NAME
    SELECT NULL AS CODMUNNASC, NULL AS LOCNASC, NULL AS ESTCIVMAE, NULL AS ESCMAE, NULL AS CODOCUPMAE,
           NULL AS GESTACAO, NULL AS GRAVIDEZ, NULL AS PARTO, NULL AS CONSULTAS, NULL AS IDANOMAL,
           NULL AS RACACORMAE, NULL AS IDADEPAI, NULL AS CODANOMAL
    WHERE false
)
SELECT
    r.* RENAME (SEXO AS SEXO_COD),
    data_ddmmaaaa(r.DTNASC) AS dt_nascimento,
    idade_em_anos(r.IDADEMAE, 99) AS idade_mae_anos,
    idade_em_anos(r.IDADEPAI, 99) AS idade_pai_anos,
    sexo(r.SEXO) AS sexo,
    raca_cor(r.RACACOR) AS raca_cor,
    raca_cor(r.RACACORMAE) AS raca_cor_mae,
    CASE codigo(r.LOCNASC) WHEN '1' THEN 'Hospital' WHEN '2' THEN 'Outro estabelecimento de saúde'
        WHEN '3' THEN 'Domicílio' WHEN '4' THEN 'Outros' WHEN '5' THEN 'Aldeia indígena' END AS local_nascimento,
    estado_civil(r.ESTCIVMAE) AS estado_civil_mae,
    escolaridade_anos(r.ESCMAE) AS escolaridade_mae,
    ocup.nome AS ocupacao_mae,
    semanas_gestacao(r.GESTACAO) AS semanas_gestacao,
    tipo_gravidez(r.GRAVIDEZ) AS tipo_gravidez,
    tipo_parto(r.PARTO) AS tipo_parto,
    CASE codigo(r.CONSULTAS) WHEN '1' THEN 'Nenhuma' WHEN '2' THEN '1 a 3' WHEN '3' THEN '4 a 6'
        WHEN '4' THEN '7 ou mais' END AS consultas_prenatal,
    sim_nao(r.IDANOMAL) AS anomalia_congenita,
    coalesce(an4.descricao, an3.descricao) AS anomalia_descricao,
    res.municipio_ibge7 AS municipio_residencia_ibge7,
    res.municipio_nome AS municipio_residencia_nome,
    res.uf AS uf_residencia,
    nasc.municipio_ibge7 AS municipio_nascimento_ibge7,
    nasc.municipio_nome AS municipio_nascimento_nome,
    nasc.uf AS uf_nascimento
FROM r
LEFT JOIN ref.municipios res ON res.municipio_cod6 = municipio_cod6(r.CODMUNRES)
LEFT JOIN ref.municipios nasc ON nasc.municipio_cod6 = municipio_cod6(r.CODMUNNASC)
LEFT JOIN ref.cbo ocup ON ocup.cbo_cod = cbo(r.CODOCUPMAE)
LEFT JOIN ref.cid10 an4 ON an4.cid = left(cid(r.CODANOMAL), 4)
LEFT JOIN ref.cid10 an3 ON an3.cid = cid3(r.CODANOMAL);

CREATE OR REPLACE VIEW datas_invalidas AS
UNPIVOT (
    SELECT count_if(data_invalida(DTNASC, data_ddmmaaaa(DTNASC))) AS dt_nascimento FROM records
) ON COLUMNS(*) INTO NAME coluna VALUE invalidas;
