"""The published-results resource and the `compare` command."""

import json

import pytest

from tfprune_survey import cli
from tfprune_survey import published
from tests.conftest import callers_pyplot
from tests.conftest import png_size

FIXTURE = """\
method,model,dataset,base_top1,pruned_top1,delta_top1,flops_reduction_pct,params_reduction_pct,metric,source,basis,notes
Alpha,ResNet56,CIFAR10,93.0,92.5,-0.5,40.0,,top1,paper A,survey_text,
Beta,ResNet56,CIFAR10,,,0.1,60.0,30.0,top1,paper B,survey_text,
Beta,VGG16,CIFAR10,,,-1.0,20.0,,top5,paper B,survey_text,top-5
Gamma,ResNet-56,CIFAR10,,,,,70.0,top1,paper C,paper_unverified,params only
Delta,VGG16,ImageNet,,,-2.0,50.0,,top1,paper D,survey_text,
"""


@pytest.fixture(autouse=True)
def fresh_flags():
  cli.FLAGS.unparse_flags()
  yield
  cli.FLAGS.unparse_flags()


@pytest.fixture
def csv_path(tmp_path):
  path = tmp_path / "published.csv"
  path.write_text(FIXTURE)
  return str(path)


def run_cli(argv, capsys):
  cli.FLAGS.unparse_flags()
  with pytest.raises(SystemExit) as info:
    cli.app.run(cli.main, argv=cli._normalize(["tfprune-survey"] + argv))
  return info.value.code, capsys.readouterr()


def test_load_parses_numbers_and_blanks(csv_path):
  rows = published.load(csv_path)
  assert len(rows) == 5
  assert rows[0]["delta_top1"] == -0.5 and rows[0]["base_top1"] == 93.0
  assert rows[0]["params_reduction_pct"] is None
  assert rows[3]["delta_top1"] is None and rows[3]["notes"] == "params only"
  assert published.reduction(rows[3]) == 70.0   # params when FLOPs unknown
  assert published.reduction(rows[1]) == 60.0   # FLOPs first


def test_load_errors_name_the_line_and_column(tmp_path):
  bad = tmp_path / "bad.csv"
  bad.write_text(FIXTURE.replace("-0.5,40.0", "-0.5,lots"))
  with pytest.raises(ValueError, match="line 2: column 'flops_reduction_pct'"):
    published.load(str(bad))
  short = tmp_path / "short.csv"
  short.write_text("method,model\nA,B\n")
  with pytest.raises(ValueError, match="missing columns"):
    published.load(str(short))
  with pytest.raises(FileNotFoundError, match="nope.csv"):
    published.load(str(tmp_path / "nope.csv"))


def test_load_refuses_a_delta_that_contradicts_both_top1(tmp_path):
  # 92.5 - 93.0 is -0.5: a delta of +0.5 (a sign slip) was taken as it was.
  bad = tmp_path / "bad.csv"
  bad.write_text(FIXTURE.replace("93.0,92.5,-0.5", "93.0,92.5,0.5"))
  with pytest.raises(ValueError) as info:
    published.load(str(bad))
  assert str(info.value) == (
      "line 2: column 'delta_top1' is '0.5', but pruned_top1 - base_top1 is "
      "-0.5 (92.5 - 93.0), beyond the rounding of the cells; correct one of "
      "them, or leave delta_top1 empty to have it computed")
  # Within the rounding of the cells given: 76.1 - 75.3 may be -0.85.
  ok = tmp_path / "ok.csv"
  ok.write_text(FIXTURE.replace("93.0,92.5,-0.5", "76.1,75.3,-0.85"))
  assert published.load(str(ok))[0]["delta_top1"] == -0.85
  # Two decimals each: at most 0.015 apart.
  for delta, good in (("-0.51", True), ("-0.52", False)):
    path = tmp_path / "two.csv"
    path.write_text(FIXTURE.replace("93.0,92.5,-0.5", "93.00,92.50," + delta))
    if good:
      assert published.load(str(path))[0]["delta_top1"] == float(delta)
    else:
      with pytest.raises(ValueError, match="line 2: column 'delta_top1'"):
        published.load(str(path))
  # The bundled file is consistent.
  assert published.load()


