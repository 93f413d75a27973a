"""API keys: who is calling, for which tenant.

A key is ``llk_`` and 43 URL-safe characters (``secrets.token_urlsafe(32)``, 256 bits).
The table keeps only the SHA-256 hex digest of the whole key text, with the key's id
(``key_…``, what logs and ``keys revoke --id`` name), tenant, user and roles; the text is
shown once, when the key is made.

A tenant is ``[a-z0-9][a-z0-9-]{0,31}`` (it becomes part of state machine names); a user
is up to 128 letters, digits and ``. _ @ + -`` (an email address fits); a role up to 64
letters, digits and ``. _ -`` (roles travel comma-joined in the authorizer's context).

``load_keys_file`` reads the keys file of ``loopline serve --keys`` and
``loopline keys create --file``: ``keys: [{key, tenant, user, roles, id}]`` (``user``,
``roles`` and ``id`` optional).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopline import ids, store

#: What every key starts with (so a leaked one is recognisable).
KEY_PREFIX = "llk_"
_KEY = re.compile(r"^llk_[A-Za-z0-9_-]{43}$")
_KEY_ID = re.compile(r"^key_[0-9a-z]{26}$")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_ROLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FILE_FIELDS = ("key", "tenant", "user", "roles", "id")


@dataclass(frozen=True)
class Caller:
    """The holder of a valid key, as the authorizer passes it on."""

    tenant: str
    user: str | None
    roles: tuple[str, ...]
    key_id: str


class KeysFileError(ValueError):
    """A keys file that cannot be used: one located line per problem
    (``keys.yaml: keys[2].tenant: …``)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --------------------------------------------------------------------------- names


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text[:60] + "…") if len(text) > 60 else repr(text)


def check_tenant(value: Any) -> str:
    """``value`` when it is a tenant name, else ``ValueError`` saying what one is."""
    if not isinstance(value, str) or not _TENANT.match(value):
        raise ValueError(
            "a tenant is 1 to 32 lower-case letters, digits and hyphens, starting with a "
            f"letter or digit, got {_shown(value)}"
        )
    return value


def check_user(value: Any) -> str | None:
    """``value`` when it is None or a user name, else ``ValueError``."""
    if value is None:
        return None
    if not isinstance(value, str) or not _USER.match(value):
        raise ValueError(
            "a user is 1 to 128 letters, digits and . _ @ + -, starting with a letter or "
            f"digit, got {_shown(value)}"
        )
    return value


def check_role(value: Any) -> str:
    """``value`` when it is a role name, else ``ValueError``."""
    if not isinstance(value, str) or not _ROLE.match(value):
        raise ValueError(
            "a role is 1 to 64 letters, digits and . _ -, starting with a letter or digit, "
            f"got {_shown(value)}"
        )
    return value


def check_roles(values: Iterable[Any]) -> tuple[str, ...]:
    """The roles, each checked, in order, without repeats."""
    out: list[str] = []
    for value in values:
        role = check_role(value)
        if role not in out:
            out.append(role)
    return tuple(out)


def check_key_text(value: Any) -> str:
    """``value`` when it has the shape of a key, else ``ValueError`` (never quoting it)."""
    if not isinstance(value, str) or not _KEY.match(value):
        raise ValueError(f"a key is {KEY_PREFIX} followed by 43 letters, digits, - and _")
    return value


def check_key_id(value: Any) -> str:
    if not isinstance(value, str) or not _KEY_ID.match(value):
        raise ValueError(f"a key id is key_ followed by 26 letters and digits, got {_shown(value)}")
    return value


