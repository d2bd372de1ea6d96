"""Screening from the SDK (sync and asyncio) and the CLI against a real server (see `sdk._live`):
keyword sets added, listed and removed, warnings about names that would cry wolf, ambiguous
canonical names, and `charter screen` naming the rule of each detection, at 80 columns and wide."""

# ruff: noqa: RUF001  (look-alike characters are the point)

from __future__ import annotations

import asyncio
import json
import random
import uuid
import warnings

import charter
from charter import AsyncClient, Client
from charter.cli._app import app
from sdk._live import Live  # tests/ is on sys.path: pytest's rootdir-relative layout
from typer.testing import Result

from ._readable import ReadableRunner


def _invoke(runner: ReadableRunner, live: Live, *args: str) -> Result:
    return runner.invoke(app, ["--target", live.target, "--api-key", live.admin, *args])


def _holder(admin: Client) -> str:
    return admin.create_rights_holder(display_name=f"Studio {uuid.uuid4().hex[:8]}", contact_email="r@s.example").id


def test_keyword_sets_from_the_sdk_are_screened_as_descriptions(live: Live, admin: Client) -> None:
    marker = uuid.uuid4().hex[:8]
    character = admin.create_character(rights_holder_id=_holder(admin), canonical_name=f"Mario {marker}")
    plumber = charter.keyword_set("plumber", (f"plumber{marker}", "配管工"), ("videogame", "video game"))

    added = admin.add_keyword_set(character.id, plumber)
    replaced = admin.add_keyword_set(character.id, charter.keyword_set("plumber", f"plumber{marker}", "pipes"))
    live.server.services.screen.refresh_now()
    found = [d for d in admin.screen_prompt(f"pipes fixed by a plumber{marker}") if d.character_id == character.id]
    removed = admin.remove_keyword_set(character.id, "plumber")
    unchanged = admin.remove_keyword_set(character.id, "plumber")

    assert [(k.name, len(k.keywords)) for k in added.keyword_sets] == [("plumber", 2)]
    assert [list(k.keywords[1].variants) for k in replaced.keyword_sets] == [["pipes"]]
    assert [(d.rule, d.keyword_set, d.described) for d in found] == [
        (charter.DetectionRule.DESCRIPTION, "plumber", True)
    ]
    assert list(removed.keyword_sets) == list(unchanged.keyword_sets) == []


def test_the_async_client_mirrors_keyword_sets_and_warnings(live: Live) -> None:
    async def run() -> tuple[list[str], list[str], list[charter.NameWarning]]:
        async with AsyncClient(live.target, api_key=live.admin) as client:
            holder = await client.create_rights_holder(
                display_name=f"Studio {uuid.uuid4().hex[:8]}", contact_email="r@s.example"
            )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                character = await client.create_character(rights_holder_id=holder.id, canonical_name="Lo")
            added = await client.add_keyword_set(character.id, charter.keyword_set("set", "aa1", "bb2"))
            removed = await client.remove_keyword_set(character.id, "set")
            named = [w.message for w in caught if isinstance(w.message, charter.NameWarning)]
            return [k.name for k in added.keyword_sets], [k.name for k in removed.keyword_sets], named

    added, removed, named = asyncio.run(run())
    assert (added, removed) == (["set"], [])
    assert [(w.field, w.name, w.kind) for w in named] == [("character.canonical_name", "Lo", "TOO_SHORT")]


def test_the_sdk_issues_a_name_warning_and_none_for_an_ambiguous_name(admin: Client) -> None:
    holder = _holder(admin)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        common = admin.create_character(rights_holder_id=holder, canonical_name="Garden")
        admin.update_character(common.id, canonical_name_ambiguous=True)
    found = [w.message for w in caught if isinstance(w.message, charter.NameWarning)]
    assert [(w.field, w.name, w.kind, w.language) for w in found] == [
        ("character.canonical_name", "Garden", "COMMON_WORD", "en")
    ]


def test_the_cli_adds_lists_and_removes_keyword_sets(runner: ReadableRunner, live: Live, admin: Client) -> None:
    character = admin.create_character(rights_holder_id=_holder(admin), canonical_name=f"Miku {uuid.uuid4().hex[:8]}")
    add = _invoke(
        runner,
        live,
        "keywords",
        "add",
        character.id,
        "vocaloid twin tails",
        "--keyword",
        "twin tails|twintails|ツインテール",
        "--keyword",
        "vocaloid",
    )
    listed = _invoke(runner, live, "--json", "keywords", "list", character.id)
    remove = _invoke(runner, live, "keywords", "remove", character.id, "vocaloid twin tails")
    missing = _invoke(runner, live, "keywords", "remove", character.id, "vocaloid twin tails")

    assert add.exit_code == 0, add.output
    assert "vocaloid twin tails" in add.stdout and "ツインテール" in add.stdout
    assert all(len(line) <= runner.width for line in add.stdout.splitlines())
    assert json.loads(listed.stdout) == [
        {
            "name": "vocaloid twin tails",
            "keywords": [{"variants": ["twin tails", "twintails", "ツインテール"]}, {"variants": ["vocaloid"]}],
        }
    ]
    assert remove.exit_code == 0, remove.output
    assert "0 sets" in remove.stdout
    assert missing.exit_code == 1


def test_the_cli_prints_name_warnings_and_marks_a_canonical_name_ambiguous(
    runner: ReadableRunner, live: Live, admin: Client
) -> None:
    holder = _holder(admin)
    # Three letters (too short). Names are unique across rights holders and three letters give few
    # of them, so another name is tried when one is taken (by an earlier run on the same database).
    for _ in range(20):
        name = "Q" + "".join(random.choice("bcdfghjklmnpqrstvwxz") for _ in range(2))
        created = _invoke(
            runner, live, "--json", "characters", "create", "--rights-holder", holder, "--canonical-name", name
        )
        if created.exit_code == 0:
            break
    character_id = json.loads(created.stdout)["id"]
    marked = _invoke(runner, live, "--json", "characters", "update", character_id, "--ambiguous-name")

    assert created.exit_code == 0, created.output
    assert f"warning: character.canonical_name: '{name}' too short" in created.stderr
    assert marked.exit_code == 0, marked.output
    assert json.loads(marked.stdout)["canonicalNameAmbiguous"] is True
    assert "warning" not in marked.stderr


def test_charter_screen_names_the_rule_of_each_detection(runner: ReadableRunner, live: Live, admin: Client) -> None:
    marker = "".join(c for c in uuid.uuid4().hex if c.isalpha())[:6] or "abcdef"
    character = admin.create_character(rights_holder_id=_holder(admin), canonical_name=f"Hatsune {marker}")
    live.server.services.screen.refresh_now()
    prompt = f"#Hatsune{marker} and Нatsune {marker}"

    table = _invoke(runner, live, "screen", prompt)
    as_json = _invoke(runner, live, "--json", "screen", prompt)

    assert table.exit_code == 0, table.output
    assert "hashtag" in table.stdout and "skeleton" in table.stdout
    assert all(len(line) <= runner.width for line in table.stdout.splitlines())
    mine = [d for d in json.loads(as_json.stdout) if d["characterId"] == character.id]
    assert [(d["rule"], d["kind"], d["text"]) for d in mine] == [
        ("RULE_HASHTAG", "KIND_NAME", f"Hatsune{marker}"),
        ("RULE_SKELETON", "KIND_NAME", f"Нatsune {marker}"),
    ]