def test_select_ignores_case_and_punctuation(csv_path):
  rows = published.load(csv_path)
  got = published.select(rows, model="resnet_56")
  assert sorted(r["method"] for r in got) == ["Alpha", "Beta", "Gamma"]
  assert [r["method"] for r in published.select(rows, dataset="imagenet")] \
      == ["Delta"]
  assert [r["method"] for r in published.select(
      rows, model="VGG16", dataset="cifar-10")] == ["Beta"]


def test_pivot_sorts_methods_and_cells_by_reduction(csv_path):
  rows = published.select(published.load(csv_path), dataset="CIFAR10")
  text = published.pivot(rows)
  lines = text.splitlines()
  # Columns: one per model/dataset pair, 'ResNet-56' counted as ResNet56.
  assert lines[0].count("/ CIFAR10") == 2
  methods = [line.split("|")[1].strip() for line in lines[2:]]
  # Largest reduction first: Gamma 70 (params), Beta 60, Alpha 40.
  assert methods == ["Gamma", "Beta", "Alpha"]
  beta = lines[2 + methods.index("Beta")]
  assert "+0.10 F60% P30%" in beta and "-1.00 F20% (top5)" in beta
  assert "? P70%" in lines[2]
  assert published.pivot([]) == "(no published results match)"


def test_pivot_escapes_pipes_and_line_breaks_in_names(tmp_path):
  # A '|' in a name split its cell: 'A|B' made a row of three cells under
  # a header of two. A quoted line break in a name broke the row in two.
  path = tmp_path / "pipe.csv"
  path.write_text(FIXTURE.splitlines()[0] + "\n"
                  'A|B,R|S,C,,,1,2,,top1,s,survey_text,\n'
                  '"Multi\nline",R|S,C,,,-1,1,,top1,s,survey_text,\n')
  lines = published.pivot(published.load(str(path))).splitlines()
  assert lines == ["| method | R\\|S / C |", "|---|---|",
                   "| A\\|B | +1.00 F2% |", "| Multi line | -1.00 F1% |"]
  # Every row has as many cells as the header (a '\\|' is not a border).
  for line in lines:
    assert len(line.replace("\\|", "").split("|")) == 4, line


def test_compare_cli_filters_and_sorts(csv_path, capsys):
  code, out = run_cli(["compare", "--published", csv_path, "--model",
                       "ResNet56"], capsys)
  assert code == 0
  table = [l for l in out.out.splitlines() if l.startswith("| ")]
  assert [l.split("|")[1].strip() for l in table[1:]] == ["Gamma", "Beta",
                                                          "Alpha"]
  assert "3 published results" in out.out
  code, out = run_cli(["compare", "--published", csv_path, "--dataset",
                       "ImageNet"], capsys)
  assert code == 0 and "Delta" in out.out and "Alpha" not in out.out


def test_compare_cli_unknown_model_lists_known_ones(csv_path, capsys):
  code, out = run_cli(["compare", "--published", csv_path, "--model",
                       "AlexNet"], capsys)
  assert code == 2
  assert "no published results for --model AlexNet" in out.err
  assert "ResNet56" in out.err and "VGG16" in out.err


def test_compare_cli_says_what_each_filter_has(csv_path, tmp_path, capsys):
  # Both known, never together: which data sets the model has, and which
  # models the data set has (it listed every model, ResNet56 among them).
  code, out = run_cli(["compare", "--published", csv_path, "--model",
                       "ResNet56", "--dataset", "ImageNet"], capsys)
  assert code == 2
  assert ("no published results for --model ResNet56 on --dataset ImageNet; "
          "ResNet56 has results on CIFAR10; ImageNet has results for VGG16"
          in out.err), out.err
  # An unknown data set names itself (not '--model None') and the data sets.
  code, out = run_cli(["compare", "--published", csv_path, "--dataset",
                       "MNIST"], capsys)
  assert code == 2 and "--model None" not in out.err
  assert ("no published results on --dataset MNIST; known data sets: "
          "CIFAR10, ImageNet" in out.err), out.err
  code, out = run_cli(["compare", "--published", csv_path, "--model",
                       "resnet-56", "--dataset", "MNIST"], capsys)
  assert "known data sets for resnet-56: CIFAR10\n" in out.err, out.err
  # An unknown model on a known data set: the models on that data set.
  code, out = run_cli(["compare", "--published", csv_path, "--model",
                       "AlexNet", "--dataset", "imagenet"], capsys)
  assert "known models on imagenet: VGG16\n" in out.err, out.err
  code, out = run_cli(["compare", "--published", csv_path, "--model",
                       "AlexNet", "--dataset", "MNIST"], capsys)
  assert ("nor on --dataset MNIST; known models: ResNet-56, ResNet56, VGG16"
          not in out.err)   # one spelling per model
  assert ("known models: ResNet56, VGG16; known data sets: CIFAR10, "
          "ImageNet" in out.err), out.err
  # A file of no rows says so, with its path.
  empty = tmp_path / "empty.csv"
  empty.write_text(FIXTURE.splitlines()[0] + "\n")
  code, out = run_cli(["compare", "--published", str(empty)], capsys)
  assert code == 2 and f"{empty} has no rows of results" in out.err, out.err


