"""API keys: made, checked by hash, revoked; names validated; the keys file read."""

from __future__ import annotations

from pathlib import Path

import pytest
from loopline import store
from loopline.service import keys
from loopline.service.keys import Caller, KeysFileError

from tests.tasktable import tasks_table

__all__ = ["tasks_table"]


def test_a_new_key_authenticates_as_its_tenant_user_and_roles(tasks_table: str) -> None:
    text, key_id = keys.create_key("acme", "ann@example.com", ["admin", "reviewer", "admin"])

    assert text.startswith("llk_") and len(text) == 4 + 43
    assert key_id.startswith("key_")
    assert keys.authenticate(text) == Caller(
        "acme", "ann@example.com", ("admin", "reviewer"), key_id
    )


def test_only_the_keys_hash_is_stored(tasks_table: str) -> None:
    text, key_id = keys.create_key("acme")
    record = store.find_api_key(key_id)
    assert record is not None
    assert record["key_hash"] == keys.hash_key(text)
    assert text not in repr(record)


def test_unknown_malformed_and_revoked_keys_do_not_authenticate(tasks_table: str) -> None:
    text, key_id = keys.create_key("acme")
    other, _ = keys.create_key("acme")

    assert keys.authenticate(keys.new_key()) is None
    assert keys.authenticate("llk_short") is None
    assert keys.authenticate("") is None
    assert keys.revoke_key(text) is True
    assert keys.authenticate(text) is None
    assert keys.revoke_key(key_id) is True  # by id too, still revoked
    assert keys.authenticate(other) is not None


def test_revoke_by_id_and_of_a_missing_key(tasks_table: str) -> None:
    text, key_id = keys.create_key("acme", roles=["ops"])
    assert keys.revoke_key(key_id) is True
    assert keys.authenticate(text) is None
    assert keys.revoke_key(keys.new_key()) is False
    assert keys.revoke_key("key_" + "0" * 26) is False


def test_a_given_key_is_recorded_once(tasks_table: str) -> None:
    text = keys.new_key()
    assert keys.create_key("acme", key=text)[0] == text
    with pytest.raises(ValueError, match="already recorded"):
        keys.create_key("acme", key=text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tenant": "Acme"}, "a tenant is 1 to 32 lower-case letters"),
        ({"tenant": "-acme"}, "a tenant is"),
        ({"tenant": "a" * 33}, "a tenant is"),
        ({"tenant": "acme", "user": "ann smith"}, "a user is"),
        ({"tenant": "acme", "roles": ["ad,min"]}, "a role is"),
        ({"tenant": "acme", "key": "sk_123"}, "a key is llk_ followed by 43"),
    ],
)
def test_wrong_names_are_refused_with_what_is_needed(
    tasks_table: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        keys.create_key(**kwargs)  # type: ignore[arg-type]


def test_a_keys_file_is_read_and_loaded_into_the_table(tmp_path: Path, tasks_table: str) -> None:
    a, b = keys.new_key(), keys.new_key()
    path = tmp_path / "keys.yaml"
    path.write_text(
        f"keys:\n  - {{key: {a}, tenant: acme, user: ann, roles: [admin]}}\n"
        f"  - {{key: {b}, tenant: globex}}\n"
    )

    entries = keys.load_keys_file(path)
    callers = keys.load_keys_into_table(entries)

    assert [(e["tenant"], e["user"], e["roles"]) for e in entries] == [
        ("acme", "ann", ["admin"]),
        ("globex", None, []),
    ]
    assert [c.tenant for c in callers] == ["acme", "globex"]
    assert keys.authenticate(a) == callers[0]
    assert keys.authenticate(b) == callers[1]


def test_every_problem_of_a_keys_file_is_located(tmp_path: Path) -> None:
    a = keys.new_key()
    path = tmp_path / "keys.yaml"
    path.write_text(
        "keys:\n"
        f"  - {{key: {a}, tenant: acme}}\n"
        "  - {key: nope, tenant: acme}\n"
        "  - {key: " + a + ", tenant: Acme, roles: [ok, 'no way'], colour: red}\n"
        "  - just text\n"
        "  - {tenant: acme}\n"
    )

    with pytest.raises(KeysFileError) as caught:
        keys.load_keys_file(path)

    where = str(path)
    assert caught.value.problems == [
        f"{where}: keys[1].key: a key is llk_ followed by 43 letters, digits, - and _",
        f"{where}: keys[2].colour: unknown field (known: key, tenant, user, roles, id)",
        f"{where}: keys[2].tenant: a tenant is 1 to 32 lower-case letters, digits and "
        "hyphens, starting with a letter or digit, got 'Acme'",
        f"{where}: keys[2].roles[1]: a role is 1 to 64 letters, digits and . _ -, starting "
        "with a letter or digit, got 'no way'",
        f"{where}: keys[2].key: the same key as keys[0]",
        f"{where}: keys[3]: must be a mapping {{key, tenant, user, roles}}",
        f"{where}: keys[4].key: missing",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keys: [1, 2\n", ":2:1: not valid YAML"),
        ("- a\n", "must be a mapping with one field, keys"),
        ("keys: {a: 1}\n", "keys: must be a list"),
    ],
)
def test_a_keys_file_of_the_wrong_shape_says_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(KeysFileError, match=message):
        keys.load_keys_file(path)


def test_a_missing_keys_file(tmp_path: Path) -> None:
    with pytest.raises(KeysFileError, match="no such file"):
        keys.load_keys_file(tmp_path / "nope.yaml")
    assert keys.load_keys_file(tmp_path / "nope.yaml", missing_ok=True) == []
