"""Every bad input raises at trace time, naming the argument and what was received."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnll

X = jnp.zeros((4, 3))
Y = jnp.array([0, 1, 2, 1])


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (dict(reduction="avg"), ValueError, r"`reduction`.*'avg'"),
        (dict(reduction=None), ValueError, r"`reduction`.*None"),
        (dict(label_smoothing=1.5), ValueError, r"`label_smoothing`.*1\.5"),
        (dict(label_smoothing=-0.1), ValueError, r"`label_smoothing`.*-0\.1"),
        (dict(label_smoothing="a"), TypeError, r"`label_smoothing`"),
        (dict(weight=jnp.ones(4)), ValueError, r"`weight`.*\(3,\).*\(4,\)"),
        (dict(weight=jnp.ones((3, 1))), ValueError, r"`weight`.*\(3, 1\)"),
        (dict(weight=jnp.ones(3, jnp.int32)), TypeError, r"`weight`.*int32"),
        (dict(axis=2), ValueError, r"`axis`=2 is out of range"),
        (dict(axis=-3), ValueError, r"`axis`=-3"),
        (dict(axis=1.0), TypeError, r"`axis`"),
        (dict(where=jnp.ones((5,), bool)), ValueError, r"`where` of shape \(5,\)"),
        (dict(where=jnp.ones((4,))), TypeError, r"`where`.*bool"),
        (dict(ignore_index=1.0), TypeError, r"`ignore_index`"),
        (dict(z_loss=-1.0), ValueError, r"`z_loss`"),
        (dict(softcap=0.0), ValueError, r"`softcap`"),
    ],
)
def test_bad_options(kwargs, error, pattern):
  with pytest.raises(error, match=pattern):
    jaxnll.cross_entropy(X, Y, **kwargs)
  # ... and the same at trace time under jit.
  with pytest.raises(error, match=pattern):
    jax.jit(lambda x, y: jaxnll.cross_entropy(x, y, **kwargs))(X, Y)


def test_non_float_logits():
  with pytest.raises(TypeError, match=r"`logits`.*int32"):
    jaxnll.cross_entropy(jnp.zeros((2, 3), jnp.int32), jnp.array([0, 1]))
  with pytest.raises(TypeError, match=r"`log_probs`.*int32"):
    jaxnll.nll_loss(jnp.zeros((2, 3), jnp.int32), jnp.array([0, 1]))
  with pytest.raises(TypeError, match=r"`x`.*int32"):
    jaxnll.log_softmax(jnp.zeros((2, 3), jnp.int32))


def test_targets_that_do_not_fit():
  with pytest.raises(ValueError, match=r"`targets` of shape \(3,\).*\(4, 3\)"):
    jaxnll.cross_entropy(X, jnp.array([0, 1, 2]))
  with pytest.raises(ValueError, match=r"probability `targets`.*\(4, 3\).*\(4, 2\)"):
    jaxnll.cross_entropy(X, jnp.zeros((4, 2)))


def test_nll_loss_needs_integer_targets():
  with pytest.raises(TypeError, match=r"`targets`.*integer.*float"):
    jaxnll.nll_loss(X, jnp.zeros((4, 3)))
  with pytest.raises(TypeError, match=r"`targets`.*bool"):
    jaxnll.cross_entropy(X, jnp.zeros((4,), bool))


def test_ignore_index_with_probability_targets():
  with pytest.raises(ValueError, match=r"`ignore_index`.*probability.*ignore_index=0"):
    jaxnll.cross_entropy(X, jnp.full((4, 3), 1 / 3), ignore_index=0)


def test_scalar_and_classless_logits():
  with pytest.raises(ValueError, match="scalar"):
    jaxnll.cross_entropy(jnp.zeros(()), jnp.array(0))
  with pytest.raises(ValueError, match="no classes"):
    jaxnll.cross_entropy(jnp.zeros((2, 0)), jnp.array([0, 0]))


def test_traced_hyperparameter():
  with pytest.raises(TypeError, match=r"`label_smoothing`.*traced"):
    jax.jit(lambda e: jaxnll.cross_entropy(X, Y, label_smoothing=e))(0.1)


def test_loss_objects_validate_at_construction():
  with pytest.raises(ValueError, match="`reduction`"):
    jaxnll.CrossEntropyLoss(reduction="batchmean")
  with pytest.raises(ValueError, match="`label_smoothing`"):
    jaxnll.CrossEntropyLoss(label_smoothing=2.0)
  with pytest.raises(ValueError, match=r"`weight`.*1-D"):
    jaxnll.NLLLoss(weight=np.ones((2, 2)))
  with pytest.raises(TypeError, match="`axis`"):
    jaxnll.NLLLoss(axis="1")