def write_ours(path, model="ResNet56", dataset="fashion_mnist"):
  runs = [{"model": model, "dataset": dataset, "criterion": "l1",
           "schedule": s, "seed": None, "target_macs_pct": 50.0,
           "base_top1": 0.9, "top1": 0.89, "delta_top1": d,
           "macs_reduction_pct": 50.5, "params_reduction_pct": 47.0}
          for s, d in (("oneshot", -1.0), ("iterative", -0.5))]
  path.write_text(json.dumps({"settings": {}, "bases": [], "runs": runs}))
  return str(path)


def test_compare_cli_places_ours_beside_published(csv_path, tmp_path, capsys):
  ours = write_ours(tmp_path / "ours.json")
  png = str(tmp_path / "cmp.png")
  code, out = run_cli(["compare", "--published", csv_path, "--model",
                       "resnet56", "--ours", ours, "--plot", png], capsys)
  assert code == 0
  assert "ours: l1 (iterative)" in out.out and "-0.50 F50.5% P47%" in out.out
  # Same model, different data: said clearly.
  assert "ours ran on fashion_mnist" in out.out
  assert "published results are on CIFAR10" in out.out
  assert (tmp_path / "cmp.png").stat().st_size > 10000


def test_compare_cli_warns_of_ours_that_show_nothing(csv_path, tmp_path,
                                                    capsys):
  # No runs at all: said so (it read 'none of the runs is of model None').
  empty = tmp_path / "empty.json"
  empty.write_text(json.dumps({"settings": {}, "bases": [], "runs": []}))
  code, out = run_cli(["compare", "--published", csv_path, "--ours",
                       str(empty)], capsys)
  assert code == 0 and f"WARNING: {empty} has no runs" in out.out, out.out
  assert "model None" not in out.out
  # Runs of another model than --model: which models they are of.
  lenet = write_ours(tmp_path / "lenet.json", model="LeNet")
  code, out = run_cli(["compare", "--published", csv_path, "--ours", lenet,
                       "--model", "ResNet56"], capsys)
  assert code == 0 and (f"none of the runs in {lenet} is of model ResNet56; "
                        "they are of LeNet" in out.out), out.out


def test_compare_cli_refuses_a_plot_path_it_cannot_write_as_named(
    csv_path, tmp_path, capsys):
  # A folder: it wrote a hidden '<folder>/.png' and said 'wrote <folder>/'.
  folder = str(tmp_path) + "/"
  code, out = run_cli(["compare", "--published", csv_path, "--plot", folder],
                      capsys)
  assert code == 2 and "is a folder; name the image file" in out.err, out.err
  # No extension: it wrote '<path>.png' and said 'wrote <path>'.
  code, out = run_cli(["compare", "--published", csv_path, "--plot",
                       str(tmp_path / "cmp")], capsys)
  assert code == 2 and "has no extension" in out.err and ".png" in out.err
  # An extension matplotlib has no writer for: a traceback after the table.
  code, out = run_cli(["compare", "--published", csv_path, "--plot",
                       str(tmp_path / "cmp.foo")], capsys)
  assert code == 2 and "no writer for '.foo' images" in out.err, out.err
  assert "| method |" not in out.out     # refused before anything is shown
  assert sorted(p.name for p in tmp_path.iterdir()) == ["published.csv"]
  with pytest.raises(ValueError, match="no extension"):
    published.plot(published.load(csv_path), [], str(tmp_path / "cmp"))
  # An extension in capitals is a format like any other.
  code, out = run_cli(["compare", "--published", csv_path, "--plot",
                       str(tmp_path / "cmp.SVG")], capsys)
  assert code == 0 and (tmp_path / "cmp.SVG").read_text().count("<svg") == 1


