-- Decoding shared by every DATASUS staging view (sql/datasus/<system>_<group>/): dates, ages, sex, race/colour,
-- municipality and CID-10 codes, and the code tables several systems share. Each system's view calls these
-- macros; none copies them. Arguments may be text or numbers (the DBF reader types N fields as integers), so
-- every macro first casts to text. Codes outside a table, and "ignored" codes, decode to NULL.

-- A code as text, trimmed; blank -> NULL.
CREATE OR REPLACE MACRO codigo(x) AS NULLIF(trim(CAST(x AS VARCHAR)), '');

-- Dates. SIM/SINASC write DDMMYYYY text, SIH/SINAN/SIA YYYYMMDD; DBF D fields are already DATEs. A date that does
-- not exist (31022023, 00000000, 15/05/20) is NULL, and counted in each dataset's view `datas_invalidas`.
-- Years before 1850 or after 2099 are typing errors, not dates. A DDMMYYYY number (N field) lost its leading zero.
CREATE OR REPLACE MACRO data_plausivel(d) AS CASE WHEN year(d) BETWEEN 1850 AND 2099 THEN d END;
-- ISO text (YYYY-MM-DD) is read too: a DATE field unioned with a text one across layouts arrives so.
CREATE OR REPLACE MACRO data_texto(x, formato) AS data_plausivel(
    CASE WHEN typeof(x) = 'DATE' THEN TRY_CAST(x AS DATE)
    ELSE coalesce(CAST(try_strptime(codigo(x), formato) AS DATE), TRY_CAST(codigo(x) AS DATE)) END);
CREATE OR REPLACE MACRO data_ddmmaaaa(x) AS
    CASE WHEN typeof(x) = 'DATE' THEN data_texto(x, '%d%m%Y') ELSE data_texto(lpad(codigo(x), 8, '0'), '%d%m%Y') END;
CREATE OR REPLACE MACRO data_aaaammdd(x) AS data_texto(x, '%Y%m%d');
-- The first day of a competence month, from YYYYMM text (SIA PA_CMP, CNES COMPETEN) or a year and a month.
CREATE OR REPLACE MACRO competencia_aaaamm(x) AS CAST(try_strptime(codigo(x) || '01', '%Y%m%d') AS DATE);
CREATE OR REPLACE MACRO competencia_ano_mes(ano, mes) AS
    CAST(try_strptime(lpad(codigo(ano), 4, '0') || lpad(codigo(mes), 2, '0') || '01', '%Y%m%d') AS DATE);
-- A source value that holds something but did not decode to a date: what `datas_invalidas` counts.
CREATE OR REPLACE MACRO data_invalida(x, decodificada) AS codigo(x) IS NOT NULL AND decodificada IS NULL;

-- Ages. DATASUS codes an age as a unit and a value: 0 minutes, 1 hours, 2 days, 3 months, 4 years,
-- 5 years over 100 (value + 100); 9 and anything else is unknown. SIM IDADE is the unit then two digits
-- ('435' = 35 years), SINAN NU_IDADE_N the unit then three digits ('4035'), SIH IDADE with unit COD_IDADE.
-- idade_anos: whole years, 0 under one year. idade_dias: the age in days when under one year (minutes and
-- hours -> 0, a month counts 30 days: '310' = 300 days), NULL from one year on.
CREATE OR REPLACE MACRO idade_valor(valor) AS TRY_CAST(codigo(valor) AS INTEGER);
CREATE OR REPLACE MACRO idade_anos(unidade, valor) AS
    CASE codigo(unidade)
        WHEN '0' THEN 0 WHEN '1' THEN 0
        WHEN '2' THEN idade_valor(valor) // 365
        WHEN '3' THEN idade_valor(valor) // 12
        WHEN '4' THEN idade_valor(valor)
        WHEN '5' THEN 100 + idade_valor(valor)
    END;
