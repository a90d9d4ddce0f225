import pytest

from etl.config import load_config
from etl.errors import ConfigError
from etl.memory import MB, parse_size


def write(tmp_path, text):
    path = tmp_path / "etl.toml"
    path.write_text(text)
    return path


def test_sizes():
    assert parse_size("512MB") == 512 * MB
    assert parse_size("1.5GB") == 1536 * MB
    assert parse_size(" 2 gib ") == 2048 * MB
    with pytest.raises(ConfigError, match="invalid size 'lots'"):
        parse_size("lots")


def test_datasets_are_typed_and_paths_resolve_from_the_config(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            '[etl]\nmemory_limit = "512MB"\n[datasets.x]\nkind = "csv"\n'
            'paths = "a/*.csv"\ndelimiter = ";"\nheader = false\n',
        ),
        env={},
    )
    assert cfg.settings.memory_limit == 512 * MB
    assert cfg.settings.data_dir == tmp_path / "data"
    ds = cfg.datasets["x"]
    assert (ds.kind, ds.options.paths, ds.options.delimiter, ds.options.header) == (
        "csv",
        ["a/*.csv"],
        ";",
        False,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[etl]\nmemory_limt = "1GB"\n', "unknown key 'memory_limt'"),
        ('[etl]\nthreads = "two"\n', "threads must be int"),
        ("[etl]\nthreads = 0\n", "threads must be at least 1"),
        ('[datasets.x]\npaths = ["a"]\n', r"\[datasets.x\]: missing key 'kind'"),
        ('[datasets.x]\nkind = "xls"\n', "unknown kind 'xls'"),
        ('[datasets.x]\nkind = "csv"\nheader = "yes"\n', "header must be bool"),
        ('[datasets.x]\nkind = "csv"\nencoding = "klingon"\n', "unknown encoding 'klingon'"),
        ("[etl\n", "invalid TOML"),
    ],
)
def test_bad_config_says_what_is_wrong(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), env={})


def test_environment_and_cli_overrides(tmp_path):
    path = write(tmp_path, '[etl]\nmemory_limit = "1GB"\nthreads = 2\n')
    cfg = load_config(path, env={"ETL_MEMORY_LIMIT": "300MB", "ETL_THREADS": "1"})
    assert (cfg.settings.memory_limit, cfg.settings.threads) == (300 * MB, 1)
    cfg = load_config(path, env={"ETL_MEMORY_LIMIT": "300MB"}, overrides={"memory_limit": "400MB"})
    assert cfg.settings.memory_limit == 400 * MB