def test_compare_warns_when_no_model_is_shared(csv_path, tmp_path):
  rows = published.load(csv_path)
  ours = published.load_ours(write_ours(tmp_path / "o.json", model="LeNet"))
  panels, warnings = published.pairs(rows, ours)
  assert len(panels) == 1 and "different models" in panels[0][0]
  assert "no published result shares a model with ours" in warnings[0]
  same = published.load_ours(write_ours(tmp_path / "s.json",
                                        dataset="CIFAR-10"))
  panels, warnings = published.pairs(published.select(rows, "ResNet56"),
                                     same)
  assert len(panels) == 1 and not warnings


def test_compare_cli_errors(csv_path, tmp_path, capsys):
  code, out = run_cli(["compare", "--published", csv_path, "--ours",
                       str(tmp_path / "missing.json")], capsys)
  assert code == 2 and "missing.json" in out.err
  code, out = run_cli(["compare", "--published", csv_path, "--plot",
                       str(tmp_path / "no" / "dir.png")], capsys)
  assert code == 2 and "does not exist" in out.err


def test_the_shipped_csv_is_complete_and_consistent():
  rows = published.load()   # benchmarks/published_results.csv
  assert len(rows) >= 60
  for r in rows:
    assert r["method"] and r["model"] and r["dataset"] and r["source"], r
    assert r["basis"] in ("survey_text", "paper_unverified", "official_repo")
    assert r["metric"] in ("top1", "top5"), r
    if r["base_top1"] is not None and r["pruned_top1"] is not None:
      assert abs(r["delta_top1"] - (r["pruned_top1"] - r["base_top1"])) \
          < 0.011, r
    for c in ("flops_reduction_pct", "params_reduction_pct"):
      assert r[c] is None or 0 <= r[c] < 100, r
  # Method x model x dataset x figures: no row is entered twice.
  keys = [(r["method"], r["model"], r["dataset"], r["delta_top1"],
           r["flops_reduction_pct"], r["params_reduction_pct"], r["source"])
          for r in rows]
  assert len(keys) == len(set(keys))


def test_the_shipped_csv_keeps_each_figure_on_its_papers_data():
  rows = published.load()
  he_vgg = [r for r in rows if r["source"] == "He et al. 2017" and
            r["model"] == "VGG16"]
  # He et al. 2017 measured VGG-16 on ImageNet (top-5); the survey's text
  # says CIFAR10, which each row's note records.
  assert len(he_vgg) == 6
  for r in he_vgg:
    assert r["dataset"] == "ImageNet" and r["metric"] == "top5", r
    assert "survey text says CIFAR10" in r["notes"], r
  he_r56 = [r for r in rows if r["source"] == "He et al. 2017" and
            r["model"] == "ResNet56"]
  assert [(r["base_top1"], r["pruned_top1"], r["flops_reduction_pct"])
          for r in he_r56] == [(92.8, 91.8, 50.0)]
  # Li et al. on ResNet-56: the survey's 3.7% beside the paper's Table 1.
  li = {r["notes"].split(";")[0]: r for r in rows
        if r["method"] == "PF EC (L1 filters)" and r["model"] == "ResNet56"}
  assert li["ResNet-56 pruned-A"]["flops_reduction_pct"] == 10.4
  assert li["ResNet-56 pruned-B"]["flops_reduction_pct"] == 27.6
  assert li["ResNet-56 pruned-B"]["params_reduction_pct"] == 13.7
  survey = [r for r in li.values() if r["basis"] == "survey_text"]
  assert len(survey) == 1 and survey[0]["params_reduction_pct"] == 3.7
  assert "13.7%" in survey[0]["notes"]
  methods = {(r["method"], r["model"], r["dataset"]) for r in rows}
  for key in [("FilterSketch", "ResNet110", "CIFAR10"),
              ("FilterSketch", "ResNet50", "ImageNet"),
              ("APoZ", "VGG16", "ImageNet"),
              ("Redundant feature pruning (cosine)", "ResNet34", "ImageNet")]:
    assert key in methods, key
  apoz = [r for r in rows if r["method"] == "APoZ" and
          r["source"] == "Hu et al. 2016" and r["basis"] == "paper_unverified"]
  assert abs(apoz[0]["params_reduction_pct"] - 100 * (1 - 1 / 2.59)) < 0.05
  # A figure we could not find is left empty and the note says so.
  for r in rows:
    figures = [r[c] for c in published.NUMERIC]
    if all(f is None for f in figures):
      assert "not found" in r["notes"], r


