"""The notebooks run top to bottom against the outputs of the default etl.toml, as a user opens them."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from etl.cli import main
from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The default pipeline, run once into a data directory of the tests' own."""
    data = tmp_path_factory.mktemp("data")
    old = os.environ.get("ETL_DATA_DIR")
    os.environ["ETL_DATA_DIR"] = str(data)
    try:
        assert main(["--quiet", "--config", str(REPO / "etl.toml"), "run"]) == 0
        yield data
    finally:
        if old is None:
            os.environ.pop("ETL_DATA_DIR")
        else:
            os.environ["ETL_DATA_DIR"] = old


def test_notebooks_are_stored_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(
            not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code"
        )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(outputs, path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}
    ).execute()
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, f"{path.name} shows no plot"
