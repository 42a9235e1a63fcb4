"""The notebooks of examples/ (issue 20 item 6) run: every code cell of every notebook, in
order, in a Jupyter kernel (nbclient), with no error. Their own check cells compare the
figures with the closed forms of each scenario (N+1 and (2N+1)/(N+1) candidates, G+1
anon_vmas, 9K list candidates, no waiting under an rwsem), so a notebook that drifts from
the model fails here. A study in a notebook shows its progress as a widget.

One kernel runs them all (a kernel start and the pandas/matplotlib imports cost more than
the notebooks themselves); ``%reset -f`` before each notebook empties the namespace, so a
notebook cannot lean on another's variables."""

from __future__ import annotations

import json
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import ROOT

EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """{notebook name: its code cells, executed}: all notebooks run in one kernel (this
    interpreter's, through a kernel spec of its own)."""
    spec = tmp_path_factory.mktemp("jupyter") / "kernels" / "rmapsim-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "rmapsim", "language": "python"}))
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(spec.parent.parent))
    mp.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    cells, owner = [], []
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        cells.append(nbformat.v4.new_code_cell("%reset -f"))
        owner.append(None)
        for c in book.cells:
            if c.cell_type == "code":
                cells.append(nbformat.v4.new_code_cell(c.source))
                owner.append(path.name)
    combined = nbformat.v4.new_notebook(cells=cells)
    try:
        NotebookClient(
            combined, timeout=300, kernel_name="rmapsim-test", resources={"metadata": {"path": str(EXAMPLES)}}
        ).execute()
    finally:
        mp.undo()
    out = {p.name: [] for p in NOTEBOOKS}
    for name, cell in zip(owner, combined.cells):
        if name is not None:
            out[name].append(cell)
    return out


def test_the_notebooks_are_there():
    names = {p.name for p in NOTEBOOKS}
    assert {
        "fork_storm_2010.ipynb",
        "fork_chain_2015.ipynb",
        "interval_tree.ipynb",
        "contention.ipynb",
        "record_replay.ipynb",
    } <= names


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_a_notebook_runs_and_draws(executed, name):
    cells = executed[name]
    assert cells, f"{name} has code cells"
    outputs = [o for c in cells for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} draws a figure"


def test_check_cells_ran(executed):
    """The check cells print their conclusion only when every assertion before held."""
    printed = {
        name: "".join(o.text for c in cells for o in c.outputs if o.output_type == "stream")
        for name, cells in executed.items()
    }
    assert "2.6.33 = N+1 and 2.6.34 = (2N+1)/(N+1) at every N" in printed["fork_storm_2010.ipynb"]
    assert "3.19, 6.18: at most 3" in printed["fork_chain_2015.ipynb"]
    assert "without fork_reuse: G + 1 anon_vmas" in printed["fork_chain_2015.ipynb"]
    assert "3.0: 9K candidates per walk; 3.7, 6.18: 9" in printed["interval_tree.ipynb"]
    assert "no waiting under the rwsem eras: 3.8" in printed["contention.ipynb"]
    assert "6.18: 4756 operations replayed, 0 returned errors" in printed["record_replay.ipynb"]


def test_a_study_in_a_notebook_shows_a_progress_widget(executed):
    """sweep()'s default bar is tqdm.auto's: in a kernel, an ipywidgets progress bar (a
    widget view whose text fallback is the tqdm line over the runs)."""
    sweep_cell = next(c for c in executed["fork_storm_2010.ipynb"] if "study.sweep(" in c.source)
    widgets = [o for o in sweep_cell.outputs if WIDGET in o.get("data", {})]
    assert widgets, [o.get("data", {}).keys() for o in sweep_cell.outputs]
    assert widgets[0]["data"][WIDGET]["model_id"]
    assert "fork_storm" in widgets[0]["data"]["text/plain"] and "run" in widgets[0]["data"]["text/plain"]