def test_load_errors_name_the_files_line_and_refuse_extra_cells(tmp_path):
  # A blank line and a quoted note over two lines are lines of the file too.
  text = FIXTURE.replace("paper A,survey_text,\n",
                         'paper A,survey_text,"two\nlines"\n\n')
  text = text.replace("-1.0,20.0", "-1.0,lots")
  bad = tmp_path / "bad.csv"
  bad.write_text(text)
  lines = text.splitlines()
  assert "lots" in lines[5]    # the sixth line of the file
  with pytest.raises(ValueError, match="line 6: column 'flops_reduction_pct'"):
    published.load(str(bad))
  # An unquoted comma shifts the cells: refused, not silently cut off.
  shifted = tmp_path / "shifted.csv"
  shifted.write_text(FIXTURE.replace("top-5", "top-5, from the paper"))
  with pytest.raises(ValueError, match=r"line 4 has 13 cells, the header 12"
                     r".*' from the paper'"):
    published.load(str(shifted))
  # Trailing empty cells are harmless.
  trailing = tmp_path / "trailing.csv"
  trailing.write_text(FIXTURE.replace("paper D,survey_text,\n",
                                      "paper D,survey_text,,,\n"))
  assert len(published.load(str(trailing))) == 5


@pytest.mark.parametrize("figure", ["nan", "inf", "-Infinity"])
def test_load_refuses_figures_that_are_not_finite(figure, tmp_path):
  # float() reads these; as a figure they would sort and plot as garbage.
  bad = tmp_path / "bad.csv"
  bad.write_text(FIXTURE.replace("-0.5,40.0", f"-0.5,{figure}"))
  with pytest.raises(ValueError, match=f"line 2: column 'flops_reduction_pct'"
                     f" must be a number or empty, got '{figure}'"):
    published.load(str(bad))


def test_load_refuses_nameless_results_and_skips_empty_rows(tmp_path):
  header = FIXTURE.splitlines()[0] + "\n"
  # A result without a model or data set made a column ' / C' (or 'R / '),
  # one without a method a nameless row; now refused, naming line and column.
  path = tmp_path / "nameless.csv"
  path.write_text(header + "A,R,C,,,1,2,,top1,s,survey_text,\n"
                  "B,,C,,,1,2,,top1,s,survey_text,\n")
  with pytest.raises(ValueError, match="nameless.csv: line 3: column 'model' "
                     "is empty; each result names its method, model and"):
    published.load(str(path))
  path.write_text(header + ",R,,,,1,2,,top1,s,survey_text,\n")
  with pytest.raises(ValueError, match="line 2: columns 'method', 'dataset' "
                     "are empty"):
    published.load(str(path))
  # A spreadsheet's trailing rows of empty cells: skipped (they were
  # "column 'metric' must be one of ('top1', 'top5'), got ''").
  path.write_text(header + "A,R,C,,,1,2,,top1,s,survey_text,\n"
                  ",,,,,,,,,,,\n , ,,,,,,,,,,\n")
  rows = published.load(str(path))
  assert [(r["method"], r["delta_top1"]) for r in rows] == [("A", 1.0)]


@pytest.mark.parametrize("column,figure", [
    ("flops_reduction_pct", "150"), ("flops_reduction_pct", "100"),
    ("params_reduction_pct", "-20")])
def test_load_refuses_reductions_that_are_not_percentages(column, figure,
                                                          tmp_path):
  # 150% or -20% was shown as 'F150%' / 'P-20%' and plotted at it.
  cells = {"flops_reduction_pct": "", "params_reduction_pct": "",
           column: figure}
  path = tmp_path / "range.csv"
  path.write_text(FIXTURE + "E,R,C,,,1,{flops_reduction_pct},"
                  "{params_reduction_pct},top1,s,survey_text,\n".format(**cells))
  with pytest.raises(ValueError, match=f"line 7: column '{column}' must be a "
                     rf"percentage in \[0, 100\) .*got '{figure}'"):
    published.load(str(path))
  path.write_text(FIXTURE + "E,R,C,,,1,0,99.9,top1,s,survey_text,\n")
  assert published.load(str(path))[-1]["params_reduction_pct"] == 99.9


