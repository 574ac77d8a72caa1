"""scikit-learn estimators that train in PostgreSQL: ``SQLNetClassifier`` and ``SQLNetRegressor``.

They keep scikit-learn's contract (``fit``/``predict``/``predict_proba``/``score``, ``get_params``/``set_params``,
``clone``, pipelines, grid search) and ``MLPClassifier``'s parameter names where they mean the same:
``hidden_layer_sizes``, ``activation`` (identity, logistic, tanh, relu), ``solver`` (sgd, adam), ``alpha``,
``batch_size``, ``learning_rate_init``, ``max_iter`` (epochs), ``shuffle``, ``random_state``, ``momentum``,
``nesterovs_momentum``, ``beta_1``, ``beta_2``, ``epsilon``, ``validation_fraction``. Besides: ``database``
(a URL, an SQLAlchemy Engine, or None: sqlnet's embedded server), ``schema`` (None: a fresh schema per fitted
estimator, ``drop()`` removes it) and ``kernels`` (auto, native, sql).

``fit`` streams X and y into the schema's inputs and outputs (COPY), starts the weights as scikit-learn does
(Glorot-uniform weights; biases at zero) and trains there in one transaction; ``predict``, ``predict_proba``
and ``score`` copy X into a temporary table and compute the forward pass in SQL. The fitted attributes follow
the convention: ``classes_``, ``n_features_in_``, ``feature_names_in_``, ``loss_curve_``, ``n_iter_``,
``coefs_``/``intercepts_`` (read back from the weights tables), ``schema_``, ``run_id_``.

What differs from ``MLPClassifier``: training always runs ``max_iter`` epochs (no ``tol``/``n_iter_no_change``
or early stopping); ``alpha`` is applied as sqlnet's L2 (``alpha / batch size`` times each weight joins the
mean gradient, which is scikit-learn's rule for every full batch); a binary problem has two softmax outputs
rather than one logistic output (the same model of the probabilities); no ``lbfgs``.
"""

from __future__ import annotations

try:  # an optional extra: say how to get it rather than which module is missing
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - the test environment has it
    raise ImportError(f"sqlnet.sklearn needs numpy, scikit-learn: pip install 'sqlnet[sklearn]' ({exc})") from exc

import uuid
from typing import Any

import numpy as np
from psycopg import sql
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from sqlnet.db.connection import Session
from sqlnet.ops.common import connect
from sqlnet.ops.data import load as load_data
from sqlnet.ops.frames import Records, csv_text
from sqlnet.ops.predict import predict_rows
from sqlnet.ops.setup import init as init_network
from sqlnet.ops.train import train as train_network

ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
MADE_BY = "sqlnet.sklearn"  # the schemas an estimator made say so in their comment: drop() drops only those
PREFIX = "sqlnet_sk_"  # and are named so

__all__ = ["SQLNetClassifier", "SQLNetRegressor", "drop_fitted"]


