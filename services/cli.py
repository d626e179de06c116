"""The `switchyard` command: run the gateway, manage keys."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from datetime import timedelta

import orjson

from services.config import CONFIG_PATH_ENV, ConfigError, Settings, env_name, load_settings, put_setting, setting_field
from services.telemetry.access_log import configure as configure_logging


# Flags that set a setting: flag -> the setting's path. They beat the environment and the file
# (docs/configuration.md lists them beside every setting).
GLOBAL_SETTING_FLAGS: dict[str, tuple[str, ...]] = {
    "--database-url": ("database_url",),
    "--redis-url": ("redis_url",),
}
SERVE_SETTING_FLAGS: dict[str, tuple[str, ...]] = {
    "--host": ("host",),
    "--port": ("port",),
    "--grpc-port": ("grpc_port",),
    "--grpc-target": ("grpc_target",),
    "--metrics-port": ("metrics", "port"),
}
SETTING_FLAGS = {**GLOBAL_SETTING_FLAGS, **SERVE_SETTING_FLAGS}


def _flag_dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _add_setting_flags(parser: argparse.ArgumentParser, flags: dict[str, tuple[str, ...]]) -> None:
    for flag, path in flags.items():
        field = setting_field(path)
        default = "unset" if field.default is None else field.default
        # argparse %-formats help texts.
        text = f"{field.description} Default: {default}; env {env_name(path)}.".replace("%", "%%")
        parser.add_argument(flag, dest=_flag_dest(flag), metavar=path[-1].upper(), help=text)


def _settings(args) -> Settings:
    """The settings for this command: its flags over the environment over the config file."""
    overrides: dict = {}
    for flag, path in SETTING_FLAGS.items():
        if (value := getattr(args, _flag_dest(flag), None)) is not None:
            put_setting(overrides, path, value)
    names = {".".join(path): flag for flag, path in SETTING_FLAGS.items()}
    return load_settings(args.config, flag_names=names, **overrides)


def _serve(args, settings: Settings) -> int:
    from services.process import run_forever

    def ready(process) -> None:
        lines = []
        if process.admin_key:
            lines += [
                "",
                "  First start: an admin API key was created. It is shown only this once:",
                f"    {process.admin_key}",
                "",
            ]
        if process.http_port is not None:
            lines.append(f"Switchyard HTTP on http://{settings.host}:{process.http_port}")
        if process.grpc_port is not None:
            lines.append(f"Switchyard gRPC on {settings.grpc_host}:{process.grpc_port}")
        if process.metrics_port is not None:
            lines.append(f"Switchyard metrics on http://{settings.metrics.host}:{process.metrics_port}/metrics")
        lines.append(f"Switchyard ready ({args.mode}); database {_redact(settings.database_url)}"
                     + (", redis on" if settings.redis_url else ", in-process limits"))
        print("\n".join(lines), flush=True)

    run_forever(settings, args.mode, ready)
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


async def _with_store(settings: Settings, work):
    from services.runtime import ServiceRuntime

    runtime = ServiceRuntime(settings)
    await runtime.open_storage()
    try:
        return await work(runtime.store, runtime.settings)
    finally:
        await runtime.engine.dispose()


def _key_json(record, secret: str | None = None) -> dict:
    from google.protobuf import json_format

    from services.auth.servicer import key_to_proto

    data = json_format.MessageToDict(key_to_proto(record), preserving_proto_field_name=True)
    out = {"id": record.id}
    if secret:
        out["key"] = secret
    out.update({k: v for k, v in data.items() if k != "id"})
    return out


def _usd_arg(text: str | None, flag: str) -> int | None:
    from services.billing.ledger import parse_usd

    if text is None:
        return None
    try:
        amount = parse_usd(text)
    except ValueError as exc:
        raise SystemExit(f"error: {flag}: {exc}") from None
    if amount < 0:
        raise SystemExit(f"error: {flag} cannot be negative")
    return amount


def _keys_create(args, settings: Settings) -> int:
    from services.auth.servicer import validate_new_key
    from services.auth.store import DEFAULT_ACCOUNT_ID
    from services.errors import ServiceError
    from services.storage.database import utcnow

    spend_cap = _usd_arg(args.spend_cap_usd, "--spend-cap-usd")

    async def work(store, settings):
        expires_at = utcnow() + timedelta(days=args.expires_in_days) if args.expires_in_days else None
        validate_new_key(args.name, args.scope, args.rate_limit or 0, expires_at, args.model)
        if args.account and not await store.account_exists(args.account):
            raise ServiceError(Reason.ERROR_REASON_NOT_FOUND, f"no account {args.account!r}; create it with `switchyard accounts create`")
        return await store.create_key(
            account_id=args.account or DEFAULT_ACCOUNT_ID,
            name=args.name,
            scopes=args.scope,
            rate_limit_per_minute=args.rate_limit or 0,  # 0: the surface defaults
            expires_at=expires_at,
            allowed_models=args.model,
            spend_cap_nano=spend_cap,
        )

    from services.errors import Reason

    try:
        record, secret = asyncio.run(_with_store(settings, work))
    except ServiceError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1 if err.info.name == "NOT_FOUND" else 2
    if args.json:
        print(orjson.dumps(_key_json(record, secret)).decode())
    else:
        print(f"Created key {record.id} ({record.name}) with scopes: {record.scopes}")
        limit = f"{record.rate_limit_per_minute} requests/minute" if record.rate_limit_per_minute else "the surface defaults"
        print(f"Account: {record.account_id}; rate limit: {limit}"
              + (f"; monthly spend cap: ${args.spend_cap_usd}" if spend_cap is not None else ""))
        print("The key is shown only now; store it safely:")
        print(f"  {secret}")
    return 0


def _keys_list(args, settings: Settings) -> int:
    async def work(store, settings):
        records, _ = await store.list_keys(args.account, page_size=100)
        return records

    records = asyncio.run(_with_store(settings, work))
    if args.json:
        print(orjson.dumps([_key_json(r) for r in records]).decode())
        return 0
    from services.auth.store import key_state
    from services.storage.database import utcnow

    now = utcnow()
    print(f"{'ID':<22} {'NAME':<20} {'KEY':<22} {'STATE':<8} {'RPM':>6}  SCOPES")
    for r in records:
        shown = f"{r.prefix}…{r.last_four}"
        print(f"{r.id:<22} {r.name[:20]:<20} {shown:<22} {key_state(r, now):<8} {r.rate_limit_per_minute or 'default':>6}  {r.scopes}")
    return 0


def _keys_revoke(args, settings: Settings) -> int:
    from services.auth.store import KeyNotFound

    async def work(store, settings):
        return await store.revoke_key(None, args.key_id)

    try:
        record = asyncio.run(_with_store(settings, work))
    except KeyNotFound:
        print(f"error: no key with id {args.key_id!r}", file=sys.stderr)
        return 1
    print(f"Revoked {record.id} ({record.name}); every gateway process refuses it within a second.")
    return 0


def _accounts_create(args, settings: Settings) -> int:
    import re

    from services.billing.servicer import _ACCOUNT_ID

    account_id = args.id or f"acct_{secrets.token_hex(8)}"
    if not _ACCOUNT_ID.fullmatch(account_id):
        print("error: --id must look like acct_ followed by letters, digits, '-' or '_'", file=sys.stderr)
        return 2
    if not args.name.strip() or len(args.name) > 200 or re.search(r"[\x00-\x1f]", args.name):
        print("error: --name must be 1-200 printable characters", file=sys.stderr)
        return 2

    async def work(store, settings):
        if await store.account_exists(account_id):
            return False
        await store.ensure_account(account_id, args.name.strip())
        return True

    if not asyncio.run(_with_store(settings, work)):
        print(f"error: account {account_id} already exists", file=sys.stderr)
        return 1
    print(orjson.dumps({"id": account_id, "name": args.name.strip()}).decode() if args.json else f"Created account {account_id} ({args.name.strip()})")
    return 0


def _wallet_topup(args, settings: Settings) -> int:
    from services.billing.ledger import Ledger, usd_text
    from services.errors import ServiceError
    from services.storage.database import is_sqlite

    amount = _usd_arg(args.usd, "--usd")
    if not amount:
        print("error: --usd must be a positive amount", file=sys.stderr)
        return 2

    async def work(store, settings):
        if not await store.account_exists(args.account):
            return None
        ledger = Ledger(store.sessions, serialize_writes=is_sqlite(settings.database_url))
        return await ledger.top_up(args.account, amount, args.note or "top-up (CLI)", field="--usd")

    try:
        wallet = asyncio.run(_with_store(settings, work))
    except ServiceError as exc:  # e.g. the balance would pass its maximum: nothing was written
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    if wallet is None:
        print(f"error: no account {args.account!r}", file=sys.stderr)
        return 1
    print(f"Topped up {args.account} by ${usd_text(amount)}; balance ${usd_text(wallet.balance_nano)}")
    return 0


def _users_create(args, settings: Settings) -> int:
    from services.auth.passwords import check_new_password
    from services.auth.store import DEFAULT_ACCOUNT_ID
    from services.auth.users import UserExists, UserStore, normalize_email, valid_email

    if not args.password_stdin:
        # A password on the command line would sit in the shell history and the process list.
        print("error: pass the password on standard input with --password-stdin", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\r\n")
    email = normalize_email(args.email)
    if not valid_email(email):
        print("error: --email is not a valid address", file=sys.stderr)
        return 2
    if (why := check_new_password(password)) is not None:
        print(f"error: {why}", file=sys.stderr)
        return 2
    account_id = args.account or DEFAULT_ACCOUNT_ID

    async def work(store, settings):
        if account_id == DEFAULT_ACCOUNT_ID:
            await store.ensure_account(DEFAULT_ACCOUNT_ID, "Default account")
        try:
            return await UserStore(store.sessions).create_user(account_id, email, password, args.role)
        except UserExists:
            return "exists"
        except LookupError:
            return None

    user = asyncio.run(_with_store(settings, work))
    if user is None:
        print(f"error: no account {account_id!r}", file=sys.stderr)
        return 1
    if user == "exists":
        print(f"error: a user with email {email} already exists", file=sys.stderr)
        return 1
    summary = {"id": user.id, "email": user.email, "accountId": user.account_id, "role": user.role}
    print(orjson.dumps(summary).decode() if args.json else f"Created {user.role} {user.email} ({user.id}) in {user.account_id}")
    return 0


def _migrate(args, settings: Settings) -> int:
    from services.storage.database import migrate

    migrate(settings.database_url)
    print("database schema is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchyard", description="Switchyard LLM API gateway")
    parser.add_argument("--config", help=f"YAML config file (default: ${CONFIG_PATH_ENV}, else built-in defaults); "
                                         "flags beat the environment, which beats the file")
    _add_setting_flags(parser, GLOBAL_SETTING_FLAGS)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("mode", nargs="?", default="embedded", choices=["embedded", "services", "edge"],
                       help="embedded (default): gRPC services and REST edge in one process; or one of them")
    _add_setting_flags(serve, SERVE_SETTING_FLAGS)
    serve.set_defaults(func=_serve)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", default=[], help="extra scope (repeatable), e.g. admin")
    create.add_argument("--rate-limit", type=int, help="requests per minute (default 30)")
    create.add_argument("--expires-in-days", type=float, help="the key stops working after this many days")
    create.add_argument("--model", action="append", default=[], help="restrict the key to this model (repeatable)")
    create.add_argument("--account", help="account id (default acct_default)")
    create.add_argument("--spend-cap-usd", help="monthly (UTC calendar month) spend cap in USD, e.g. 5")
    create.add_argument("--json", action="store_true", help="print a JSON object with id and key")
    create.set_defaults(func=_keys_create)
    listing = keys.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--account", help="only this account's keys")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_keys_revoke)

    accounts = commands.add_parser("accounts", help="manage accounts").add_subparsers(dest="accounts_command", required=True)
    account_create = accounts.add_parser("create", help="create an account (with an empty wallet)")
    account_create.add_argument("--name", required=True)
    account_create.add_argument("--id", help="account id, acct_… (default: generated)")
    account_create.add_argument("--json", action="store_true")
    account_create.set_defaults(func=_accounts_create)

    wallet = commands.add_parser("wallet", help="manage wallets").add_subparsers(dest="wallet_command", required=True)
    topup = wallet.add_parser("topup", help="add money to an account's wallet")
    topup.add_argument("--account", required=True)
    topup.add_argument("--usd", required=True, help="exact decimal amount, e.g. 10 or 0.50")
    topup.add_argument("--note", help="shown in the ledger")
    topup.set_defaults(func=_wallet_topup)

    users = commands.add_parser("users", help="manage console users").add_subparsers(dest="users_command", required=True)
    user_create = users.add_parser("create", help="create a user who signs in to the console")
    user_create.add_argument("--email", required=True)
    user_create.add_argument("--account", help="account id (default acct_default, the operator's)")
    user_create.add_argument("--role", choices=["owner", "member"], default="owner",
                             help="owner (manages the account; of acct_default: an operator) or member")
    user_create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    user_create.add_argument("--json", action="store_true")
    user_create.set_defaults(func=_users_create)

    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(func=_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging.format, settings.logging.level)
    return args.func(args, settings)


if __name__ == "__main__":
    sys.exit(main())