def test_load_reads_a_spreadsheets_csv(tmp_path):
  # Saved as 'CSV UTF-8' by a spreadsheet: a byte-order mark before
  # 'method', and spaces after the header's commas.
  path = tmp_path / "excel.csv"
  header, body = FIXTURE.split("\n", 1)
  path.write_bytes(("\ufeff" + header.replace(",", ", ") + "\n" + body)
                   .encode("utf-8"))
  rows = published.load(str(path))
  assert [r["method"] for r in rows] == ["Alpha", "Beta", "Beta", "Gamma",
                                         "Delta"]
  assert rows[0]["flops_reduction_pct"] == 40.0
  # Not UTF-8, or a folder: a ValueError naming the file.
  latin = tmp_path / "latin.csv"
  latin.write_bytes(FIXTURE.replace("paper A", "Müller").encode("latin-1"))
  with pytest.raises(ValueError, match="latin.csv: not UTF-8 text"):
    published.load(str(latin))
  with pytest.raises(ValueError, match="is a folder"):
    published.load(str(tmp_path))


def test_the_environment_variable_is_not_passed_over(csv_path, tmp_path,
                                                     monkeypatch, capsys):
  monkeypatch.setenv(published.ENV_VAR, csv_path)
  assert published.default_path() == csv_path
  assert len(published.load()) == 5
  # A misspelt path is an error, not a quiet switch to the shipped CSV.
  typo = str(tmp_path / "pubished.csv")
  monkeypatch.setenv(published.ENV_VAR, typo)
  with pytest.raises(FileNotFoundError,
                     match=f"\\$TFPS_PUBLISHED_RESULTS is '{typo}'"):
    published.load()
  code, out = run_cli(["compare"], capsys)
  assert code == 2 and "TFPS_PUBLISHED_RESULTS" in out.err
  monkeypatch.delenv(published.ENV_VAR)
  assert len(published.load()) >= 60    # the shipped one


def test_load_ours_errors_name_the_file_and_the_run(tmp_path, capsys):
  broken = tmp_path / "broken.json"
  broken.write_text('{"runs": [')
  with pytest.raises(ValueError, match="broken.json: not a JSON file"):
    published.load_ours(str(broken))
  runs = json.loads(open(write_ours(tmp_path / "o.json")).read())
  del runs["runs"][1]["criterion"]
  runs["runs"][1]["top1"] = None
  other = tmp_path / "other.json"
  other.write_text(json.dumps(runs))
  with pytest.raises(ValueError, match=r"other.json: runs\[1\] lacks "
                     r"\['criterion'\]; has non-numbers \{'top1': None\}"):
    published.load_ours(str(other))
  # compare: a usage error (exit 2) naming the file, not a traceback.
  for path in (broken, other):
    code, out = run_cli(["compare", "--ours", str(path)], capsys)
    assert code == 2 and path.name in out.err


def test_load_reads_the_metric_in_any_spelling_and_refuses_others(tmp_path):
  spelt = tmp_path / "spelt.csv"
  spelt.write_text(FIXTURE.replace("20.0,,top5", "20.0,,Top-5"))
  rows = published.load(str(spelt))
  assert rows[2]["metric"] == "top5"
  # The pivot marks it as a top-5 figure, as it does for 'top5'.
  assert "-1.00 F20% (top5)" in published.pivot(rows)
  for bad in ("top3", ""):
    path = tmp_path / "bad.csv"
    path.write_text(FIXTURE.replace("20.0,,top5", f"20.0,,{bad}"))
    with pytest.raises(ValueError, match=f"line 4: column 'metric' must be "
                       f"one of \\('top1', 'top5'\\), got '{bad}'"):
      published.load(str(path))


def _keep_figures(monkeypatch):
  """The figures saved from now on, kept to look at."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  figs, save = [], Figure.savefig

  def keep(fig, *args, **kwargs):
    figs.append(fig)
    return save(fig, *args, **kwargs)
  monkeypatch.setattr(Figure, "savefig", keep)
  return figs


def test_plot_leaves_pyplot_backend_and_figures_alone(csv_path, tmp_path):
  """plot writes the PNG without switching pyplot's backend (a notebook's
  inline one) or touching the caller's open figures."""
  with callers_pyplot():
    path = str(tmp_path / "p.png")
    assert published.plot(published.load(csv_path), [], path) == []
  assert png_size(path) == (715, 528)  # 6.5x4.8 in, 110 dpi


