"""Mapping between Python enums and protobuf enums named `<PREFIX>_<MEMBER>`, refusing the
UNSPECIFIED value and unknown numbers with a field violation that lists what is allowed."""

from __future__ import annotations

import enum
from typing import TypeVar

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from medcloud.core.errors import InvalidArgument

E = TypeVar("E", bound=enum.Enum)


def _prefix(wrapper: EnumTypeWrapper) -> str:
    return wrapper.Name(0)[: -len("UNSPECIFIED")]


def enum_to_proto(value: enum.Enum, wrapper: EnumTypeWrapper) -> int:
    return wrapper.Value(_prefix(wrapper) + value.name)


def enum_from_proto(number: int, wrapper: EnumTypeWrapper, domain: type[E], field: str) -> E:
    try:
        name = wrapper.Name(number)
    except ValueError:
        name = ""
    if not name or number == 0:
        allowed = ", ".join(_prefix(wrapper) + member.name for member in domain)
        raise InvalidArgument.single(field, f"must be one of {allowed}, got {number}")
    return domain[name[len(_prefix(wrapper)) :]]
