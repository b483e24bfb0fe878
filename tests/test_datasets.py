"""The dataset registry: a dataset added from outside bcjax, names, patterns."""

from __future__ import annotations

import pytest

from bcjax.data import datasets
from bcjax.data.graph import DynamicGraph, RaggedAttribute, from_raw_log
from bcjax.errors import InputError
from bcjax.jobs.experiment import resolve
from bcjax.jobs.run_data import RunData
from experiments.configs import test as test_config
from tests.test_recbole import write_amazon_like

SIZES = {"small": 4, "large": 40}
requests: list[datasets.DatasetRequest] = []


def load_toy(request: datasets.DatasetRequest) -> DynamicGraph:
  """A user's own loader: a chain of interactions as long as its size says."""
  requests.append(request)
  if request.parts["Size"] not in SIZES:
    raise InputError(f"toy size {request.parts['Size']!r}; expected small or large")
  n = SIZES[request.parts["Size"]]
  user, item, timestamp, rating, _, _ = from_raw_log(
    [i % 2 for i in range(n)], list(range(n)), list(range(n)), [4.0] * n, name="toy"
  )
  kind = RaggedAttribute.from_labels([["odd" if i % 2 else "even"] for i in range(n)])
  return DynamicGraph(user, item, timestamp, rating, {"kind": kind}, name=request.name)


@pytest.fixture
def toy():
  requests.clear()
  datasets.register("toy-<Size>", load_toy)
  yield
  datasets.unregister("toy-<Size>")


def test_a_dataset_registered_from_outside_the_package(toy, tmp_path):
  graph = datasets.load_dataset("toy-large", str(tmp_path), item_fields="a, b")
  assert graph.name == "toy-large" and graph.num_edges == 40
  (request,) = requests
  assert request.parts == {"Size": "large"}
  assert request.data_dir == str(tmp_path)
  assert request.options["item_fields"] == ["a", "b"]
  assert datasets.load_dataset("toy-small").num_edges == 4
  # The loader's own errors come through as they are.
  with pytest.raises(InputError, match="toy size 'huge'"):
    datasets.load_dataset("toy-huge")


def test_the_job_loads_a_registered_dataset(toy, tmp_path):
  config = test_config.get_config()
  config.dataset = "toy-large"
  run = RunData.load(resolve(config), str(tmp_path))
  assert run.graph.name == "toy-large" and run.graph.num_edges == 40


def test_config_item_fields_reach_the_loader(tmp_path):
  config = test_config.get_config()
  config.dataset = "recbole"
  config.data_dir = str(write_amazon_like(tmp_path / "amz"))
  config.item_fields = "brand"
  run = RunData.load(resolve(config), str(tmp_path / "work"))
  assert list(run.graph.item_attrs) == ["brand"]


def test_unknown_names_list_the_valid_ones(toy):
  with pytest.raises(InputError) as info:
    datasets.load_dataset("nope")
  message = str(info.value)
  assert message.startswith("unknown dataset 'nope'; valid dataset names: ")
  for name in ("amazon-<Category>", "ml-100k", "recbole", "recbole-<name>"):
    assert name in message
  assert "synthetic" in message and "toy-<Size>" in message
  # A placeholder matches a file-name stem, never a path.
  with pytest.raises(InputError, match="unknown dataset 'toy-../etc'"):
    datasets.load_dataset("toy-../etc")
  datasets.unregister("toy-<Size>")
  with pytest.raises(InputError, match="unknown dataset 'toy-small'"):
    datasets.load_dataset("toy-small")


def test_a_name_has_one_loader_and_a_plain_name_beats_a_pattern(toy):
  with pytest.raises(InputError, match="'toy-<Size>' is registered already"):
    datasets.register("toy-<Size>", load_toy)
  datasets.register(
    "toy-small",
    lambda request: load_toy(
      datasets.DatasetRequest(request.name, parts={"Size": "large"})
    ),
  )
  try:
    assert datasets.load_dataset("toy-small").num_edges == SIZES["large"]
  finally:
    datasets.unregister("toy-small")
  assert datasets.load_dataset("toy-small").num_edges == SIZES["small"]


def test_item_fields_are_for_recbole_datasets_only():
  with pytest.raises(InputError, match="item_fields chooses the attributes of"):
    datasets.load_dataset("synthetic", item_fields="brand")


def test_real_datasets_need_a_folder(tmp_path):
  for name in ("ml-100k", "recbole", "recbole-amz", "amazon-Video_Games"):
    with pytest.raises(InputError, match=f"dataset '{name}' needs data_dir"):
      datasets.load_dataset(name)
  with pytest.raises(InputError, match="is not a folder"):
    datasets.load_dataset("recbole", str(tmp_path / "missing"))
