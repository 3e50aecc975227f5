"""jaxnll.losses' margin and cosine drop-ins: optax 0.2.8's own unit tests with jaxnll swapped in."""

from optax.losses import _classification_test, _regression_test, _self_supervised_test

from tests._optax_swap import swapped_in

NAMES = ("triplet_margin_loss", "hinge_loss", "multiclass_hinge_loss", "cosine_similarity", "cosine_distance")

TestOptaxHinge = swapped_in(_classification_test.HingeTest, _classification_test, "_classification", NAMES)
TestOptaxCosineDistance = swapped_in(_regression_test.CosineDistanceTest, _regression_test, "_regression", NAMES)
TestOptaxTripletMarginLoss = swapped_in(
    _self_supervised_test.TripletMarginLossTest, _self_supervised_test, "_self_supervised", NAMES)
