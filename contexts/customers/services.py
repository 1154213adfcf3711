"""Use cases of the customers context. Each is one transaction on the customers database."""

from __future__ import annotations

import uuid

from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

import contracts.customers as events
from contexts.customers.domain import (
    Customer,
    Deactivated,
    EmailChanged,
    Registered,
    check_password_rules,
    normalize_email,
)
from contexts.customers.models import Account
from orderflow.domain import DomainError
from orderflow.messaging import outbox
from orderflow.unit_of_work import unit_of_work

DB = "customers"


class EmailTaken(DomainError):
    code = "email_taken"


class InvalidCredentials(Exception):
    """Unknown email, wrong password or deactivated account (never say which)."""


def _publish(customer: Customer) -> None:
    for event in customer.pull_events():
        ref = {"customer_id": str(event.customer_id)}
        if isinstance(event, Registered):
            event_type, data = events.CustomerRegistered, {**ref, "email": event.email, "name": event.name}
        elif isinstance(event, EmailChanged):
            event_type, data = (
                events.CustomerEmailChanged,
                {**ref, "email": event.email, "previous_email": event.previous_email},
            )
        elif isinstance(event, Deactivated):
            event_type, data = events.CustomerDeactivated, ref
        else:
            continue
        outbox.record(event_type=event_type, aggregate_id=str(event.customer_id), data=data)


def customer_register(*, email: str, password: str, name: str) -> Account:
    check_password_rules(password)
    return _account_create(email=email, password=password, name=name, is_staff=False)


def _account_create(*, email: str, password: str, name: str, is_staff: bool) -> Account:
    customer = Customer.register(email=email, name=name, is_staff=is_staff)
    try:
        with unit_of_work(DB):
            if Account.objects.using(DB).filter(email=customer.email).exists():
                raise EmailTaken(f"an account with email {customer.email} already exists")
            account = Account.from_domain(customer, password_hash=make_password(password))
            account.save(using=DB, force_insert=True)
            _publish(customer)
    except IntegrityError:  # a concurrent registration won the unique index
        raise EmailTaken(f"an account with email {customer.email} already exists") from None
    return account


def _tokens_for(account: Account) -> RefreshToken:
    token = RefreshToken()
    token["user_id"] = str(account.id)
    token["email"] = account.email
    token["is_staff"] = account.is_staff
    return token


def token_obtain(*, email: str, password: str) -> dict[str, str]:
    try:
        account = Account.objects.using(DB).get(email=normalize_email(email))
    except (Account.DoesNotExist, DomainError):
        make_password(password)  # same work as a real check: no timing hint that the email is unknown
        raise InvalidCredentials() from None
    if not account.active or not check_password(password, account.password):
        raise InvalidCredentials()
    refresh = _tokens_for(account)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def token_refresh(*, refresh: str) -> dict[str, str]:
    """A new access token (and a rotated refresh token) for a still-active account."""
    try:
        old = RefreshToken(refresh)
    except TokenError as exc:
        raise InvalidCredentials(str(exc)) from None
    account = Account.objects.using(DB).filter(id=old.get("user_id"), active=True).first()
    if account is None:
        raise InvalidCredentials("account is no longer active")
    new = _tokens_for(account)
    return {"access": str(new.access_token), "refresh": str(new)}


def staff_ensure(*, email: str, password: str, name: str) -> Account:
    """Create the staff account if missing (idempotent). Operators choose staff passwords, so the
    customer password rule does not apply (the demo's is `admin`)."""
    existing = Account.objects.using(DB).filter(email=normalize_email(email)).first()
    if existing is not None:
        return existing
    return _account_create(email=email, password=password, name=name, is_staff=True)


def customer_update(*, customer_id: uuid.UUID, name: str | None = None, email: str | None = None) -> Account:
    """Rename and/or change the email (CustomerEmailChanged keeps other contexts' replicas current)."""
    try:
        with unit_of_work(DB):
            account = Account.objects.using(DB).select_for_update().get(id=customer_id)
            customer = account.to_domain()
            if name is not None:
                customer.rename(name)
            if email is not None:
                customer.change_email(email)
                if Account.objects.using(DB).filter(email=customer.email).exclude(id=customer_id).exists():
                    raise EmailTaken(f"an account with email {customer.email} already exists")
            account.update_from_domain(customer)
            account.save(using=DB)
            _publish(customer)
    except IntegrityError:
        raise EmailTaken(f"an account with email {email} already exists") from None
    return account


def customer_deactivate(*, customer_id: uuid.UUID) -> Account:
    """The account can no longer sign in or refresh tokens; orders refuses its new orders."""
    with unit_of_work(DB):
        account = Account.objects.using(DB).select_for_update().get(id=customer_id)
        customer = account.to_domain()
        customer.deactivate()
        account.update_from_domain(customer)
        account.save(using=DB)
        _publish(customer)
    return account
