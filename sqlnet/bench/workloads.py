"""The named workloads and the data, network and initial weights each trains."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

from sqlnet.model.network import Dataset, Network, Params, Sample


@dataclass(frozen=True)
class Workload:
    name: str
    samples: int
    sizes: tuple[int, ...]
    hidden: str
    epochs: int
    learning_rate: float
    description: str
    competitors: tuple[str, ...]
    runs: int = 3
    output: str = "linear"
    loss: str = "half-se"
    batch_size: int = 0  # 0: full batch
    # sqlnet's other options (NumPy and scikit-learn do not take them: only sqlnet competitors run these)
    optimizer: str = "gd"
    shuffle: int | None = None
    validation: float = 0.0
    bias: str = "node"

    def train_options(self) -> list[str]:
        """The options of this workload for `sqlnet train`."""
        args = [
            "--epochs", str(self.epochs), "--lr", str(self.learning_rate), "--hidden-activation", self.hidden,
            "--output-activation", self.output, "--loss", self.loss, "--batch-size", str(self.batch_size),
            "--optimizer", self.optimizer,
        ]  # fmt: skip
        if self.shuffle is not None:
            args += ["--shuffle", str(self.shuffle)]
        if self.validation:
            args += ["--validation-fraction", str(self.validation), "--seed", "1"]
        return args


WORKLOADS = [
    Workload(
        "post",
        1,
        (3, 2, 3),
        "relu",
        1,
        0.1,
        "the post's network, one step",
        ("sqlnet", "long", "numpy", "reference", "post-sql", "sklearn"),
    ),
    Workload(
        "regression-1k",
        1000,
        (8, 16, 1),
        "relu",
        100,
        0.05,
        "1000 samples, 8-16-1 ReLU, 100 epochs",
        ("sqlnet", "long", "numpy", "reference", "sklearn"),
        runs=3,
    ),
    Workload(
        "post-style-1k",
        1000,
        (8, 16, 1),
        "relu",
        3,
        0.05,
        "1000 samples, 8-16-1 ReLU, 3 epochs: against the post's approach generalised",
        ("sqlnet", "long", "numpy", "post-sql"),
    ),
    Workload(
        "tanh-5k",
        5000,
        (12, 24, 2),
        "tanh",
        30,
        0.05,
        "5000 samples, 12-24-2 tanh, 30 epochs",
        ("sqlnet", "native", "numpy", "sklearn"),
    ),
    Workload(
        "samples-1k",
        1000,
        (8, 16, 1),
        "relu",
        5,
        0.05,
        "scaling in samples: 1k, 8-16-1, 5 epochs",
        ("sqlnet", "numpy"),
    ),
    Workload(
        "samples-10k", 10_000, (8, 16, 1), "relu", 5, 0.05, "scaling in samples: 10k", ("sqlnet", "numpy")
    ),
    Workload(
        "samples-100k",
        100_000,
        (8, 16, 1),
        "relu",
        5,
        0.05,
        "scaling in samples: 100k",
        ("sqlnet", "numpy"),
        runs=1,
    ),
    Workload(
        "width-64",
        1000,
        (8, 64, 1),
        "relu",
        5,
        0.05,
        "scaling in width: 8-64-1, 1k samples",
        ("sqlnet", "numpy"),
    ),
    Workload(
        "width-256", 1000, (8, 256, 1), "relu", 5, 0.05, "scaling in width: 8-256-1", ("sqlnet", "numpy")
    ),
    Workload(
        "width-1024",
        1000,
        (8, 1024, 1),
        "relu",
        2,
        0.05,
        "scaling in width: 8-1024-1 (too wide for the wide layout: long)",
        ("sqlnet", "numpy"),
        runs=1,
    ),
    Workload(
        "epochs-10",
        10_000,
        (8, 16, 1),
        "relu",
        10,
        0.05,
        "temp files against epochs: 10k, 10 epochs",
        ("sqlnet",),
        runs=1,
    ),
    Workload(
        "epochs-100",
        10_000,
        (8, 16, 1),
        "relu",
        100,
        0.05,
        "temp files against epochs: 10k, 100 epochs",
        ("sqlnet",),
        runs=1,
    ),
    Workload(
        "tanh-5k-floor",
        5000,
        (12, 24, 2),
        "tanh",
        30,
        0.05,
        "tanh-5k against its floor: the same arithmetic as plain SELECTs, and against round 1's code",
        ("sqlnet", "floor", "round1"),
    ),
    Workload(
        "digits",
        1797,
        (64, 32, 10),
        "relu",
        5,
        0.1,
        "scikit-learn's digits (8x8 images, 10 classes), 64-32-10 softmax + cross-entropy, batches of 64, 5 epochs",
        ("sqlnet", "native", "numpy", "sklearn"),
        output="softmax",
        loss="cross-entropy",
        batch_size=64,
    ),
    Workload(
        "spark-5k",
        5_000,
        (12, 24, 2),
        "tanh",
        10,
        0.05,
        "Spark against PostgreSQL: 5000 samples, 12-24-2 tanh, full batch, 10 epochs",
        ("sqlnet", "spark"),
        runs=1,
    ),
    Workload(
        "spark-50k",
        50_000,
        (12, 24, 2),
        "tanh",
        3,
        0.05,
        "Spark against PostgreSQL: 50k samples",
        ("sqlnet", "spark"),
        runs=1,
    ),
    Workload(
        "spark-500k",
        500_000,
        (12, 24, 2),
        "tanh",
        2,
        0.05,
        "Spark against PostgreSQL: 500k samples, 2 epochs",
        ("sqlnet", "spark"),
        runs=1,
    ),
    Workload(
        "spark-recursive-5k",
        5_000,
        (12, 24, 2),
        "tanh",
        5,
        0.05,
        "Spark's two statement forms: one recursive CTE (the prototype's, edge biases, 5 epochs) against "
        "sqlnet's client loop of one statement per update",
        ("spark", "spark-recursive"),
        runs=1,
        bias="edge",
    ),
    Workload(
        "digits-round1",
        1797,
        (64, 32, 10),
        "relu",
        5,
        0.1,
        "digits as above, against round 1's code",
        ("sqlnet", "round1"),
        output="softmax",
        loss="cross-entropy",
        batch_size=64,
    ),
    Workload(
        "digits-readme",
        1797,
        (64, 32, 10),
        "relu",
        20,
        0.005,
        "the README's digits example: Adam, shuffled batches of 32, 20% held out, 20 epochs, against round 1's code",
        ("sqlnet", "round1"),
        output="softmax",
        loss="cross-entropy",
        batch_size=32,
        optimizer="adam",
        shuffle=1,
        validation=0.2,
    ),
    Workload(
        "wide-784",
        2000,
        (784, 128, 10),
        "relu",
        3,
        0.01,
        "a network of the size people have: 784-128-10 (MNIST's shape), 2000 samples, 3 full-batch updates "
        "(pure SQL cannot run it: a join passes 32,767 columns)",
        ("native", "numpy"),
        runs=3,
    ),
]


def make_data(w: Workload) -> tuple[Network, Params, Dataset]:
    rng = random.Random(w.name.removesuffix("-floor").removesuffix("-round1").removesuffix("-readme"))
    if w.name.startswith("spark-"):  # the Spark comparison's samples are tanh-5k's kind, at other sizes
        rng = random.Random(f"tanh-{w.samples}")
    net = Network(w.sizes, w.hidden, w.output, w.loss, w.bias)
    params = Params(
        [
            [
                [rng.gauss(0, math.sqrt(2 / net.sizes[k - 1])) for _ in range(net.sizes[k])]
                for _ in range(net.sizes[k - 1])
            ]
            for k in range(1, net.depth + 1)
        ],
        [[[0.1] * net.sizes[k] for _ in range(net.bias_rows(k))] for k in range(1, net.depth + 1)],
    )
    if w.name.startswith("digits"):  # a data set that ships inside scikit-learn
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (
            net,
            params,
            Dataset(
                [
                    Sample(
                        s + 1, tuple(float(v) / 16 for v in x), tuple(float(c == label) for c in range(10))
                    )
                    for s, (x, label) in enumerate(zip(digits.data, digits.target))
                ]
            ),
        )
    coeffs = [[rng.uniform(-1, 1) for _ in range(w.sizes[0])] for _ in range(w.sizes[-1])]
    samples = []
    for s in range(1, w.samples + 1):
        x = tuple(rng.uniform(-1, 1) for _ in range(w.sizes[0]))
        t = tuple(math.sin(sum(c * v for c, v in zip(cs, x))) for cs in coeffs)
        samples.append(Sample(s, x, t))
    return net, params, Dataset(samples)


@dataclass
class Result:
    competitor: str
    process: list[float] = field(default_factory=list)  # whole-process seconds per run
    inner: list[float] = field(default_factory=list)  # training seconds per run
    max_diff: float | None = None  # largest |weight - sqlnet's weight|
    extra: dict[str, Any] = field(default_factory=dict)

    def median(self, which: str) -> float | None:
        values = getattr(self, which)
        return statistics.median(values) if values else None


def flat(p: Params) -> list[float]:
    return [v for m in p.weights + p.biases for row in m for v in row]


# --- sqlnet -------------------------------------------------------------------------------------


# each workload's samples, made once per benchmark run and shared by the competitors
_data_cache: dict[str, Dataset] = {}
