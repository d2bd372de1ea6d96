"""The README's offline-first snippet runs against the real server as written, with its
placeholders (address, keys, grant id) replaced by a scene's."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from charter import Client, OfflineAuthorizer
from charter.offline.cache import FILE_NAME
from charter.v1 import api_key_pb2, terms_pb2

from ._scene import Scene

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippets() -> tuple[str, str]:
    """The authorizer's configuration, and the calls underneath."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Offline-first: record keys") : text.index("## Usage and revenue share")]
    configure, calls = re.findall(r"```python\n(.*?)```", section, re.S)
    return str(configure), str(calls)


def test_the_offline_first_snippets_run(scene: Scene, tmp_path: Path) -> None:
    character = scene.staff.create_character(rights_holder_id=scene.rights_holder_id, canonical_name="Snippet Hero")
    scene.staff.opt_in(
        character.id,
        terms_pb2.Terms(
            permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION],
            max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
            daily_quota=500,
        ),
    )
    grant = scene.grant(character.id)
    admin_key = scene.staff.create_api_key(
        display_name="licensee admin", role=api_key_pb2.ROLE_LICENSEE_ADMIN, licensee_id=scene.licensee_id
    )
    configure, calls = _snippets()
    snippet = (
        calls.replace('"charter.internal:50051"', repr(scene.live.target))
        .replace('"key_ladmin….…"', repr(admin_key.secret))
        .replace('"key_gen….…"', repr(scene.generator_key))
        .replace('"grt_…"', repr(grant.id))
    )
    namespace: dict[str, object] = {}

    exec(compile(snippet, "README.md", "exec"), namespace)
    key_id = namespace["key"].key_id  # type: ignore[attr-defined]
    configured = (
        configure.replace('"lk_…"', repr(key_id))
        .replace('"lic_…"', repr(scene.licensee_id))
        .replace('"/var/cache/charter/render-app"', repr(str(tmp_path)))
    )
    with Client(scene.live.target, api_key=scene.generator_key) as client:
        scope: dict[str, object] = {**namespace, "client": client, "timedelta": timedelta}
        exec(compile(configured, "README.md", "exec"), scope)
        offline = scope["offline"]
        assert isinstance(offline, OfflineAuthorizer)
        with offline:
            licensee_id = offline.licensee_id
    assert licensee_id == scene.licensee_id
    assert (tmp_path / FILE_NAME).is_file()

    returned = scene.staff.list_licensee_keys(licensee_id=scene.licensee_id)
    assert [k.key_id for k in returned] == [namespace["key"].key_id]  # type: ignore[attr-defined]
    assert namespace["result"].accepted  # type: ignore[attr-defined]