def new_key() -> str:
    """A new key's text."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key_text: str) -> str:
    """What the table keeps of a key: the SHA-256 hex digest of its whole text."""
    return hashlib.sha256(key_text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- the table


def create_key(
    tenant: str,
    user: str | None = None,
    roles: Iterable[str] = (),
    key: str | None = None,
    *,
    key_id: str | None = None,
) -> tuple[str, str]:
    """Record a key (a new one, or ``key`` when given) for ``tenant``: ``(key text, key
    id)``. ``ValueError`` for a wrong name or key, or a key already recorded."""
    check_tenant(tenant)
    check_user(user)
    role_list = check_roles(roles)
    text = check_key_text(key) if key is not None else new_key()
    kid = check_key_id(key_id) if key_id is not None else ids.new_id("key")
    store.put_api_key(
        key_hash=hash_key(text),
        key_id=kid,
        tenant=tenant,
        user=user,
        roles=list(role_list),
        created_at=ids.now(),
    )
    return text, kid


def revoke_key(key_or_id: str) -> bool:
    """Revoke a key named by its text or its id; False when there is no such key."""
    if key_or_id.startswith(KEY_PREFIX):
        return store.revoke_api_key(hash_key(check_key_text(key_or_id)), ids.now())
    found = store.find_api_key(check_key_id(key_or_id))
    return found is not None and store.revoke_api_key(str(found["key_hash"]), ids.now())


def authenticate(key_text: str) -> Caller | None:
    """The caller holding ``key_text``; None for anything but a known, unrevoked key."""
    if not isinstance(key_text, str) or not _KEY.match(key_text):
        return None  # not a key: no lookup
    record = store.get_api_key(hash_key(key_text))
    if record is None or record.get("revoked_at"):
        return None
    return Caller(
        tenant=str(record["tenant"]),
        user=record.get("user") or None,
        roles=tuple(record.get("roles") or ()),
        key_id=str(record["key_id"]),
    )


# --------------------------------------------------------------------------- keys file


def load_keys_file(path: str | Path, *, missing_ok: bool = False) -> list[dict[str, Any]]:
    """The keys of a keys file: ``[{key, tenant, user, roles, id}]`` (``user`` and ``id``
    None when absent, ``roles`` a list), every entry checked.

    ``KeysFileError`` lists every problem, each located (``keys.yaml: keys[2].tenant:
    …``). With ``missing_ok`` a file that does not exist has no keys.
    """
    import yaml

    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return []
        raise KeysFileError([f"{where}: no such file"]) from None
    except UnicodeDecodeError:
        raise KeysFileError([f"{where}: not UTF-8 text"]) from None
    except OSError as exc:
        raise KeysFileError([f"{where}: cannot read it: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise KeysFileError([f"{where}{at}: not valid YAML: {problem}"]) from None
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) - {"keys"}:
        raise KeysFileError([f"{where}: must be a mapping with one field, keys (a list)"])
    entries = data.get("keys")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise KeysFileError([f"{where}: keys: must be a list of {{key, tenant, user, roles}}"])
    problems: list[str] = []
    out: list[dict[str, Any]] = []
    seen_keys: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for n, entry in enumerate(entries):
        at = f"{where}: keys[{n}]"
        if not isinstance(entry, dict):
            problems.append(f"{at}: must be a mapping {{key, tenant, user, roles}}")
            continue
        for name in sorted(set(map(str, entry)) - set(_FILE_FIELDS)):
            problems.append(f"{at}.{name}: unknown field (known: {', '.join(_FILE_FIELDS)})")
        record: dict[str, Any] = {}
        for name, check, required in (
            ("key", check_key_text, True),
            ("tenant", check_tenant, True),
            ("user", check_user, False),
            ("id", check_key_id, False),
        ):
            value = entry.get(name)
            if value is None and required:
                problems.append(f"{at}.{name}: missing")
                continue
            try:
                record[name] = None if value is None else check(value)
            except ValueError as exc:
                problems.append(f"{at}.{name}: {exc}")
        roles = entry.get("roles")
        if roles is None:
            record["roles"] = []
        elif not isinstance(roles, list):
            problems.append(f"{at}.roles: must be a list of role names")
        else:
            record["roles"] = []
            for i, role in enumerate(roles):
                try:
                    if check_role(role) not in record["roles"]:
                        record["roles"].append(role)
                except ValueError as exc:
                    problems.append(f"{at}.roles[{i}]: {exc}")
        key = record.get("key")
        if key is not None:
            if key in seen_keys:
                problems.append(f"{at}.key: the same key as keys[{seen_keys[key]}]")
            seen_keys.setdefault(key, n)
        kid = record.get("id")
        if kid is not None:
            if kid in seen_ids:
                problems.append(f"{at}.id: the same id as keys[{seen_ids[kid]}]")
            seen_ids.setdefault(kid, n)
        out.append({name: record.get(name) for name in _FILE_FIELDS})
    if problems:
        raise KeysFileError(problems)
    return out


def load_keys_into_table(entries: Iterable[dict[str, Any]]) -> list[Caller]:
    """Record the keys of a keys file (``load_keys_file``) in the table: the callers."""
    out = []
    for entry in entries:
        _, kid = create_key(
            entry["tenant"],
            entry.get("user"),
            entry.get("roles") or (),
            key=entry["key"],
            key_id=entry.get("id"),
        )
        out.append(Caller(entry["tenant"], entry.get("user"), tuple(entry.get("roles") or ()), kid))
    return out
