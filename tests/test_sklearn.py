"""scikit-learn's estimators, trained in PostgreSQL (sqlnet.sklearn): scikit-learn's own estimator checks,
pipelines, grid search and cross-validation, predictions computed in SQL equal to the fitted weights' forward
pass, and accuracy beside MLPClassifier's on the same data, architecture and optimizer."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from sqlnet.sklearn import SQLNetClassifier, SQLNetRegressor, drop_fitted


@pytest.fixture
def database(db_url: str) -> Iterator[str]:
    yield db_url
    drop_fitted(db_url)


# scikit-learn's checks that cannot apply to an estimator of this kind, with the reason: none so far (each
# estimator passes every check scikit-learn runs on it); a check added here must say why
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@pytest.mark.parametrize("kind", [SQLNetClassifier, SQLNetRegressor], ids=lambda k: k.__name__)
def test_scikit_learns_estimator_checks_pass(kind: type, database: str) -> None:
    results = check_estimator(kind(database=database), on_fail=None, expected_failed_checks=EXPECTED_FAILED_CHECKS)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results if r["status"] == "failed"]
    assert not failed, failed
    ran = [r for r in results if r["status"] == "passed"]
    assert len(ran) >= 45, len(ran)  # the checks did run: fits, predictions, pickling, ...


def forward(est: SQLNetClassifier | SQLNetRegressor, X: np.ndarray) -> np.ndarray:
    """The fitted weights' forward pass in NumPy (coefs_, intercepts_ as read back from the tables)."""
    functions = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "identity": lambda z: z,
                 "logistic": lambda z: 1 / (1 + np.exp(-z))}  # fmt: skip
    a = X
    for k, (w, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        z = a @ w + b
        if k < len(est.coefs_) - 1:
            a = functions[est.activation](z)
        elif est.out_activation_ == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
        else:
            a = z
    return a


def test_predictions_in_sql_are_the_fitted_weights_forward_pass(database: str) -> None:
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    est = SQLNetClassifier(hidden_layer_sizes=(8, 6), activation="tanh", max_iter=30, random_state=3, database=database)
    est.fit(X, y)
    assert list(est.classes_) == [0, 1, 2] and est.n_features_in_ == 13 and est.n_iter_ == 30
    assert [c.shape for c in est.coefs_] == [(13, 8), (8, 6), (6, 3)] and len(est.loss_curve_) == 30
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba, forward(est, X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert (est.predict(X) == est.classes_[proba.argmax(axis=1)]).all()
    # the same random_state trains the same weights; labels of any kind come back as given
    again = clone(est).fit(X, np.array(["1 red", "2 white", "3 rosé"])[y])  # sorted as the codes 0, 1, 2
    np.testing.assert_array_equal(again.coefs_[0], est.coefs_[0])
    assert set(again.predict(X)) == {"1 red", "2 white", "3 rosé"}
    reg = SQLNetRegressor(hidden_layer_sizes=(5,), solver="sgd", max_iter=20, learning_rate_init=0.01,
                          random_state=1, database=database).fit(X[:, :4], X[:, 4:6])  # fmt: skip
    np.testing.assert_allclose(reg.predict(X[:, :4]), forward(reg, X[:, :4]), rtol=0, atol=1e-12)
    assert reg.predict(X[:, :4]).shape == (len(X), 2)


def test_pipelines_grid_search_and_cross_validation(database: str) -> None:
    X, y = load_wine(return_X_y=True)
    pipe = make_pipeline(
        StandardScaler(), SQLNetClassifier(max_iter=20, learning_rate_init=0.05, random_state=0, database=database)
    )
    grid = GridSearchCV(pipe, {"sqlnetclassifier__hidden_layer_sizes": [(4,), (16,)],
                               "sqlnetclassifier__alpha": [1e-4, 1e-1]}, cv=3)  # fmt: skip
    grid.fit(X, y)
    assert set(grid.best_params_) == {"sqlnetclassifier__hidden_layer_sizes", "sqlnetclassifier__alpha"}
    assert grid.best_score_ > 0.8
    scores = cross_val_score(pipe, X, y, cv=3)
    assert len(scores) == 3 and scores.mean() > 0.8


@pytest.mark.parametrize("data", [load_wine, load_breast_cancer], ids=["wine", "breast-cancer"])
def test_accuracy_is_within_noise_of_mlpclassifiers(data, database: str) -> None:  # type: ignore[no-untyped-def]
    """The same data, folds, architecture and optimizer (Adam, batches of 32, 60 epochs, alpha 1e-4): the mean
    accuracy over 5 folds differs from MLPClassifier's by less than the folds' own spread (at least 0.03)."""
    X, y = data(return_X_y=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    common = {"hidden_layer_sizes": (16,), "solver": "adam", "learning_rate_init": 0.01, "batch_size": 32,
              "max_iter": 60, "alpha": 1e-4, "random_state": 0}  # fmt: skip
    ours = cross_val_score(make_pipeline(StandardScaler(), SQLNetClassifier(**common, database=database)), X, y, cv=folds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = cross_val_score(
            make_pipeline(StandardScaler(), MLPClassifier(**common, n_iter_no_change=10_000)), X, y, cv=folds
        )
    noise = max(0.03, float(np.std(theirs)), float(np.std(ours)))
    assert abs(ours.mean() - theirs.mean()) <= noise, (ours, theirs)
    assert ours.mean() > 0.9, ours


def test_bad_parameters_are_refused_before_anything_runs(database: str) -> None:
    X, y = load_wine(return_X_y=True)
    for bad in ({"solver": "lbfgs"}, {"activation": "gelu"}, {"hidden_layer_sizes": (0,)}, {"max_iter": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SQLNetClassifier(database=database, **bad).fit(X, y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 classes"):
        SQLNetClassifier(database=database).fit(X[:5], np.zeros(5))


def test_drop_removes_only_the_schema_the_estimator_made(database: str, conn) -> None:  # type: ignore[no-untyped-def]
    X, y = load_wine(return_X_y=True)
    # unscaled wine: seed 273 once drew a softmax so sure that Adam's squared gradients underflowed
    made = SQLNetClassifier(max_iter=2, database=database, random_state=273).fit(X, y)
    conn.execute("CREATE SCHEMA mine")
    given = SQLNetClassifier(max_iter=2, database=database, schema="mine", random_state=0).fit(X, y)
    schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
    assert made.schema_ in schemas and given.schema_ == "mine"
    made.drop()
    given.drop()
    schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
    assert made.schema_ if hasattr(made, "schema_") else True
    assert "mine" in schemas and not any(s.startswith("sqlnet_sk_") for s in schemas)
