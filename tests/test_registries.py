"""The registries fail loudly; typed results survive their JSON form."""

import contextlib
import dataclasses

import jax
import jax.numpy as jnp
import pytest

from bcjax import extensions, methods
from bcjax.align import families
from bcjax.components import hparams as hparams_lib
from bcjax.components import losses, transforms
from bcjax.components.registries import Entry, Registry
from bcjax.errors import InputError
from bcjax.storage.results import VersionResult

REGISTRIES = (
  transforms.TRANSFORMS,
  losses.LOSSES,
  methods.base.METHODS,
  families.FAMILIES,
)


def _impostor(*args):
  del args


def test_registries_refuse_duplicates_naming_both_and_list_valid_names():
  # The message names the function (and module) that holds the name and the
  # one that asked for it again.
  for register, name, holder, kind in (
    (
      transforms.register_transform,
      "linear",
      "bcjax.components.transforms.linear",
      "transform",
    ),
    (losses.register_loss, "sloss", "bcjax.components.losses.sloss", "alignment loss"),
    (methods.register_method, "joint", "bcjax.methods.paper.joint", "method"),
  ):
    with pytest.raises(InputError) as error:
      register(name)(_impostor)
    assert str(error.value) == (
      f"{kind} {name!r} is already registered by {holder}; "
      f"tests.test_registries._impostor registers it again: expected a name of its own"
    )
  linear = families.FAMILIES["linear"]
  with pytest.raises(
    InputError,
    match="bridge family 'linear' is already registered by "
    "bcjax.align.families._fit_linear; tests.test_registries._impostor registers",
  ):
    families.register_family(dataclasses.replace(linear, fn=_impostor))
  assert families.register_family(linear) is linear  # the same fit again
  assert families.FAMILIES["linear"] is linear
  with pytest.raises(InputError, match="config key 'finetune_m0' of method"):
    methods.register_method("finetune_m0")
  with pytest.raises(InputError, match="without '-'"):
    transforms.register_transform("two-part")
  with pytest.raises(InputError, match="valid alignment loss names: mloss, sloss"):
    losses.get_loss("xloss")
  with pytest.raises(InputError, match="unknown method 'fast'; valid method names:"):
    methods.get_method("fast")
  with pytest.raises(InputError, match="unknown method 'jiont'; did you mean joint;"):
    methods.get_method("jiont")


def test_the_same_function_registered_again_replaces_its_entry():
  # A module imported anew, or a notebook cell run twice, registers the same
  # function (module and qualified name) again: allowed.
  with contextlib.ExitStack() as stack:
    for registry in REGISTRIES:
      stack.enter_context(registry.scratch())
    linear = transforms.TRANSFORMS["linear"].fn
    transforms.register_transform(
      "linear", hparams=transforms.TRANSFORMS["linear"].hparams
    )(linear)
    sloss = losses.LOSSES["sloss"]
    losses.register_loss("sloss", hparams=sloss.hparams, check=sloss.check)(sloss.fn)
    joint = methods.get_method("joint")
    methods.register_method(
      "joint",
      hparams=joint.hparams,
      takes_transform=joint.takes_transform,
      keeps_m0=joint.keeps_m0,
      reads=joint.reads,
      check=joint.check,
    )(joint.fn)
    assert transforms.TRANSFORMS["linear"].fn is linear
    assert losses.LOSSES["sloss"].fn is sloss.fn
    assert methods.get_method("joint").fn is joint.fn
    orthogonal = families.FAMILIES["orthogonal"]
    assert families.register_family(dataclasses.replace(orthogonal)) == orthogonal


def test_every_registry_has_one_shape():
  # Transforms, losses, methods and bridge families: a Registry of entries
  # that each hold a name, a function, a frozen hyperparameter dataclass and
  # their source, whatever else their kind can do.
  for registry in REGISTRIES:
    assert isinstance(registry, Registry) and len(registry) >= 2
    for name, entry in registry.items():
      assert isinstance(entry, Entry) and entry.name == name
      assert callable(entry.fn) and entry.source.startswith("bcjax.")
      hparams_lib.check_class(registry.kind, name, entry.hparams)
  # The rules live in the registry, so every kind follows them: a bridge
  # family with mutable hyperparameters is refused as a method is.
  with families.FAMILIES.scratch():
    with pytest.raises(InputError, match="bridge family 'toy': hparams _Mutable"):
      families.register_family(
        dataclasses.replace(families.FAMILIES["linear"], name="toy", hparams=_Mutable)
      )
    assert "toy" not in families.FAMILIES
  # An unknown name is one InputError, and a KeyError where a dict's would be.
  assert families.FAMILIES.get("nope") is None
  with pytest.raises(InputError, match="did you mean linear; .*: auto, linear"):
    families.FAMILIES["linaer"]


