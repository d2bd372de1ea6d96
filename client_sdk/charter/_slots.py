"""Setting the fields of a frozen, slotted dataclass from a written-out ``__init__``.

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``; the
slots' own descriptors set them at about half the cost. The SDK's small value types built on hot
paths (a context, an evaluation, a verification, a decision) write their ``__init__`` out with
these setters; the class stays a frozen dataclass (its equality, hash, repr and
``dataclasses.replace`` are the generated ones, and assigning a field still raises).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

Setter = Callable[[Any, Any], None]


def slot_setters(cls: type) -> tuple[Setter, ...]:
    """The ``__set__`` of each field's slot descriptor of the dataclass ``cls``, in field order."""
    return tuple(cls.__dict__[field.name].__set__ for field in dataclasses.fields(cls))
