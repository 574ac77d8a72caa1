"""What each engine can do, as data: an option that needs a capability the engine lacks is refused in one
place, with one message that names the capability (the command line and the operations both ask here).

PostgreSQL has every capability; Apache Spark lacks those below. A capability is the options that need it,
each with when it counts as used (``--numeric float`` is the default, not exact decimals).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


def _given(value: object) -> bool:
    return value not in (None, False, (), "", 0)


@dataclass(frozen=True)
class Capability:
    name: str  # as a message says it: "checkpoints"
    options: tuple[str, ...]  # the options (by their keyword names) that need it
    used: Callable[[object], bool] = _given  # when an option's value asks for it


CAPABILITIES = (
    Capability("a PostgreSQL database", ("database_url",)),
    Capability("schemas", ("schema", "table_schema", "into_schema", "from_schema")),
    Capability("phase tables (the trace)", ("trace",)),
    Capability("checkpoints and resuming", ("checkpoint_every", "resume")),
    Capability("a deadline for the whole command", ("timeout",)),
    Capability("queueing behind another trainer", ("wait",)),
    Capability("keeping a diverging training's weights", ("allow_divergence",)),
    Capability("a validation split", ("validation_fraction",), lambda v: bool(v)),
    Capability("exact decimals", ("numeric",), lambda v: v == "exact"),
    Capability("the long layout", ("layout",), lambda v: v == "long"),
    Capability("the native kernels (sqlnet_kernels)", ("kernels",), lambda v: v == "native"),
    Capability("predicting from a CSV file", ("csv",)),
    Capability("exported SQL functions", ("function",)),
    Capability("restoring a run's weights (sqlnet restore)", ()),
)
RESTORE = "restoring a run's weights (sqlnet restore)"

LACKS = {
    "postgresql": frozenset[str](),
    "spark": frozenset(c.name for c in CAPABILITIES)
    - {"a deadline for the whole command", "a validation split", "checkpoints and resuming", "phase tables (the trace)"},
}
ENGINE_NAMES = {"postgresql": "PostgreSQL", "spark": "Spark"}


def refusal(engine: str, given: Mapping[str, object]) -> str | None:
    """The message for the first option in `given` (keyword name -> value) that needs a capability the engine
    lacks; None when it has them all."""
    for capability in CAPABILITIES:
        if capability.name not in LACKS[engine]:
            continue
        for option in capability.options:
            if option in given and capability.used(given[option]):
                value = given[option]
                flag = "--" + option.replace("_", "-")
                if capability.used is not _given:  # the value is what asks for it: --numeric exact
                    flag += f" {value}"
                return (
                    f"{flag} needs {capability.name}, which the {ENGINE_NAMES[engine]} engine does not have: "
                    f"leave {flag} out (PostgreSQL has it)"
                )
    return None
