"""Database tables (SQLModel). Times are stored as UTC."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Index
from sqlmodel import Field, SQLModel


def _utc_column(nullable: bool = True, index: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class ApiKeyRecord(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_account_created", "account_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", max_length=40)
    name: str = Field(max_length=100)
    # SHA-256 of the secret; the secret itself is never stored.
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    last_four: str = Field(max_length=4)
    # Space-separated (scopes never contain spaces).
    scopes: str = Field(max_length=1000)
    rate_limit_per_minute: int
    # Space-separated public model names this key may use; empty means every model.
    allowed_models: str = Field(default="", max_length=4000)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_column=_utc_column())
    expires_at: datetime | None = Field(default=None, sa_column=_utc_column())
    revoked_at: datetime | None = Field(default=None, sa_column=_utc_column())


class GatewayMeta(SQLModel, table=True):
    """One-off facts about this installation, e.g. that the bootstrap admin key was issued."""

    __tablename__ = "gateway_meta"

    name: str = Field(primary_key=True, max_length=100)
    value: str = Field(max_length=1000)


class RegistryModel(SQLModel, table=True):
    """An admin's change to the model registry, layered over the config file's models.

    A row replaces the config's model of the same id; a `deleted` row hides it.
    """

    __tablename__ = "registry_models"

    id: str = Field(primary_key=True, max_length=200)
    # The switchyard.routing.v1.Model message, serialized (deployments included).
    spec: bytes
    deleted: bool = False
    updated_at: datetime = Field(sa_column=_utc_column(nullable=False))