def test_plot_does_not_pass_params_or_top5_figures_off_as_flops_top1(
    csv_path, tmp_path, monkeypatch):
  rows = published.load(csv_path) + [
      {"method": "Eps", "model": "ResNet56", "dataset": "CIFAR10",
       "delta_top1": -0.3, "flops_reduction_pct": None,
       "params_reduction_pct": 45.0, "metric": "top1"}]
  figs = _keep_figures(monkeypatch)
  published.plot(rows, [], str(tmp_path / "p.png"))
  ax = figs[0].axes[0]
  points = {}
  for coll in ax.collections:
    for xy in coll.get_offsets():
      points[tuple(float(v) for v in xy)] = coll
  assert set(points) == {(40.0, -0.5), (60.0, 0.1), (20.0, -1.0),
                         (50.0, -2.0), (45.0, -0.3)}
  filled = lambda c: len(c.get_facecolor()) and c.get_facecolor()[0][3] > 0
  # FLOPs known: filled; params only (FLOPs unknown): hollow.
  assert all(filled(points[p]) for p in [(40.0, -0.5), (60.0, 0.1),
                                         (50.0, -2.0), (20.0, -1.0)])
  assert not filled(points[(45.0, -0.3)])
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert "published, params (FLOPs unknown) reduction" in labels
  assert "published, FLOPs reduction, top-5" in labels
  assert "Beta (top5)" in [t.get_text() for t in ax.texts]


def test_an_empty_delta_is_computed_from_base_and_pruned_top1(
    tmp_path, monkeypatch):
  # delta_top1 empty, base and pruned known: the table showed '?' and the
  # plot left the figure out.
  path = tmp_path / "nodelta.csv"
  path.write_text(FIXTURE.splitlines()[0] + "\n"
                  "Zeta,R,C,93.12,91.87,,40,,top1,s,survey_text,\n"
                  "Eta,R,C,93.12,,,30,,top1,s,survey_text,\n")
  rows = published.load(str(path))
  assert rows[0]["delta_top1"] is None   # the file's figure, as it is
  lines = published.pivot(rows).splitlines()
  assert lines[2:] == ["| Zeta | -1.25 F40% |", "| Eta | ? F30% |"]
  want = 91.87 - 93.12                   # -1.25 points
  assert published.delta(rows[0]) == pytest.approx(-1.25)
  assert published.delta(rows[0]) == pytest.approx(want)
  assert published.delta(rows[1]) is None    # pruned unknown: unknown
  figs = _keep_figures(monkeypatch)
  published.plot(rows, [], str(tmp_path / "p.png"))
  points = [tuple(float(v) for v in xy) for c in figs[0].axes[0].collections
            for xy in c.get_offsets()]
  assert points == [(40.0, pytest.approx(want))]


def test_pairs_draws_every_run_of_ours(csv_path, tmp_path):
  rows = published.load(csv_path)
  shared = published.load_ours(write_ours(tmp_path / "a.json",
                                          dataset="CIFAR10"))
  lenet = published.load_ours(write_ours(tmp_path / "b.json", model="LeNet"))
  panels, warnings = published.pairs(rows, shared + lenet)
  # ResNet56 beside its published results; LeNet (no published result)
  # was dropped from the plot without a word.
  assert [len(own) for _, _, own in panels] == [2, 2]
  assert panels[0][0] == "ResNet56" and panels[0][2] == shared
  assert panels[1][2] == lenet and panels[1][1] == rows
  assert len(warnings) == 1
  assert "no published result shares a model with ours (LeNet / " \
      "fashion_mnist)" in warnings[0]


def test_default_path_finds_a_user_install(csv_path, tmp_path, monkeypatch):
  # `pip install --user`: data_files land under the user base, not under
  # sys.prefix, and there is no source tree beside the package.
  import site
  import sys
  monkeypatch.delenv(published.ENV_VAR, raising=False)
  monkeypatch.setattr(published, "__file__",
                      str(tmp_path / "lib" / "tfprune_survey" / "published.py"))
  monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
  user = tmp_path / "user"
  (user / "share" / "tfprune_survey").mkdir(parents=True)
  shipped = user / "share" / "tfprune_survey" / "published_results.csv"
  shipped.write_text(open(csv_path).read())
  monkeypatch.setattr(site, "USER_BASE", str(user))
  assert published.default_path() == str(shipped)
  assert len(published.load()) == 5
  shipped.unlink()
  with pytest.raises(FileNotFoundError, match="TFPS_PUBLISHED_RESULTS"):
    published.default_path()
