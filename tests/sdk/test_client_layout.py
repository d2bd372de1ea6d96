"""Where the clients' calls come from: written once in `charter._async`, generated into `charter._sync`.

`test_public_surface` pins both clients' methods through `vars(cls)`; since the calls live in the
per-area classes the clients inherit from, its checks run here again over everything a user of
the classes sees.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import charter
import pytest
from charter import AsyncClient, Client

from . import test_public_surface as surface

MAX_LINES = 600
SDK = Path(charter.__file__).parent


def _inherited_public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(getattr(cls, name))
        for name in dir(cls)
        if not name.startswith("_") and callable(getattr(cls, name))
    }


@pytest.mark.parametrize(
    "check",
    [
        surface.test_both_clients_have_the_same_methods_and_parameters,
        surface.test_client_methods_are_documented_with_args_returns_and_raises,
        surface.test_async_client_methods_are_coroutines_and_listings_async_iterators,
    ],
    ids=lambda check: check.__name__,
)
def test_the_surface_checks_hold_for_the_inherited_calls(
    monkeypatch: pytest.MonkeyPatch, check: Callable[[], None]
) -> None:
    monkeypatch.setattr(surface, "_public_methods", _inherited_public_methods)

    check()

    assert len(_inherited_public_methods(Client)) > 40  # every call is seen, not only close()


def test_every_call_is_written_in_charter_async_and_generated_into_charter_sync() -> None:
    for name in _inherited_public_methods(AsyncClient):
        source = getattr(AsyncClient, name).__module__
        generated = getattr(Client, name).__module__

        assert source.startswith("charter._async."), name
        assert generated == source.replace("charter._async.", "charter._sync.", 1), name


def test_no_hand_written_client_module_is_longer_than_600_lines() -> None:
    modules = [*(SDK / "_async").glob("*.py"), SDK / "client.py", SDK / "aio.py", SDK / "_requests.py"]
    modules += [SDK / "_io_async.py", SDK / "_io_sync.py"]
    lengths = {path.relative_to(SDK).as_posix(): len(path.read_text(encoding="utf-8").splitlines()) for path in modules}

    assert {name: length for name, length in lengths.items() if length > MAX_LINES} == {}
    assert len(lengths) > 10
