"""Connecting, the training options, and finding and checking the network every operation starts from."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlnet.compile import wide
from sqlnet.compile.native import CHUNK
from sqlnet.compile.statement import LAYOUTS
from sqlnet.compile.training import Training, iter_update_blocks
from sqlnet.db import borrowed, kernels, trust
from sqlnet.db.checks import check_and_size, check_distributions, check_targets, count_samples, largest_values
from sqlnet.db.connection import Database, Session
from sqlnet.db.kernels import VERSION as KERNELS_VERSION
from sqlnet.db.kernels import KernelStatus
from sqlnet.db.loading import held_out_count
from sqlnet.db.networks import Definition, read_definition
from sqlnet.db.privileges import check_privileges
from sqlnet.db.samples import LoadSpec
from sqlnet.db.tables import TableMap, discover, integer_parameter_columns
from sqlnet.errors import InputError
from sqlnet.model.network import Network, Params
from sqlnet.model.optimizers import Optimizer
from sqlnet.model.phases import Phase, plan

# updates per statement: the long layout keeps every phase of every update in the recursion's
# tuplestore, the wide layout one row per update, so it affords longer statements (fewer plans)
DEFAULT_UPDATES_PER_STATEMENT = {"long": 100, "wide": 500, "native": 500}
KERNEL_MODES = ("auto", "native", "sql")
DEFAULT_FUNCTIONS = {"hidden_activation": "relu", "output_activation": "linear", "loss": "half-se"}
MAX_INT = 2**31 - 1
MAX_VALUE_BYTES = 2**30 - 1  # PostgreSQL's MaxAllocSize: the largest array (or any value) one statement may hold
TABLES_FILE = "01_tables.sql"
POST_TABLES = ("inputs", "weights1", "weights2", "outputs")
DEMO_SCHEMA = "sqlnet_demo"


# a URL (libpq's or SQLAlchemy's), a Database, None (the configured or embedded server), or a connection the
# caller holds: an SQLAlchemy Engine or Connection, a psycopg Connection (sqlnet.db.borrowed)
DatabaseLike = Database | str | Any | None


def check_fraction(fraction: object) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (0 <= fraction < 1):
        raise InputError(f"--validation-fraction must be at least 0 and below 1, got {fraction!r}")
    return float(fraction)


def connect(database: DatabaseLike = None, timeout: float | None = None) -> Database:
    """The database; with `timeout` (seconds), connecting gives up after about that long."""
    if isinstance(database, Database):
        return database
    if database is None or isinstance(database, str):
        return Database(database, connect_timeout=timeout)
    return borrowed.adopt(database)


@dataclass(frozen=True)
class TrainOptions:
    """The hyperparameters of a training; every value is checked before anything runs."""

    epochs: int = 1
    learning_rate: float = 0.1
    # the network's functions: None takes them from its stored definition (else relu, linear, half-se);
    # a value that contradicts the definition is refused unless the training redefines the network
    hidden_activation: str | None = None
    output_activation: str | None = None
    loss: str | None = None
    bias: str | None = None  # None: node if biases{k} tables exist, else edge if weights have bias columns
    batch_size: int = 0  # 0: full batch; N: mini-batches of N consecutive samples; 1: per-sample SGD
    shuffle: int | None = None  # seed of a deterministic per-epoch sample order
    optimizer: str = "gd"
    momentum: float = 0.9
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    l2: float = 0.0  # the L2 penalty's gradient joins the loss's (coupled)
    weight_decay: float = 0.0  # decoupled weight decay after the optimizer's step (with adam: AdamW)
    numeric: str = "float"  # "exact": NUMERIC rounded at `scale` decimals in every phase
    scale: int = 12
    updates_per_statement: int | None = None  # None: the layout's default
    # held out of training, evaluated after every epoch; None: the network's own split (stored at load or
    # by the training that chose it), else none
    validation_fraction: float | None = None
    seed: int | None = None  # which samples are held out: the first by md5('seed:sampleId'); None: the network's
    layout: str = "auto"  # auto: wide when the network fits and nothing needs long; else long
    # the phases' arithmetic: native (the C kernels, sqlnet_kernels), sql, or auto (native where the
    # database has the kernels and they cover the training, else sql)
    kernels: str = "auto"

    def __post_init__(self) -> None:
        def whole(name: str, value: object, least: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InputError(f"{name} must be a whole number of at least {least}, got {value!r}")
            if value > MAX_INT:  # epochs, batches and updates are PostgreSQL integers
                raise InputError(f"{name} must be at most {MAX_INT} (PostgreSQL's integer), got {value!r}")

        whole("epochs", self.epochs, 1)
        whole("the batch size", self.batch_size, 0)
        if self.updates_per_statement is not None:
            whole("updates per statement", self.updates_per_statement, 1)
        whole("the scale", self.scale, 1)
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, (int, float))
            or not (math.isfinite(self.learning_rate) and self.learning_rate > 0)
        ):
            raise InputError(f"the learning rate must be a finite number above 0, got {self.learning_rate!r}")
        if self.shuffle is not None and (isinstance(self.shuffle, bool) or not isinstance(self.shuffle, int)):
            raise InputError(f"the shuffle seed must be a whole number, got {self.shuffle!r}")
        if self.layout not in ("auto", *LAYOUTS):
            raise InputError(f"unknown layout {self.layout!r}: choose auto, {', '.join(LAYOUTS)}")
        if self.kernels not in KERNEL_MODES:
            raise InputError(f"--kernels must be one of {', '.join(KERNEL_MODES)}, got {self.kernels!r}")
        if self.validation_fraction is not None:
            check_fraction(self.validation_fraction)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise InputError(f"the seed must be a whole number, got {self.seed!r}")
        if self.numeric not in ("float", "exact"):
            raise InputError(f"--numeric must be float or exact, got {self.numeric!r}")
        opt = self.make_optimizer()  # checks the optimizer's own settings
        if self.numeric == "exact" and None not in (self.hidden_activation, self.output_activation, self.loss):
            if {self.hidden_activation, self.output_activation} - {"relu", "linear"} or self.loss not in (
                "half-se",
                "se",
            ):
                raise InputError(
                    "--numeric exact supports relu and linear activations with the half-se or se loss"
                )
            if opt.name != "gd" or opt.l2 or opt.weight_decay:
                raise InputError("--numeric exact supports plain gradient descent without --l2 or --weight-decay")

    def resolved(self, definition: Definition | None, redefine: bool = False) -> TrainOptions:
        """These options with the network's functions filled in from its definition, or refused where
        they contradict it (unless `redefine`)."""
        values: dict[str, Any] = {}
        for name, default in DEFAULT_FUNCTIONS.items():
            given, kept = getattr(self, name), getattr(definition, name, None)
            if given is not None and kept is not None and given != kept and not redefine:
                assert definition is not None
                raise InputError(
                    f"network {definition.network!r} is {definition.describe()}: --{name.replace('_', '-')} "
                    f"{given} contradicts it. Leave the option out to use the network's own, or train with "
                    f"--redefine to change the network on purpose (`sqlnet network` shows it)"
                )
            values[name] = given if given is not None else kept if kept is not None else default
        if self.bias is not None and definition is not None and definition.bias not in (None, self.bias) and not redefine:
            raise InputError(
                f"network {definition.network!r} has bias per {definition.bias}: --bias {self.bias} contradicts "
                f"it; leave it out, or train with --redefine"
            )
        kept_fraction = definition.validation_fraction if definition else None
        kept_seed = definition.validation_seed if definition else None
        values["validation_fraction"] = (
            self.validation_fraction if self.validation_fraction is not None else kept_fraction or 0.0
        )
        values["seed"] = (
            self.seed if self.seed is not None else kept_seed if kept_seed is not None and self.validation_fraction is None else 0
        )
        return dataclasses.replace(self, **values)

    def split_note(self, definition: Definition | None) -> str | None:
        """What a training given another validation split than the network's stored one does instead."""
        kept = (definition.validation_fraction or 0.0, definition.validation_seed or 0) if definition else (0.0, 0)
        now = (float(self.validation_fraction or 0.0), int(self.seed or 0))
        if not kept[0] or now == kept:
            return None
        if not now[0]:
            return (
                f"--validation-fraction 0: this training uses every sample, including those held out "
                f"until now (fraction {kept[0]:g}, seed {kept[1]}); later trainings hold out none"
            )
        return (
            f"the held-out samples change from fraction {kept[0]:g}, seed {kept[1]} to fraction {now[0]:g}, seed "
            f"{now[1]}: some samples held out before are trained on now"
        )

    def make_optimizer(self) -> Optimizer:
        return Optimizer(
            self.optimizer,
            self.momentum,
            self.nesterov,
            self.beta1,
            self.beta2,
            self.epsilon,
            self.l2,
            self.weight_decay,
        )

    @property
    def scale_or_none(self) -> int | None:
        return self.scale if self.numeric == "exact" else None

    @property
    def num(self) -> str:
        return "numeric" if self.numeric == "exact" else "float8"

    def as_json(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "learning_rate": float(self.learning_rate),
            "hidden_activation": self.hidden_activation,
            "output_activation": self.output_activation,
            "loss": self.loss,
            "bias": self.bias,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "epsilon": self.epsilon,
            "l2": self.l2,
            "weight_decay": self.weight_decay,
            "numeric": self.numeric,
            "scale": self.scale,
            "updates_per_statement": self.updates_per_statement,
            "validation_fraction": self.validation_fraction,
            "seed": self.seed,
            "layout": self.layout,
            "kernels": self.kernels,
        }


