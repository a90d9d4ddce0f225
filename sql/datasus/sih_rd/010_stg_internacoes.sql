-- SIH RD (AIH reduzida): one row per hospital admission, every column of the file, then the decoded ones.
-- Dates are text YYYYMMDD; DT_SAIDA becomes a DATE in place (a `dt_saida` beside it would clash: DuckDB's names
-- ignore case). IDADE's unit is COD_IDADE (2 days, 3 months, 4 years, 5 years over 100). RACA_COR is SIH's
-- two-digit table (03 = Parda, 04 = Amarela). The raw SEXO and RACA_COR are kept as SEXO_COD and RACA_COR_COD.
-- Fields that older layouts (and small extracts) lack are added as NULL (untyped, so a field the files have keeps
-- its type), and the view builds on every layout.
CREATE OR REPLACE VIEW stg_internacoes AS
WITH r AS (
    FROM records UNION ALL BY NAME
    SELECT NULL AS CAR_INT, NULL AS COBRANCA, NULL AS NATUREZA, NULL AS COMPLEX,
           NULL AS IDENT, NULL AS INSTRU, NULL AS CBOR, NULL AS MUNIC_MOV
    WHERE false
)
SELECT
    r.* REPLACE (data_aaaammdd(r.DT_SAIDA) AS DT_SAIDA) RENAME (SEXO AS SEXO_COD, RACA_COR AS RACA_COR_COD),
    competencia_ano_mes(r.ANO_CMPT, r.MES_CMPT) AS competencia,
    data_aaaammdd(r.DT_INTER) AS dt_internacao,
    data_aaaammdd(r.NASC) AS dt_nascimento,
    idade_anos(r.COD_IDADE, r.IDADE) AS idade_anos,
    idade_dias(r.COD_IDADE, r.IDADE) AS idade_dias,
    sexo(r.SEXO) AS sexo,
    raca_cor_sih(r.RACA_COR) AS raca_cor,
    r.MORTE = 1 AS obito,
    res.municipio_ibge7 AS municipio_residencia_ibge7,
    res.municipio_nome AS municipio_residencia_nome,
    res.uf AS uf_residencia,
    mov.municipio_ibge7 AS municipio_estabelecimento_ibge7,
    mov.municipio_nome AS municipio_estabelecimento_nome,
    mov.uf AS uf_estabelecimento,
    coalesce(dp4.descricao, dp3.descricao) AS cid_principal_descricao,
    coalesce(dp4.capitulo_descricao, dp3.capitulo_descricao) AS cid_principal_capitulo,
    CASE lpad(codigo(r.ESPEC), 2, '0')
        WHEN '01' THEN 'Cirúrgico' WHEN '02' THEN 'Obstétrico' WHEN '03' THEN 'Clínico' WHEN '04' THEN 'Crônico'
        WHEN '05' THEN 'Psiquiatria' WHEN '06' THEN 'Pneumologia sanitária (tisiologia)' WHEN '07' THEN 'Pediátrico'
        WHEN '08' THEN 'Reabilitação' WHEN '09' THEN 'Leito dia / Cirúrgico' WHEN '10' THEN 'Leito dia / AIDS'
        WHEN '11' THEN 'Leito dia / Fibrose cística' WHEN '12' THEN 'Leito dia / Intercorrência pós-transplante'
        WHEN '13' THEN 'Leito dia / Geriatria' WHEN '14' THEN 'Leito dia / Saúde mental'
        WHEN '51' THEN 'UTI II Adulto COVID-19' WHEN '52' THEN 'UTI II Pediátrica COVID-19'
        WHEN '64' THEN 'Unidade intermediária' WHEN '65' THEN 'Unidade intermediária neonatal'
        WHEN '74' THEN 'UTI I' WHEN '75' THEN 'UTI Adulto II' WHEN '76' THEN 'UTI Adulto III'
        WHEN '77' THEN 'UTI Infantil I' WHEN '78' THEN 'UTI Infantil II' WHEN '79' THEN 'UTI Infantil III'
        WHEN '80' THEN 'UTI Neonatal I' WHEN '81' THEN 'UTI Neonatal II' WHEN '82' THEN 'UTI Neonatal III'
        WHEN '83' THEN 'UTI Queimados' WHEN '84' THEN 'Acolhimento noturno'
        WHEN '85' THEN 'UTI Coronariana tipo II (UCO II)' WHEN '86' THEN 'UTI Coronariana tipo III (UCO III)'
        WHEN '87' THEN 'Saúde mental (clínico)' WHEN '88' THEN 'Queimado adulto (clínico)'
        WHEN '89' THEN 'Queimado pediátrico (clínico)' WHEN '90' THEN 'Queimado adulto (cirúrgico)'
        WHEN '91' THEN 'Queimado pediátrico (cirúrgico)'
        WHEN '92' THEN 'UCI Unidade de cuidados intermediários neonatal convencional'
        WHEN '93' THEN 'UCI Unidade de cuidados intermediários neonatal canguru'
        WHEN '94' THEN 'UCI Unidade de cuidados intermediários pediátrico'
        WHEN '95' THEN 'UCI Unidade de cuidados intermediários adulto'
        WHEN '96' THEN 'Suporte ventilatório pulmonar COVID-19'
    END AS especialidade,
    carater_atendimento(r.CAR_INT) AS carater_internacao,
    motivo_saida(r.COBRANCA) AS motivo_saida,
    CASE lpad(codigo(r.NATUREZA), 2, '0')
        WHEN '10' THEN 'Próprio' WHEN '20' THEN 'Contratado' WHEN '22' THEN 'Contratado optante SIMPLES'
        WHEN '30' THEN 'Federal' WHEN '31' THEN 'Federal verba própria' WHEN '40' THEN 'Estadual'
        WHEN '41' THEN 'Estadual verba própria' WHEN '50' THEN 'Municipal' WHEN '60' THEN 'Filantrópico'
        WHEN '61' THEN 'Filantrópico isento de tributos e contribuições sociais'
        WHEN '63' THEN 'Filantrópico isento de IR e contribuição sobre lucro líquido'
        WHEN '70' THEN 'Universitário ensino' WHEN '80' THEN 'Sindicato' WHEN '90' THEN 'Universitário pesquisas'
        WHEN '91' THEN 'Universitário pesquisas isento de tributos e contribuições sociais'
        WHEN '93' THEN 'Universitário pesquisas isento de IR e contribuição sobre lucro líquido'
        WHEN '92' THEN 'Universitário de ensino e pesquisa privado'
        WHEN '94' THEN 'Universitário de ensino e pesquisa privado'
    END AS natureza_hospital,
    complexidade(r.COMPLEX) AS complexidade,
    CASE codigo(r.IDENT) WHEN '1' THEN 'Principal' WHEN '3' THEN 'Continuação' WHEN '5' THEN 'Longa permanência'
    END AS tipo_aih,
    CASE codigo(r.INSTRU) WHEN '1' THEN 'Analfabeto' WHEN '2' THEN '1º grau' WHEN '3' THEN '2º grau'
        WHEN '4' THEN '3º grau' END AS instrucao,
    ocup.nome AS ocupacao
FROM r
LEFT JOIN ref.municipios res ON res.municipio_cod6 = municipio_cod6(r.MUNIC_RES)
LEFT JOIN ref.municipios mov ON mov.municipio_cod6 = municipio_cod6(r.MUNIC_MOV)
LEFT JOIN ref.cid10 dp4 ON dp4.cid = cid(r.DIAG_PRINC)
LEFT JOIN ref.cid10 dp3 ON dp3.cid = cid3(r.DIAG_PRINC)
LEFT JOIN ref.cbo ocup ON ocup.cbo_cod = cbo(r.CBOR);

CREATE OR REPLACE VIEW datas_invalidas AS
UNPIVOT (
    SELECT count_if(data_invalida(DT_INTER, data_aaaammdd(DT_INTER))) AS dt_internacao,
           count_if(data_invalida(DT_SAIDA, data_aaaammdd(DT_SAIDA))) AS DT_SAIDA,
           count_if(data_invalida(NASC, data_aaaammdd(NASC))) AS dt_nascimento
    FROM records
) ON COLUMNS(*) INTO NAME coluna VALUE invalidas;
