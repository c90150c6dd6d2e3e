"""BUILD must name every module and every test file."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _py_files(top):
  out = []
  for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
    if "__pycache__" in dirpath:
      continue
    for f in files:
      if f.endswith(".py"):
        out.append(os.path.relpath(os.path.join(dirpath, f), ROOT))
  return sorted(out)


def _build_text():
  with open(os.path.join(ROOT, "BUILD")) as f:
    return f.read()


def test_every_module_is_in_build():
  text = _build_text()
  listed = set(re.findall(r'"([\w/]+\.py)"', text))
  missing = [p for p in _py_files("tfprune_survey") if p not in listed]
  assert not missing, f"modules missing from BUILD: {missing}"


def test_every_test_file_has_a_py_test():
  text = _build_text()
  listed = set(re.findall(r'"([\w/]+\.py)"', text))
  tests = [p for p in _py_files("tests")
           if os.path.basename(p).startswith("test_")]
  missing = [p for p in tests if p not in listed]
  assert not missing, f"test files missing from BUILD: {missing}"
  for p in tests:
    name = os.path.splitext(os.path.basename(p))[0]
    assert re.search(r'py_test\(\s*name = "%s"' % name, text), name


def test_build_lists_no_missing_files():
  listed = set(re.findall(r'"([\w/]+\.py)"', _build_text()))
  gone = [p for p in listed if not os.path.exists(os.path.join(ROOT, p))]
  assert not gone, f"BUILD names files that do not exist: {gone}"