@dataclass(frozen=True)
class Loaded:
    """A network found in the tables and checked, ready to compile."""

    tables: TableMap
    net: Network
    samples: int
    options: TrainOptions
    largest: dict[str, float] = field(default_factory=dict)  # table label -> largest |value| it holds
    definition: Definition | None = None  # what sqlnet.networks held for it before this command
    held: int = 0  # the samples held out for validation (not counted in `samples`)
    kernels: KernelStatus | None = None  # whether the database has the native kernels (None: not asked)

    @property
    def batches(self) -> int:
        return math.ceil(self.samples / self.options.batch_size) if self.options.batch_size else 1

    def refuse_too_large(self, trace: bool) -> None:
        """Before anything runs: a layout that carries each layer's weights as one array (wide, native) cannot
        hold a layer past PostgreSQL's limit for one value (1 GB), nor the kernels a chunk of activations past
        it; say the estimate and what to do, instead of failing after the statement has started."""
        layout = self.layout(trace)
        if layout not in ("wide", "native"):
            return
        sizes = self.net.sizes
        for k in range(1, len(sizes)):
            weights = sizes[k - 1] * sizes[k]
            if weights * 8 > MAX_VALUE_BYTES:
                raise InputError(
                    f"layer {k} has {sizes[k - 1]} x {sizes[k]} = {weights:,} weights: as one array of the {layout} "
                    f"layout that is {weights * 8 / 2**30:.1f} GB, past PostgreSQL's 1 GB for one value. Train it "
                    f"with --layout long --kernels sql (one row per weight), or make the layer narrower"
                )
        if layout == "native":
            rows = min(CHUNK, self.samples) if not self.options.batch_size else min(CHUNK, self.options.batch_size)
            widest = max(sizes)
            if rows * widest * 8 > MAX_VALUE_BYTES:
                raise InputError(
                    f"a chunk of {rows} samples of a {widest}-node layer is {rows * widest * 8 / 2**30:.1f} GB, past "
                    f"PostgreSQL's 1 GB for one value: use --kernels sql"
                )

    def layout(self, trace: bool) -> str:
        """auto picks wide (fused, fast) unless the trace, exact decimals or the network's width need long;
        the kernels (``kernels``) replace wide or long where the database has them and they cover it."""
        return self.choice(trace)[0]

    def choice(self, trace: bool) -> tuple[str, str]:
        """The layout, and why: the kernels' mode said aloud (--kernels auto picks them where it can)."""
        o = self.options
        not_native = [
            why
            for why, needed in (
                ("--trace keeps every phase as rows per node, which only the SQL writes", trace),
                ("--numeric exact computes in NUMERIC, which only the SQL does", o.numeric == "exact"),
                (f"--layout {o.layout} asks for the SQL layout", o.layout != "auto"),
                (
                    "the held-out samples are scored by the wide SQL layout, which cannot hold this network",
                    bool(self.held) and not wide.fits(self.net),
                ),
            )
            if needed
        ]
        status = self.kernels
        if o.kernels != "sql" and not not_native and status is not None and status.usable:
            return "native", "the phases run in the native kernels (sqlnet_kernels " + (status.installed or "") + ")"
        if o.kernels == "native":
            if not_native:
                raise InputError(f"--kernels native cannot run this: {not_native[0]}; use --kernels auto or sql")
            have = "is not installed in this database" if status is None or status.installed is None else (
                f"is version {status.installed} here, and this sqlnet needs {KERNELS_VERSION}"
            )  # fmt: skip
            raise InputError(
                f"--kernels native: the extension sqlnet_kernels {have}: `sqlnet kernels install` builds and "
                f"installs it (or use --kernels auto, which falls back to SQL)"
            )
        layout = self._sql_layout(trace)
        if o.kernels == "sql":
            return layout, "pure SQL (--kernels sql)"
        if status is None or status.installed is None:
            why = "the database has no native kernels (`sqlnet kernels install` adds them)"
        elif not status.usable:
            why = f"the database's native kernels are version {status.installed}, not {KERNELS_VERSION}"
        else:
            why = not_native[0]
        slow = "" if wide.fits(self.net) else "; a network this wide is slow without them"
        return layout, f"pure SQL: {why}{slow}"

    def _sql_layout(self, trace: bool) -> str:
        o = self.options
        needs_long = [
            why
            for why, needed in (
                ("--trace keeps every phase as rows of its own", trace),
                ("--numeric exact", o.numeric == "exact"),
                (wide.too_wide(self.net) or "", not wide.fits(self.net)),
            )
            if needed
        ]
        if o.layout == "wide" and needs_long:
            raise InputError(f"the wide layout cannot run this: {needs_long[0]}; use --layout long or auto")
        layout = ("long" if needs_long else "wide") if o.layout == "auto" else o.layout
        if o.validation_fraction and layout == "long":
            why = needs_long[0] if needs_long else "--layout long"
            raise InputError(
                f"validation (fraction {o.validation_fraction:g}: --validation-fraction, or the network's own "
                f"split) is evaluated by the wide layout only, and {why} needs the long one; "
                f"--validation-fraction 0 trains on every sample without it"
            )
        return layout

    def trainings(
        self,
        trace_run: int | None = None,
        progress_run: int | None = None,
        first_epoch: int = 1,
        last_epoch: int | None = None,
    ) -> Iterator[Training]:
        """The statements for epochs first_epoch..last_epoch (default: all of them), one at a time."""
        o = self.options
        layout = self.layout(trace_run is not None)
        return (
            Training(
                net=self.net,
                tables=self.tables,
                learning_rate=float(o.learning_rate),
                first=first,
                last=last,
                batch_size=o.batch_size,
                shuffle=o.shuffle,
                optimizer=o.make_optimizer(),
                scale=o.scale_or_none,
                layout=layout,
                trace_run=trace_run,
                progress_run=progress_run,
                validation=(int(o.seed or 0), self.held) if self.held else None,
            )
            for first, last in iter_update_blocks(
                last_epoch or o.epochs,
                self.batches,
                o.updates_per_statement or DEFAULT_UPDATES_PER_STATEMENT[layout],
                first_epoch,
            )
        )

    @property
    def phases(self) -> list[Phase]:
        """The phases of one update, as every statement of this training runs them."""
        return plan(self.net, counts_steps=self.options.optimizer == "adam")


