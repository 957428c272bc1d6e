"""What the schema's annotations ask of pydantic (config/loader.py reads them); importing this imports no pydantic.

Ranges and lengths are annotated_types' (Ge, Interval, Len...), which pydantic applies natively; the markers here
add a pattern, a field's own check and a tuple given as a TOML array. Every section is a frozen stdlib dataclass
derived from `Section`: unknown keys refused, no value coerced across types; a check across its fields is its
`__post_init__` (a ValueError there names the section, as a validator of the whole section would).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Section:
    """Base of every section: unknown keys are errors; values are validated strictly ("5" is no 5, 1 no true)."""

    __pydantic_config__ = {"extra": "forbid", "strict": True}  # pydantic's ConfigDict is a TypedDict: a dict

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        schema = handler(source)
        if schema.get("type") != "dataclass":
            raise TypeError(f"{cls.__name__}: expected pydantic's dataclass schema, got {schema.get('type')!r}")
        # a strict dataclass schema demands an instance; the section itself comes as a TOML table (a dict),
        # its values stay strict (the config's strict applies to every field's own schema)
        return {**schema, "strict": False}


@dataclass(frozen=True)
class Pattern:
    """A string must match this regular expression."""

    regex: str

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return {**_expect(handler(source), "str", self), "pattern": self.regex}


@dataclass(frozen=True)
class Check:
    """A field's own check after its type and bounds: `test(value)` returns the value or raises ValueError; with
    `earlier`, `test(value, earlier)` also reads the section's fields declared before it that passed (a dict)."""

    test: Callable[..., Any]
    earlier: bool = False

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema  # only where pydantic validates

        if self.earlier:
            return core_schema.with_info_after_validator_function(lambda v, info: self.test(v, info.data),
                                                                  handler(source))
        return core_schema.no_info_after_validator_function(self.test, handler(source))


@dataclass(frozen=True)
class FromArray:
    """A tuple given as a TOML array (a list): the tuple itself not strict, its items as strict as any value."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return {**_expect(handler(source), "tuple", self), "strict": False}


def _expect(schema: Any, kind: str, marker: object) -> Any:
    """The schema a marker adds its key to, if it is of the kind the key means something on; a marker written
    where it would be silently ignored (Annotated[str | None, Pattern(...)] instead of Annotated[str, ...] | None)
    stops the schema from being built at all."""
    if schema.get("type") != kind:
        raise TypeError(f"{marker!r} applies to a {kind}, not to a {schema.get('type')!r} schema; put it inside the "
                        f"Optional: Annotated[{kind}, ...] | None")
    return schema
