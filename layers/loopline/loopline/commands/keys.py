"""``loopline keys create|revoke``: API keys, in a keys file or in a deployed stack.

    loopline keys create --tenant T [--user U] [--role R]... (--file FILE | --stack NAME)
    loopline keys revoke (KEY | --id KEY_ID) (--file FILE | --stack NAME)

``create`` prints the new key once, alone on standard output (so ``$(loopline keys
create …)`` captures it); what it made goes to standard error. ``--file`` edits the keys
file that ``loopline serve --keys`` reads (made with mode 0600 when new; rewritten whole,
so comments in it are not kept); ``--stack NAME [--region R]`` finds the stack's table
from its ``TasksTableName`` output and writes there. Every failure is one ``error: …``
line and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
TABLE_OUTPUT = "TasksTableName"


class KeysCommandError(Exception):
    """A failure of the command: printed as ``error: …``, exit 2."""


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def add_parser(sub: Any) -> None:
    """Add ``keys`` to the ``loopline`` command's subcommands."""
    k = sub.add_parser("keys", help="create and revoke API keys of the task service")
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    def where(p: argparse.ArgumentParser) -> None:
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--file", help="a keys file, as loopline serve --keys reads")
        target.add_argument("--stack", help="a deployed stack's name (its TasksTableName)")
        p.add_argument("--region", help="the stack's AWS region (default: the environment's)")

    c = ksub.add_parser("create", help="make a key and print it once")
    c.add_argument("--tenant", required=True)
    c.add_argument("--user", help="the user the key acts as")
    c.add_argument("--role", action="append", default=[], help="a role of the key (repeat)")
    where(c)
    c.set_defaults(func=cmd_keys)

    r = ksub.add_parser("revoke", help="revoke a key (by its text or its id)")
    which = r.add_mutually_exclusive_group(required=True)
    which.add_argument("key", nargs="?", help="the key's text")
    which.add_argument("--id", dest="key_id", help="the key's id (key_…)")
    where(r)
    r.set_defaults(func=cmd_keys)


def cmd_keys(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from loopline.config_error import ConfigError

    try:
        if args.region and not args.stack:
            raise KeysCommandError("--region goes with --stack")
        if args.keys_command == "create":
            return _create(args)
        return _revoke(args)
    except (KeysCommandError, ValueError, ConfigError) as exc:
        for line in str(exc).splitlines() or [""]:
            _err(f"error: {line}")
        return EXIT_INVALID
    except (ClientError, BotoCoreError) as exc:
        _err(f"error: AWS refused the call: {_aws_message(exc)}")
        return EXIT_INVALID


def _aws_message(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc)


def _describe(roles: list[str], tenant: str, user: str | None, key_id: str) -> str:
    who = f"{tenant}/{user}" if user else tenant
    extra = f" with roles {', '.join(roles)}" if roles else ""
    return f"key {key_id} for {who}{extra}"


def _option(name: str, check: Any, value: Any) -> Any:
    """``check(value)``, its ``ValueError`` naming the option."""
    try:
        return check(value)
    except ValueError as exc:
        raise KeysCommandError(f"{name}: {exc}") from None


# --------------------------------------------------------------------------- create


def _create(args: argparse.Namespace) -> int:
    from loopline import ids
    from loopline.service import keys

    _option("--tenant", keys.check_tenant, args.tenant)
    _option("--user", keys.check_user, args.user)
    roles = list(_option("--role", keys.check_roles, args.role))
    if args.file:
        entries = keys.load_keys_file(args.file, missing_ok=True)
        text, key_id = keys.new_key(), ids.new_id("key")
        entries.append(
            {"key": text, "tenant": args.tenant, "user": args.user, "roles": roles, "id": key_id}
        )
        _write_keys_file(Path(args.file), entries)
        place = args.file
    else:
        place = _use_stack(args.stack, args.region)
        text, key_id = keys.create_key(args.tenant, args.user, roles)
    print(text, flush=True)
    _err(f"created {_describe(roles, args.tenant, args.user, key_id)} in {place}")
    _err("the key is shown only now: keep it")
    return EXIT_OK


# --------------------------------------------------------------------------- revoke


def _revoke(args: argparse.Namespace) -> int:
    from loopline.service import keys

    named = args.key if args.key else args.key_id
    if args.key:
        _option("KEY", keys.check_key_text, args.key)
        shown = "the key"
    else:
        _option("--id", keys.check_key_id, args.key_id)
        shown = f"key {args.key_id}"
    if args.file:
        entries = keys.load_keys_file(args.file)
        field = "key" if args.key else "id"
        kept = [e for e in entries if e[field] != named]
        if len(kept) == len(entries):
            raise KeysCommandError(f"{args.file}: no such key")
        _write_keys_file(Path(args.file), kept)
        _err(f"revoked {shown} (removed from {args.file})")
        return EXIT_OK
    place = _use_stack(args.stack, args.region)
    if not keys.revoke_key(named):
        raise KeysCommandError(f"{place}: no such key")
    _err(f"revoked {shown} in {place}")
    return EXIT_OK


# --------------------------------------------------------------------------- places


def _write_keys_file(path: Path, entries: list[dict[str, Any]]) -> None:
    """Write the keys file whole, atomically; a new file is readable by its owner only."""
    import yaml

    records = []
    for entry in entries:
        record: dict[str, Any] = {"key": entry["key"], "tenant": entry["tenant"]}
        if entry.get("user") is not None:
            record["user"] = entry["user"]
        record["roles"] = list(entry.get("roles") or [])
        if entry.get("id") is not None:
            record["id"] = entry["id"]
        records.append(record)
    text = yaml.safe_dump({"keys": records}, sort_keys=False, allow_unicode=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    directory = path.parent if str(path.parent) else Path(".")
    import tempfile  # imported on use: the other commands do not need it

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise KeysCommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise KeysCommandError(f"cannot write {path}: {exc.strerror or exc}") from None


def _use_stack(stack: str, region: str | None) -> str:
    """Point the store at the table of ``stack`` (its ``TasksTableName`` output): where."""
    import boto3
    from botocore.exceptions import ClientError

    from loopline import aws
    from loopline.settings import settings

    if region:
        os.environ["AWS_DEFAULT_REGION"] = region  # the table's client follows
    try:
        found = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" in _aws_message(exc):
            raise KeysCommandError(f"no stack named {stack}") from None
        raise
    outputs = {o.get("OutputKey"): o.get("OutputValue") for o in found[0].get("Outputs") or []}
    table = outputs.get(TABLE_OUTPUT)
    if not table:
        raise KeysCommandError(
            f"stack {stack} has no {TABLE_OUTPUT} output: is it a Loopline stack?"
        )
    os.environ["LOOPLINE_TABLE"] = str(table)
    settings.cache_clear()
    aws.reset()
    return f"stack {stack} (table {table})"
