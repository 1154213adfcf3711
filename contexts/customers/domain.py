"""Customer accounts: who may register and how an account changes. Pure Python."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from orderflow.domain import Aggregate, DomainError, DomainEvent

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise DomainError(f"{email!r} is not a valid email address", code="invalid_email")
    return email


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError(f"password must have at least {MIN_PASSWORD_LENGTH} characters", code="weak_password")


@dataclass(frozen=True)
class Registered(DomainEvent):
    customer_id: uuid.UUID
    email: str
    name: str


@dataclass(frozen=True)
class EmailChanged(DomainEvent):
    customer_id: uuid.UUID
    email: str
    previous_email: str


@dataclass(frozen=True)
class Deactivated(DomainEvent):
    customer_id: uuid.UUID


@dataclass
class Customer(Aggregate):
    id: uuid.UUID
    email: str
    name: str
    active: bool = True
    is_staff: bool = False
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @classmethod
    def register(cls, *, email: str, name: str, is_staff: bool = False) -> Customer:
        name = name.strip()
        if not name:
            raise DomainError("name must not be empty", code="invalid_name")
        customer = cls(id=uuid.uuid4(), email=normalize_email(email), name=name, is_staff=is_staff)
        customer.record(Registered(customer.id, customer.email, customer.name))
        return customer

    def rename(self, name: str) -> None:
        if not name.strip():
            raise DomainError("name must not be empty", code="invalid_name")
        self.name = name.strip()

    def change_email(self, email: str) -> None:
        email = normalize_email(email)
        if email != self.email:
            self.record(EmailChanged(self.id, email, self.email))
            self.email = email

    def deactivate(self) -> None:
        if self.active:
            self.active = False
            self.record(Deactivated(self.id))
