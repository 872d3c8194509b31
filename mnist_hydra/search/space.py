"""A search space from Hydra's sweep syntax, as `hydra.sweeper.params` and the command line write it.

    choice(16, 32, 64)  or  16,32,64     one of these values (categorical)
    range(1, 4)                          the integers 1, 2, 3: Python's and Hydra's half-open range
    range(0.1, 0.5, 0.1)                 0.1, 0.2, 0.3, 0.4 (a stepped float)
    interval(0.0, 0.6)                   any float from 0.0 to 0.6
    tag(log, interval(1e-4, 1e-2))       the same, sampled evenly in its logarithm
    int(interval(8, 256))                any integer from 8 to 256 (Hydra's cast; also
                                         tag(log, int(interval(8, 256))), or tag(int, ...))
    0.3                                  a plain value: the same in every trial
    ~key, ~key=value                     a deletion, passed to every trial as written

hydra-optuna-sweeper read `range(1, 4)` as the integers 1 to 4 *inclusive*, unlike Hydra's own
sweeper; here a range means what it means everywhere else in Hydra (README: Search).
"""

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from mnist_hydra.errors import ConfigError


def search_space(arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, str], list[str]]:
    """The swept parameters (name: distribution), the fixed ones (name: value as written), and
    the deletions (`~key`), which every trial's job gets as they are."""
    try:
        overrides = OverridesParser.create().parse_overrides(arguments)
    except Exception as error:  # Hydra's OverrideParseException, several lines long
        raise ConfigError(f"the search space cannot be read: {str(error).splitlines()[0]}") from None
    swept, fixed, deletions = {}, {}, []
    for override in overrides:
        name = override.get_key_element()
        if override.is_delete():
            deletions.append(override.input_line)
        elif override.is_sweep_override():
            swept[name] = distribution(override)
        else:
            fixed[name] = override.get_value_element_as_str()
    for name in fixed.keys() & swept.keys():  # a value on the command line wins over the preset's range
        del swept[name]
    return swept, fixed, deletions


def distribution(override: Override) -> BaseDistribution:
    value, name = override.value(), override.get_key_element()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        return _range(name, value)
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if "int" in value.tags or (isinstance(value.start, int) and isinstance(value.end, int)):  # int(...)
            return IntDistribution(int(value.start), int(value.end), log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ConfigError(f"{name}: {override.input_line} is not a search space the optuna sweeper takes")


def _range(name: str, value: RangeSweep) -> BaseDistribution:
    """range(start, stop, step): start, start + step, ... below stop, as Python counts."""
    start, stop, step = value.start, value.stop, value.step
    count = len(range(start, stop, step)) if all(isinstance(x, int) for x in (start, stop, step)) else None
    if count is None:
        count = max(0, int((stop - start) / step - 1e-9) + 1)
    if count == 0 or step <= 0:
        raise ConfigError(f"{name}: range({start}, {stop}, {step}) holds no value")
    last = start + (count - 1) * step
    if isinstance(last, int):
        return IntDistribution(start, last, step=step)
    return FloatDistribution(float(start), round(float(last), 12), step=float(step))


def grid(space: dict[str, BaseDistribution]) -> dict[str, list]:
    """Every value of each parameter, for Optuna's grid sampler (which takes only finite lists)."""
    values = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[name] = list(dist.choices)
        elif dist.step is not None:
            count = round((dist.high - dist.low) / dist.step) + 1
            values[name] = [dist.low + i * dist.step for i in range(count)]
        else:
            raise ConfigError(
                f"sampler=grid needs a finite set of values for {name}: use choice(...) or range(...), "
                "not an interval"
            )
    return values


def as_override(name: str, value: Any) -> str:
    """A trial's value as the job's override (a float keeps every digit Optuna gave it)."""
    return f"{name}={'null' if value is None else value}"
