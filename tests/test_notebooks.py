"""Every notebook in colab/ runs top to bottom on small data (TFPS_SMALL=1)."""

import glob
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb")))

EXPECT = {  # text each notebook must print: it ran, and ran what it says
    "01_quickstart.ipynb": ["after fine-tuning:", "verified fully-integer",
                            "keras.src.models"],   # it ran on Keras 3
    "02_training_time_and_slimming.ipynb": ["MACs", "after fine-tuning:"],
    "03_comparing_criteria.ipynb": ["criteria above random:",
                                    "| method |"],
}


def test_there_are_three_notebooks():
  assert [os.path.basename(p) for p in NOTEBOOKS] == sorted(EXPECT)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path, tmp_path, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  monkeypatch.setenv("TFPS_SMALL", "1")
  book = nbformat.read(path, as_version=4)
  first = book.cells[0] if book.cells[0].cell_type == "code" else book.cells[1]
  assert "pip install" in first.source   # installs as Colab users would
  client = nbclient.NotebookClient(
      book, timeout=600, kernel_name="python3",
      resources={"metadata": {"path": str(tmp_path)}})
  client.execute()   # raises CellExecutionError on any error
  text = "\n".join(
      o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
      for cell in book.cells if cell.cell_type == "code"
      for o in cell.get("outputs", []))
  for want in EXPECT[os.path.basename(path)]:
    assert want in text, (want, text[-2000:])
  errors = [o for cell in book.cells if cell.cell_type == "code"
            for o in cell.get("outputs", []) if o.get("output_type") == "error"]
  assert not errors