def held_out(options: TrainOptions, samples: int, tables: TableMap) -> int:
    """How many of the samples a training holds out for validation (on every engine), refusing a split
    that leaves none to score or none to train on, and a batch larger than what is trained on."""
    held = 0
    if options.validation_fraction:
        if not tables.has_samples:
            raise InputError(
                "--validation-fraction needs many samples: add a sampleId column to inputs and outputs"
            )
        held = held_out_count(options.validation_fraction, samples)
        if held < 1 or held >= samples:
            raise InputError(
                f"--validation-fraction {options.validation_fraction} holds out {held} of {samples} samples: "
                f"it must leave at least one for validation and one for training"
            )
    if options.batch_size > samples - held:
        raise InputError(
            f"the batch size {options.batch_size} is larger than the data ({samples - held} samples in "
            f"{tables.inputs.label()}): use at most {samples - held}, or 0 for full batch"
        )
    return held


def load_spec(
    *, file: str | None, from_table: str | None, targets: list[str], features: list[str] | None, classes: bool,
    standardize: bool, id_column: str | None, raw_table: str, validation_fraction: float | None, seed: int,
    replace: bool, rows: bool = False,
) -> LoadSpec:  # fmt: skip
    """What `load` is asked to do, checked the same way on every engine: one source (`rows`: Python's, a
    DataFrame's), a valid split."""
    if not rows and (file is None) == (from_table is None):
        raise InputError("load needs exactly one of FILE.csv or --from-table T")
    if validation_fraction is not None:
        check_fraction(validation_fraction)
    return LoadSpec(
        list(targets), features, classes, standardize, id_column, raw_table,
        (float(validation_fraction), int(seed)) if validation_fraction is not None else None, replace,
    )  # fmt: skip