CREATE OR REPLACE MACRO idade_dias(unidade, valor) AS
    CASE codigo(unidade)
        WHEN '0' THEN 0
        WHEN '1' THEN idade_valor(valor) // 24
        WHEN '2' THEN CASE WHEN idade_valor(valor) < 365 THEN idade_valor(valor) END
        WHEN '3' THEN CASE WHEN idade_valor(valor) < 12 THEN idade_valor(valor) * 30 END
    END;
-- The unit and value of a fixed-width age code (SIM: width 3, SINAN: width 4); N fields lose leading zeros.
CREATE OR REPLACE MACRO idade_unidade_de(x, largura) AS left(lpad(codigo(x), largura, '0'), 1);
CREATE OR REPLACE MACRO idade_valor_de(x, largura) AS substr(lpad(codigo(x), largura, '0'), 2);
-- An age given in years (SINASC IDADEMAE, SIA PA_IDADE): 0, 99 (SINASC) and 999 (SIA) mean unknown.
CREATE OR REPLACE MACRO idade_em_anos(x, ignorado) AS
    CASE WHEN TRY_CAST(codigo(x) AS INTEGER) BETWEEN 1 AND 130 AND TRY_CAST(codigo(x) AS INTEGER) <> ignorado
    THEN TRY_CAST(codigo(x) AS INTEGER) END;