class _SQLNet(BaseEstimator):
    """What both estimators share: the parameters, fitting into a schema, and predicting in SQL."""

    _output = "linear"
    _loss = "half-se"

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] | list[int] | int = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | None = None,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        validation_fraction: float = 0.0,
        database: Any = None,
        schema: str | None = None,
        kernels: str = "auto",
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.validation_fraction = validation_fraction
        self.database = database
        self.schema = schema
        self.kernels = kernels

    # --- fitting ---------------------------------------------------------------------------------------
    def _check_params(self) -> tuple[list[int], str]:
        sizes: Any = self.hidden_layer_sizes
        hidden: list[Any] = [sizes] if np.isscalar(sizes) else list(sizes)
        if not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h > 0 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive whole numbers, got {self.hidden_layer_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.solver not in ("sgd", "adam"):
            raise ValueError(f"solver must be 'sgd' or 'adam' (sqlnet has no lbfgs), got {self.solver!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a whole number >= 1, got {self.max_iter!r}")
        return [int(h) for h in hidden], ACTIVATIONS[self.activation]

    def _fit(self, X: np.ndarray, targets: np.ndarray) -> None:
        """Train on X (n x features) and the target columns (n x outputs), in PostgreSQL."""
        hidden, activation = self._check_params()
        n, n_out = X.shape[0], targets.shape[1]
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        batch = min(200, n) if self.batch_size == "auto" else int(np.clip(self.batch_size, 1, n))
        schema = self._schema()
        features = [f"x{i}" for i in range(1, X.shape[1] + 1)]
        names = [f"y{j}" for j in range(1, n_out + 1)]

        def rows() -> Any:
            for line, (x, t) in enumerate(zip(X, targets), start=1):
                yield line, dict(zip(features + names, [repr(float(v)) for v in (*x, *t)]))

        load_data(
            database=self.database, schema=schema, records=Records([*features, *names], rows, "X and y"), targets=names,
            validation_fraction=self.validation_fraction or None, seed=seed, replace=True,
        )  # fmt: skip
        init_network(
            self.database, schema=schema, layers=[X.shape[1], *hidden, n_out], init="xavier", seed=seed, bias="node",
            replace=True,
        )  # fmt: skip
        optimizer = (
            {"optimizer": "adam", "beta1": self.beta_1, "beta2": self.beta_2, "epsilon": self.epsilon}
            if self.solver == "adam"
            else {"optimizer": "momentum", "momentum": self.momentum, "nesterov": self.nesterovs_momentum}
            if self.momentum
            else {"optimizer": "gd"}
        )
        result = train_network(
            self.database, schema=schema, epochs=int(self.max_iter), learning_rate=float(self.learning_rate_init),
            hidden_activation=activation, output_activation=self._output, loss=self._loss, bias="node",
            batch_size=0 if batch >= n else batch, shuffle=seed if self.shuffle and batch < n else None,
            l2=float(self.alpha) / batch, redefine=True, reset_optimizer=True, kernels=self.kernels, **optimizer,
        )  # fmt: skip
        self.schema_ = schema
        self.run_id_ = result.run_id
        self.n_iter_ = len(result.losses)
        self.loss_curve_ = list(result.losses)
        self.validation_scores_ = [v[1] if v[1] is not None else v[0] for v in result.validation] or None
        self.coefs_ = [np.array(w, dtype=np.float64) for w in result.params.weights]
        self.intercepts_ = [np.array(b[0], dtype=np.float64) for b in result.params.biases]
        self.n_layers_ = len(hidden) + 2
        self.n_outputs_ = n_out
        self.out_activation_ = {"softmax": "softmax", "linear": "identity"}[self._output]

    def _schema(self) -> str:
        """The schema to fit in: the one given, else the one this estimator made before, else a new one."""
        if self.schema is not None:
            with connect(self.database).transaction() as s:
                s.pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            return self.schema
        made = getattr(self, "schema_", None)
        if made is not None and made.startswith(PREFIX):
            return made
        name = f"{PREFIX}{uuid.uuid4().hex[:12]}"
        with connect(self.database).transaction() as s:
            s.pg.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
            s.pg.execute(
                sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                    sql.Identifier(name), sql.Literal(f"{MADE_BY}: the tables of a fitted {type(self).__name__}")
                )
            )
        return name

    # --- predicting ------------------------------------------------------------------------------------
    def _outputs(self, X: Any) -> np.ndarray:
        """The network's outputs for each row of X, computed in SQL (n x outputs)."""
        check_is_fitted(self, "schema_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        features = [f"x{i}" for i in range(1, X.shape[1] + 1)]
        columns, rows = predict_rows(self.database, schema=self.schema_, handle=csv_text(features, X.tolist(), "X"))
        out = np.array([r[1:] for r in rows], dtype=np.float64).reshape(len(rows), len(columns) - 1)
        return out

    def drop(self) -> None:
        """Drop the schema this estimator made for its tables (not a schema it was given)."""
        made = getattr(self, "schema_", None)
        if made is None or self.schema is not None:
            return
        with connect(self.database).transaction() as s:
            _drop_made(s, _made_schemas(s, made))
        del self.schema_

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags

    def __sklearn_clone__(self) -> Any:
        """A clone shares the database: an SQLAlchemy Engine (a pool of connections) cannot be deep-copied,
        and a copy of it would be another pool to the same server; every other parameter is cloned."""
        params = self.get_params(deep=False)
        database = params.pop("database")
        return type(self)(**{k: clone(v, safe=False) for k, v in params.items()}, database=database)


class SQLNetClassifier(ClassifierMixin, _SQLNet):
    """A multi-layer perceptron classifier trained in PostgreSQL (softmax outputs, cross-entropy)."""

    _output = "softmax"
    _loss = "cross-entropy"

    def fit(self, X: Any, y: Any) -> SQLNetClassifier:
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"SQLNetClassifier needs samples of at least 2 classes; y has 1 class: {self.classes_[0]!r}")
        codes = np.searchsorted(self.classes_, y)
        self._fit(X, np.eye(len(self.classes_))[codes])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._outputs(X)

    def predict(self, X: Any) -> np.ndarray:
        probabilities = self.predict_proba(X)  # checks that the estimator is fitted first
        return self.classes_[np.argmax(probabilities, axis=1)]


class SQLNetRegressor(RegressorMixin, _SQLNet):
    """A multi-layer perceptron regressor trained in PostgreSQL (linear outputs, half squared error)."""

    def fit(self, X: Any, y: Any) -> SQLNetRegressor:
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True)
        self._y_1d = y.ndim == 1
        self._fit(X, y.reshape(len(y), -1))
        return self

    def predict(self, X: Any) -> np.ndarray:
        out = self._outputs(X)
        return out.ravel() if self._y_1d else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y of several columns: one output node each
        return tags


def drop_fitted(database: Any = None) -> list[str]:
    """Drop every schema an estimator made (its comment says so) that this role owns; returns their names."""
    with connect(database).transaction() as s:
        names = _made_schemas(s)
        _drop_made(s, names)
    return names


def _made_schemas(s: Session, name: str | None = None) -> list[str]:
    """The schemas an estimator made (named with PREFIX, its comment says so) that this role owns; or only
    `name`, if it is one of them."""
    return [
        n
        for (n,) in s.pg.execute(
            "SELECT nspname FROM pg_catalog.pg_namespace WHERE starts_with(nspname, %s) "
            "AND pg_catalog.pg_has_role(nspowner, 'USAGE') "
            "AND starts_with(coalesce(pg_catalog.obj_description(oid, 'pg_namespace'), ''), %s) "
            "AND (%s::text IS NULL OR nspname = %s)",
            (PREFIX, MADE_BY + ":", name, name),
        )
    ]


def _drop_made(s: Session, names: list[str]) -> None:
    for n in names:
        s.pg.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(n)))