def test_a_scratch_registry_is_restored_in_place():
  before = dict(transforms.TRANSFORMS)
  with transforms.TRANSFORMS.scratch():
    transforms.register_transform("toy")(lambda hp: transforms.notrans())
    assert "toy" in transforms.TRANSFORMS
  assert dict(transforms.TRANSFORMS) == before


@dataclasses.dataclass
class _Mutable:
  rank: int = 2


@dataclasses.dataclass(frozen=True)
class _NoDefault:
  rank: int


@pytest.mark.parametrize(
  "hparams,message",
  [
    (_Mutable, "hparams _Mutable must be frozen"),
    (_NoDefault, "_NoDefault.rank needs a default"),
    (dict, "hparams must be a dataclass class"),
  ],
)
def test_registries_refuse_hparams_that_are_no_frozen_dataclass(hparams, message):
  for register in (
    transforms.register_transform,
    losses.register_loss,
    methods.register_method,
  ):
    with pytest.raises(InputError, match=message):
      register("toy", hparams=hparams)
  assert "toy" not in transforms.TRANSFORMS and "toy" not in losses.LOSSES


def test_transforms_rebuild_from_their_spec():
  mlp = transforms.from_config("mlp", {"transform": {"mlp": {"hidden": 7}}})
  spec = mlp.spec(12, 8)
  assert spec == {
    "name": "mlp",
    "d_in": 12,
    "d_out": 8,
    "hparams": {"hidden": 7},
    "source": "bcjax.components.transforms",
  }
  assert transforms.from_spec(spec).hparams == transforms.MLPHparams(hidden=7)
  # Specs written before hparams had a field of their own.
  old = {"name": "mlp", "d_in": 12, "d_out": 8, "hidden": 5}
  assert transforms.from_spec(old).hparams == transforms.MLPHparams(hidden=5)
  linear = transforms.from_spec({"name": "linear", "d_in": 3, "d_out": 2, "hidden": 0})
  params = linear.init(jax.random.key(0), 3, 2)
  assert linear.as_matrix(params).shape == (3, 2)
  assert transforms.get_transform("mlp").as_matrix is None
  with pytest.raises(
    InputError, match="^config.transform.mlp.hidden must be an integer, got .7.$"
  ):
    transforms.from_config("mlp", {"transform": {"mlp": {"hidden": "7"}}})
  with pytest.raises(InputError, match="config.transform.mlp has no field 'width'"):
    transforms.from_config("mlp", {"transform": {"mlp": {"width": 7}}})


def test_version_result_round_trips_through_json():
  result = VersionResult(
    strategy="joint-linear-mloss",
    version=1,
    dim=24,
    layers=2,
    tau_train=0.6,
    tau_val=0.7,
    num_users=10,
    num_items=8,
    num_train=40,
    num_val=5,
    best_epoch=4,
    recall={10: 0.1, 50: 0.3333333432674408},
    history=({"epoch": 2, "loss": 0.5},),
    alignment_mse_previous=0.25,
  )
  data = result.to_json()
  assert data["recall"] == {"10": 0.1, "50": 0.3333333432674408}
  assert "transform_best_epoch" not in data
  assert VersionResult.from_json(data) == result
  with pytest.raises(InputError, match=r"unknown fields \['bogus'\]"):
    VersionResult.from_json(dict(data, bogus=1))
  with pytest.raises(InputError, match="malformed"):
    VersionResult.from_json({k: v for k, v in data.items() if k != "dim"})


def test_config_imports_names_what_cannot_be_loaded():
  with pytest.raises(InputError, match="cannot import 'no_such_module'"):
    extensions.load("no_such_module")
  with pytest.raises(
    InputError, match="'bcjax.components.losses' has no attribute 'nope'"
  ):
    extensions.load("bcjax.components.losses:nope")
  assert (
    float(
      losses.get_loss("sloss")(
        transforms.linear(),
        {"kernel": jnp.eye(2)},
        (),
        [jnp.ones((3, 2))],
        [jnp.ones((3, 2))],
      )
    )
    == 0.0
  )
