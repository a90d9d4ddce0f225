-- Derives the shipped reference tables from the shared CSVs (loaded by build.py as src_<file> tables, all
-- VARCHAR so codes keep their leading zeros). Run by `python -m etl.reference.build`; never edit the output.

-- State codes and abbreviations are IBGE's (facts not in the CSVs); names come from IBGE's municipality list.
CREATE TABLE ufs AS
WITH sigla(uf_codigo, uf) AS (VALUES
    ('11', 'RO'), ('12', 'AC'), ('13', 'AM'), ('14', 'RR'), ('15', 'PA'), ('16', 'AP'), ('17', 'TO'),
    ('21', 'MA'), ('22', 'PI'), ('23', 'CE'), ('24', 'RN'), ('25', 'PB'), ('26', 'PE'), ('27', 'AL'),
    ('28', 'SE'), ('29', 'BA'), ('31', 'MG'), ('32', 'ES'), ('33', 'RJ'), ('35', 'SP'), ('41', 'PR'),
    ('42', 'SC'), ('43', 'RS'), ('50', 'MS'), ('51', 'MT'), ('52', 'GO'), ('53', 'DF')
)
SELECT
    s.uf_codigo,
    s.uf,
    n.uf_nome,
    -- The first digit of an IBGE state code is its region.
    CASE left(s.uf_codigo, 1)
        WHEN '1' THEN 'Norte' WHEN '2' THEN 'Nordeste' WHEN '3' THEN 'Sudeste' WHEN '4' THEN 'Sul'
        WHEN '5' THEN 'Centro-Oeste'
    END AS regiao
FROM sigla s
JOIN (SELECT DISTINCT uf_code AS uf_codigo, uf_name AS uf_nome FROM src_ibge_municipios_2024) n USING (uf_codigo);

-- One row per DATASUS 6-digit code (its "ignorado" codes included), joined to IBGE 2024 on the first six
-- digits; plus the IBGE municipalities DATASUS's table does not list yet (status and tipo NULL).
CREATE TABLE municipios AS
WITH codes AS (
    SELECT municipio_cod6 FROM src_datasus_municipios
    UNION
    SELECT municipio_ibge6 FROM src_ibge_municipios_2024
)
SELECT
    c.municipio_cod6,
    i.municipio_ibge7,
    coalesce(i.municipio_nome, d.nome) AS municipio_nome,
    u.uf,
    u.uf_codigo,
    u.uf_nome,
    u.regiao,
    d.status,
    d.tipo,
    i.rgint_code AS rgint_codigo,
    i.rgint_name AS rgint_nome,
    i.rgi_code AS rgi_codigo,
    i.rgi_name AS rgi_nome,
    d.nome AS nome_datasus,
    -- Transferred municipalities carry 0.0 coordinates and areas: no position, not a point in the Atlantic.
    nullif(TRY_CAST(d.lat AS DOUBLE), 0) AS latitude,
    nullif(TRY_CAST(d.lon AS DOUBLE), 0) AS longitude,
    CASE WHEN TRY_CAST(d.lat AS DOUBLE) <> 0 THEN TRY_CAST(d.altitude_m AS INTEGER) END AS altitude_m,
    nullif(TRY_CAST(d.area_km2 AS DOUBLE), 0) AS area_km2
FROM codes c
LEFT JOIN src_datasus_municipios d ON d.municipio_cod6 = c.municipio_cod6
LEFT JOIN src_ibge_municipios_2024 i ON i.municipio_ibge6 = c.municipio_cod6
LEFT JOIN ufs u ON u.uf_codigo = left(c.municipio_cod6, 2);

CREATE TABLE cid10_capitulos AS
SELECT CAST(capitulo AS INTEGER) AS capitulo, cid_inicio, cid_fim, descricao FROM src_cid10_capitulos;

CREATE TABLE cid10_categorias AS
SELECT cid3, descricao, descricao_abrev FROM src_cid10_categorias;

CREATE TABLE cid10_subcategorias AS
SELECT cid4, descricao, descricao_abrev, nullif(restr_sexo, '') AS restr_sexo,
       nullif(causa_obito, '') AS causa_obito
FROM src_cid10_subcategorias;

-- One lookup row per code: every 3-character category and every 4-character subcategory (the subcategory
-- file's 263 three-character rows repeat their category), with its chapter.
CREATE TABLE cid10 AS
WITH codes AS (
    SELECT cid3 AS cid, descricao, cid3 FROM cid10_categorias
    UNION ALL
    SELECT cid4, descricao, left(cid4, 3) FROM cid10_subcategorias WHERE length(cid4) = 4
)
SELECT c.cid, c.descricao, k.capitulo, k.descricao AS capitulo_descricao, c.cid3
FROM codes c
LEFT JOIN cid10_capitulos k ON c.cid3 BETWEEN k.cid_inicio AND k.cid_fim;

CREATE TABLE cbo AS
SELECT cbo_cod, nome FROM src_cbo2002;