-- Sex: 1/M male, 2/F female (SIH's old 3 also female); 0, 9, I and blank are NULL.
CREATE OR REPLACE MACRO sexo(x) AS
    CASE upper(codigo(x)) WHEN '1' THEN 'Masculino' WHEN 'M' THEN 'Masculino'
        WHEN '2' THEN 'Feminino' WHEN '3' THEN 'Feminino' WHEN 'F' THEN 'Feminino' END;

-- Race/colour. SIM, SINASC and SINAN: 1 Branca, 2 Preta, 3 Amarela, 4 Parda, 5 Indígena, 9 ignored.
CREATE OR REPLACE MACRO raca_cor(x) AS
    CASE codigo(x) WHEN '1' THEN 'Branca' WHEN '2' THEN 'Preta' WHEN '3' THEN 'Amarela' WHEN '4' THEN 'Parda'
        WHEN '5' THEN 'Indígena' END;
-- SIH RACA_COR and SIA PA_RACACOR, two digits: 01 Branca, 02 Preta, 03 Parda, 04 Amarela, 05 Indígena, 99 none.
CREATE OR REPLACE MACRO raca_cor_sih(x) AS
    CASE lpad(codigo(x), 2, '0') WHEN '01' THEN 'Branca' WHEN '02' THEN 'Preta' WHEN '03' THEN 'Parda'
        WHEN '04' THEN 'Amarela' WHEN '05' THEN 'Indígena' END;

-- Municipalities: files hold IBGE's code as 6 digits (most) or 7 (the 7th a check digit); join ref.municipios
-- on the 6-digit form.
CREATE OR REPLACE MACRO municipio_cod6(x) AS left(codigo(x), 6);

-- CID-10: upper case, no dot, no padding ('J18.9 ' -> 'J189'); ref.cid10 holds subcategories and categories.
CREATE OR REPLACE MACRO cid(x) AS NULLIF(replace(replace(upper(codigo(x)), '.', ''), ' ', ''), '');
CREATE OR REPLACE MACRO cid3(x) AS left(cid(x), 3);

-- Occupations (CBO 2002): six characters, leading zeros kept.
CREATE OR REPLACE MACRO cbo(x) AS codigo(x);

-- Code tables several systems share.
CREATE OR REPLACE MACRO sim_nao(x) AS CASE codigo(x) WHEN '1' THEN 'Sim' WHEN '2' THEN 'Não' END;
-- SIM ESC/ESCMAE and SINASC ESCMAE: years of schooling.
CREATE OR REPLACE MACRO escolaridade_anos(x) AS
    CASE codigo(x) WHEN '1' THEN 'Nenhuma' WHEN '2' THEN '1 a 3 anos' WHEN '3' THEN '4 a 7 anos'
        WHEN '4' THEN '8 a 11 anos' WHEN '5' THEN '12 anos ou mais' WHEN '8' THEN '9 a 11 anos' END;
-- SIM ESTCIV and SINASC ESTCIVMAE.
CREATE OR REPLACE MACRO estado_civil(x) AS
    CASE codigo(x) WHEN '1' THEN 'Solteiro' WHEN '2' THEN 'Casado' WHEN '3' THEN 'Viúvo'
        WHEN '4' THEN 'Separado judicialmente' WHEN '5' THEN 'União consensual' END;
-- SIH CAR_INT and SIA PA_CATEND (two digits in the files, one in older ones).
CREATE OR REPLACE MACRO carater_atendimento(x) AS
    CASE lpad(codigo(x), 2, '0') WHEN '01' THEN 'Eletivo' WHEN '02' THEN 'Urgência'
        WHEN '03' THEN 'Acidente no local de trabalho ou a serviço da empresa'
        WHEN '04' THEN 'Acidente no trajeto para o trabalho' WHEN '05' THEN 'Outros tipos de acidente de trânsito'
        WHEN '06' THEN 'Outros tipos de lesões e envenenamentos por agentes químicos ou físicos' END;
-- SIH COMPLEX and SIA PA_NIVCPL.
CREATE OR REPLACE MACRO complexidade(x) AS
    CASE lpad(codigo(x), 2, '0') WHEN '01' THEN 'Atenção básica' WHEN '02' THEN 'Média complexidade'
        WHEN '03' THEN 'Alta complexidade' END;
-- SIH COBRANCA and SIA PA_MOTSAI: reason for discharge or stay (Portaria SAS 719/2007).
CREATE OR REPLACE MACRO motivo_saida(x) AS
    CASE codigo(x)
        WHEN '11' THEN 'Alta curado' WHEN '12' THEN 'Alta melhorado' WHEN '14' THEN 'Alta a pedido'
        WHEN '15' THEN 'Alta com previsão de retorno para acompanhamento do paciente'
        WHEN '16' THEN 'Alta por evasão' WHEN '18' THEN 'Alta por outros motivos'
        WHEN '19' THEN 'Alta de paciente agudo em psiquiatria'
        WHEN '21' THEN 'Permanência por características próprias da doença'
        WHEN '22' THEN 'Permanência por intercorrência'
        WHEN '23' THEN 'Permanência por impossibilidade sócio-familiar'
        WHEN '24' THEN 'Permanência por processo de doação de órgãos, tecidos, células - doador vivo'
        WHEN '25' THEN 'Permanência por processo de doação de órgãos, tecidos, células - doador morto'
        WHEN '26' THEN 'Permanência por mudança de procedimento' WHEN '27' THEN 'Permanência por reoperação'
        WHEN '28' THEN 'Permanência por outros motivos'
        WHEN '29' THEN 'Transferência para internação domiciliar'
        WHEN '31' THEN 'Transferência para outro estabelecimento'
        WHEN '32' THEN 'Transferência para internação domiciliar'
        WHEN '41' THEN 'Óbito com DO fornecida pelo médico assistente' WHEN '42' THEN 'Óbito com DO fornecida pelo IML'
        WHEN '43' THEN 'Óbito com DO fornecida pelo SVO' WHEN '51' THEN 'Encerramento administrativo'
        WHEN '61' THEN 'Alta da mãe/puérpera e do recém-nascido' WHEN '17' THEN 'Alta da mãe/puérpera e do recém-nascido'
        WHEN '62' THEN 'Alta da mãe/puérpera e permanência do recém-nascido'
        WHEN '13' THEN 'Alta da mãe/puérpera e permanência do recém-nascido'
        WHEN '63' THEN 'Alta da mãe/puérpera e óbito do recém-nascido'
        WHEN '64' THEN 'Alta da mãe/puérpera com óbito fetal' WHEN '65' THEN 'Óbito da gestante e do concepto'
        WHEN '66' THEN 'Óbito da mãe/puérpera e alta do recém-nascido'
        WHEN '67' THEN 'Óbito da mãe/puérpera e permanência do recém-nascido'
    END;
-- CNES TP_UNID and SIA PA_TPUPS: type of establishment (CNES's table).
CREATE OR REPLACE MACRO tipo_unidade(x) AS
    CASE lpad(codigo(x), 2, '0')
        WHEN '01' THEN 'Posto de saúde' WHEN '02' THEN 'Centro de saúde/Unidade básica'
        WHEN '04' THEN 'Policlínica' WHEN '05' THEN 'Hospital geral' WHEN '07' THEN 'Hospital especializado'
        WHEN '15' THEN 'Unidade mista' WHEN '20' THEN 'Pronto socorro geral'
        WHEN '21' THEN 'Pronto socorro especializado' WHEN '22' THEN 'Consultório isolado'
        WHEN '32' THEN 'Unidade móvel fluvial' WHEN '36' THEN 'Clínica/Centro de especialidade'
        WHEN '39' THEN 'Unidade de apoio diagnose e terapia (SADT isolado)'
        WHEN '40' THEN 'Unidade móvel terrestre'
        WHEN '42' THEN 'Unidade móvel de nível pré-hospitalar na área de urgência' WHEN '43' THEN 'Farmácia'
        WHEN '50' THEN 'Unidade de vigilância em saúde'
        WHEN '60' THEN 'Cooperativa ou empresa de cessão de trabalhadores na saúde'
        WHEN '61' THEN 'Centro de parto normal - isolado' WHEN '62' THEN 'Hospital/Dia - isolado'
        WHEN '64' THEN 'Central de regulação de serviços de saúde'
        WHEN '67' THEN 'Laboratório central de saúde pública (LACEN)' WHEN '68' THEN 'Central de gestão em saúde'
        WHEN '69' THEN 'Centro de atenção hemoterápica e/ou hematológica'
        WHEN '70' THEN 'Centro de atenção psicossocial' WHEN '71' THEN 'Centro de apoio à saúde da família'
        WHEN '72' THEN 'Unidade de atenção à saúde indígena' WHEN '73' THEN 'Pronto atendimento'
        WHEN '74' THEN 'Polo academia da saúde' WHEN '75' THEN 'Telessaúde'
        WHEN '76' THEN 'Central de regulação médica das urgências'
        WHEN '77' THEN 'Serviço de atenção domiciliar isolado (home care)'
        WHEN '78' THEN 'Unidade de atenção em regime residencial' WHEN '79' THEN 'Oficina ortopédica'
        WHEN '80' THEN 'Laboratório de saúde pública' WHEN '81' THEN 'Central de regulação do acesso'
        WHEN '82' THEN 'Central de notificação, captação e distribuição de órgãos estadual'
        WHEN '83' THEN 'Polo de prevenção de doenças e agravos e promoção da saúde'
        WHEN '84' THEN 'Central de abastecimento' WHEN '85' THEN 'Centro de imunização'
    END;
-- SIM and SINASC: pregnancy and birth.
CREATE OR REPLACE MACRO semanas_gestacao(x) AS
    CASE codigo(x) WHEN '1' THEN 'Menos de 22 semanas' WHEN '2' THEN '22 a 27 semanas'
        WHEN '3' THEN '28 a 31 semanas' WHEN '4' THEN '32 a 36 semanas' WHEN '5' THEN '37 a 41 semanas'
        WHEN '6' THEN '42 semanas ou mais' END;
CREATE OR REPLACE MACRO tipo_gravidez(x) AS
    CASE codigo(x) WHEN '1' THEN 'Única' WHEN '2' THEN 'Dupla' WHEN '3' THEN 'Tripla ou mais' END;
CREATE OR REPLACE MACRO tipo_parto(x) AS CASE codigo(x) WHEN '1' THEN 'Vaginal' WHEN '2' THEN 'Cesáreo' END;