def load_network(
    s: Session, schema: str | None, options: TrainOptions, trace: bool | None = False, redefine: bool = False
) -> Loaded:
    """Discover the tables, check every row, and describe the network they hold, with the functions
    of its stored definition (``Loaded.options`` are the options resolved against it).

    Unless trace is None (only reading), first check that the role may train them (with trace:
    keep its phases), so that a missing grant is named before anything runs."""
    home = s.schema(schema)
    # schema sqlnet is looked at before anything is read from it (the network's definition first)
    trust.check_sqlnet_schemas(s.pg, home, trace=bool(trace))
    definition = read_definition(s, home)
    bias = options.bias or (None if redefine or definition is None else definition.bias)
    tables = discover(s, schema, bias)
    if trace is not None:
        check_privileges(s.pg, tables, trace)
    trust.guard(s.pg, tables, write=trace is not None)
    integer = integer_parameter_columns(tables)
    if integer:
        table, role = integer[0]
        raise InputError(
            f"{table.label(role)} is an integer column: trained weights are fractional and would be rounded. "
            f"Change its type first: ALTER TABLE {table.label()} ALTER COLUMN {table.columns[role]} TYPE "
            f"double precision"
        )
    sizes = check_and_size(s.pg, tables)
    options = options.resolved(definition, redefine)
    assert options.hidden_activation and options.output_activation and options.loss
    net = Network(sizes, options.hidden_activation, options.output_activation, options.loss, tables.bias)
    if net.loss == "cross-entropy":
        check_targets(s.pg, tables, 0.0, 1.0, "cross-entropy")
        if net.output_activation == "softmax":
            check_distributions(s.pg, tables)
    samples = count_samples(s.pg, tables, net.sizes[-1])
    held = held_out(options, samples, tables)
    # the kernels are looked at (and checked: they would run with this role's privileges) unless told not to
    status = kernels.status(s.pg, home) if options.kernels != "sql" else None
    # the batches are cut from the training samples
    loaded = Loaded(tables, net, samples - held, options, largest_values(s.pg, tables), definition, held, status)
    if trace is not None:
        loaded.refuse_too_large(bool(trace))
    return loaded




def floats(p: Params) -> Params:
    return Params(
        [[[float(v) for v in row] for row in m] for m in p.weights],
        [[[float(v) for v in row] for row in m] for m in p.biases],
    )
