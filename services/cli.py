"""The `switchyard` command: run the gateway, manage keys."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import timedelta

import orjson

from services.config import ConfigError, Settings, load_settings


def _settings(args) -> Settings:
    return load_settings(
        args.config,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        grpc_port=getattr(args, "grpc_port", None),
        grpc_target=getattr(args, "grpc_target", None),
        database_url=getattr(args, "database_url", None),
        redis_url=getattr(args, "redis_url", None),
    )


def _serve(args) -> int:
    from services.process import run_forever

    settings = _settings(args)

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
        lines.append(f"Switchyard ready ({args.mode}); database {_redact(settings.database_url)}"
                     + (", redis on" if settings.redis_url else ", in-process limits"))
        print("\n".join(lines), flush=True)

    run_forever(settings, args.mode, ready)
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


async def _with_store(args, work):
    from services.runtime import ServiceRuntime

    runtime = ServiceRuntime(_settings(args))
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


def _keys_create(args) -> int:
    from services.auth.servicer import validate_new_key
    from services.auth.store import DEFAULT_ACCOUNT_ID
    from services.errors import ServiceError
    from services.storage.database import utcnow

    async def work(store, settings):
        expires_at = utcnow() + timedelta(days=args.expires_in_days) if args.expires_in_days else None
        validate_new_key(args.name, args.scope, args.rate_limit or 0, expires_at, args.model)
        return await store.create_key(
            account_id=args.account or DEFAULT_ACCOUNT_ID,
            name=args.name,
            scopes=args.scope,
            rate_limit_per_minute=args.rate_limit or settings.limits.default_rate_limit_per_minute,
            expires_at=expires_at,
            allowed_models=args.model,
        )

    try:
        record, secret = asyncio.run(_with_store(args, work))
    except ServiceError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    if args.json:
        print(orjson.dumps(_key_json(record, secret)).decode())
    else:
        print(f"Created key {record.id} ({record.name}) with scopes: {record.scopes}")
        print(f"Rate limit: {record.rate_limit_per_minute} requests/minute")
        print("The key is shown only now; store it safely:")
        print(f"  {secret}")
    return 0


def _keys_list(args) -> int:
    async def work(store, settings):
        records, _ = await store.list_keys(args.account, page_size=100)
        return records

    records = asyncio.run(_with_store(args, work))
    if args.json:
        print(orjson.dumps([_key_json(r) for r in records]).decode())
        return 0
    from services.auth.store import key_state
    from services.storage.database import utcnow

    now = utcnow()
    print(f"{'ID':<22} {'NAME':<20} {'KEY':<22} {'STATE':<8} {'RPM':>6}  SCOPES")
    for r in records:
        shown = f"{r.prefix}…{r.last_four}"
        print(f"{r.id:<22} {r.name[:20]:<20} {shown:<22} {key_state(r, now):<8} {r.rate_limit_per_minute:>6}  {r.scopes}")
    return 0


def _keys_revoke(args) -> int:
    from services.auth.store import KeyNotFound

    async def work(store, settings):
        return await store.revoke_key(None, args.key_id)

    try:
        record = asyncio.run(_with_store(args, work))
    except KeyNotFound:
        print(f"error: no key with id {args.key_id!r}", file=sys.stderr)
        return 1
    print(f"Revoked {record.id} ({record.name}); every gateway process refuses it within a second.")
    return 0


def _migrate(args) -> int:
    from services.storage.database import migrate

    migrate(_settings(args).database_url)
    print("database schema is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchyard", description="Switchyard LLM API gateway")
    parser.add_argument("--config", help="YAML config file (default: $SWITCHYARD_CONFIG, else built-in defaults)")
    parser.add_argument("--database-url", help="overrides SWITCHYARD_DATABASE_URL (default sqlite:///./switchyard.db)")
    parser.add_argument("--redis-url", help="overrides SWITCHYARD_REDIS_URL (default: none, in-process limits)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("mode", nargs="?", default="embedded", choices=["embedded", "services", "edge"],
                       help="embedded (default): gRPC services and REST edge in one process; or one of them")
    serve.add_argument("--host", help="HTTP listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8080; 0 picks a free one)")
    serve.add_argument("--grpc-port", type=int, help="gRPC port (default 50051; 0 picks a free one)")
    serve.add_argument("--grpc-target", help="edge mode: where the gRPC services listen (host:port)")
    serve.set_defaults(func=_serve)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", default=[], help="extra scope (repeatable), e.g. admin")
    create.add_argument("--rate-limit", type=int, help="requests per minute (default 30)")
    create.add_argument("--expires-in-days", type=float, help="the key stops working after this many days")
    create.add_argument("--model", action="append", default=[], help="restrict the key to this model (repeatable)")
    create.add_argument("--account", help="account id (default acct_default)")
    create.add_argument("--json", action="store_true", help="print a JSON object with id and key")
    create.set_defaults(func=_keys_create)
    listing = keys.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--account", help="only this account's keys")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_keys_revoke)

    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(func=_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic announces every migration step at INFO; one line from us is enough.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
