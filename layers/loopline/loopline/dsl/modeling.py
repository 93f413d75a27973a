"""Frozen models of the workflow language, validated by ``pydantic_core`` directly.

A class declares its fields as pydantic models do (annotations, ``Field``, ``Annotated``
with ``BeforeValidator``/``AfterValidator``, tagged unions with ``Tag`` and
``Discriminator``, ``model_validator``/``field_validator``), and this module turns the
declarations into the core schema pydantic would generate for them: the same validators
in the same order, the same error types, messages and locations. What it leaves out is
what the language does not use (serialization, JSON Schema, generics, assignment).

Why not pydantic itself: importing it and generating the schemas of the language's ~35
models took 150 ms of every ``loopline compile``, more than parsing and compiling a
1,000-step workflow. ``pydantic_core`` imports in a fraction of that, and its validator is
built from the schema (below) in about a millisecond, on first use.

Instances behave like frozen pydantic models: fields as attributes, ``model_fields``,
``model_fields_set``, ``model_construct``, ``model_validate``, ``model_dump``, equality
and hashing by field values.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any, ClassVar, Literal, Self, Union

from pydantic_core import SchemaValidator

_MISSING: Any = object()

#: The configuration of every model (pydantic's ``extra="forbid"``,
#: ``populate_by_name=True``, ``validate_default=False``).
_CONFIG = {
    "extra_fields_behavior": "forbid",
    "validate_by_alias": True,
    "validate_by_name": True,
    "validate_default": False,
}


# --------------------------------------------------------------------------- declarations


class FieldInfo:
    """A field of a model: its default, alias, constraints and (once resolved) type."""

    __slots__ = (
        "_annotation",
        "alias",
        "constraints",
        "default",
        "default_factory",
        "exclude",
        "name",
        "owner",
        "source",
    )

    def __init__(
        self,
        default: Any = _MISSING,
        *,
        default_factory: Callable[[], Any] | None = None,
        alias: str | None = None,
        exclude: bool = False,
        **constraints: Any,
    ) -> None:
        self.default = default
        self.default_factory = default_factory
        self.alias = alias
        self.exclude = exclude
        self.constraints = {k: v for k, v in constraints.items() if v is not None}
        self.name = ""
        self.owner: type[Model] | None = None
        self.source: Any = None
        self._annotation: Any = _MISSING

    @property
    def annotation(self) -> Any:
        """The field's type (its annotation, evaluated in its class's module)."""
        if self._annotation is _MISSING:
            source = self.source
            if isinstance(source, str):
                assert self.owner is not None
                source = eval(source, vars(sys.modules[self.owner.__module__]))
            self._annotation = source
        return self._annotation

    def is_required(self) -> bool:
        return self.default is _MISSING and self.default_factory is None

    def get_default(self) -> Any:
        if self.default_factory is not None:
            return self.default_factory()
        return self.default

    def _copy(self) -> FieldInfo:
        out = FieldInfo.__new__(FieldInfo)
        for slot in FieldInfo.__slots__:
            setattr(out, slot, getattr(self, slot))
        return out


def Field(
    default: Any = _MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    alias: str | None = None,
    exclude: bool = False,
    ge: float | None = None,
    le: float | None = None,
    min_length: int | None = None,
    pattern: str | None = None,
) -> Any:
    """A field's default and rules (as an annotation's metadata: only the rules)."""
    return FieldInfo(
        default,
        default_factory=default_factory,
        alias=alias,
        exclude=exclude,
        ge=ge,
        le=le,
        min_length=min_length,
        pattern=pattern,
    )


class BeforeValidator:
    """``func(raw) -> value`` runs before the type's own validation."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func


class AfterValidator:
    """``func(value) -> value`` runs after the type's own validation."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func


class Tag:
    """The tag of a member of a ``Discriminator`` union."""

    __slots__ = ("tag",)

    def __init__(self, tag: str) -> None:
        self.tag = tag


class Discriminator:
    """A union whose member is chosen by ``discriminator(raw)`` (a ``Tag``; ``None``: the
    ``custom_error_type`` error)."""

    __slots__ = ("custom_error_message", "custom_error_type", "discriminator")

    def __init__(
        self,
        discriminator: Callable[[Any], str | None],
        *,
        custom_error_type: str,
        custom_error_message: str,
    ) -> None:
        self.discriminator = discriminator
        self.custom_error_type = custom_error_type
        self.custom_error_message = custom_error_message


_VALIDATOR = "__loopline_validator__"


def model_validator(*, mode: Literal["before", "wrap"]) -> Callable[[Any], Any]:
    """Mark a classmethod as the model's ``before`` (raw data in, data out) or ``wrap``
    (raw data and the model's own validation in, the model out) validator."""

    def mark(method: Any) -> Any:
        setattr(method.__func__, _VALIDATOR, ("model", mode))
        return method

    return mark


def field_validator(field: str) -> Callable[[Any], Any]:
    """Mark a classmethod ``(cls, value, info)`` as a check of ``field`` after its type's
    (``info.data``: the fields validated before it)."""

    def mark(method: Any) -> Any:
        setattr(method.__func__, _VALIDATOR, ("field", field))
        return method

    return mark


# --------------------------------------------------------------------------- models


class _Fields:
    """``Model.model_fields``: the fields by name, in validation order."""

    def __get__(self, obj: Any, cls: type[Model]) -> dict[str, FieldInfo]:
        return cls.__model_fields__


class Model:
    """A frozen model: fields are validated by ``model_validate`` (a core validator
    built on first use) or set as given by ``model_construct``."""

    __slots__ = (
        "__dict__",
        "__pydantic_extra__",
        "__pydantic_fields_set__",
        "__pydantic_private__",
    )

    __pydantic_fields_set__: set[str]
    __pydantic_extra__: None
    __pydantic_private__: None
    #: Fields by name: the base classes' first (a redeclared one keeps its place).
    __model_fields__: ClassVar[dict[str, FieldInfo]] = {}
    model_fields: ClassVar[Any] = _Fields()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: dict[str, FieldInfo] = {}
        for base in reversed(cls.__mro__[1:]):
            fields.update(base.__dict__.get("__model_fields__", {}))
        for name, source in inspect.get_annotations(cls).items():
            if isinstance(source, str) and source.startswith(("ClassVar", "typing.ClassVar")):
                continue
            value = cls.__dict__.get(name, _MISSING)
            info = value._copy() if isinstance(value, FieldInfo) else FieldInfo(value)
            if name in cls.__dict__:
                delattr(cls, name)  # the instance holds the value
            info.name, info.owner, info.source = name, cls, source
            fields[name] = info
        cls.__model_fields__ = fields

    # ------------------------------------------------------------------ building

    def __init__(self, **data: Any) -> None:
        _copy_state(type(self).model_validate(data), self)

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """``data`` (a mapping, or an instance: returned as it is) validated as ``cls``;
        raise ``pydantic_core.ValidationError``."""
        result: Self = validator(cls).validate_python(data)
        return result

    @classmethod
    def model_construct(cls, **values: Any) -> Self:
        """An instance holding ``values`` (by field name or alias) unchecked, the other
        fields at their defaults."""
        out = cls.__new__(cls)
        state: dict[str, Any] = {}
        given: set[str] = set()
        for name, info in cls.__model_fields__.items():
            if name in values:
                state[name] = values[name]
                given.add(name)
            elif info.alias is not None and info.alias in values:
                state[name] = values[info.alias]
                given.add(name)
            elif not info.is_required():
                state[name] = info.get_default()
        object.__setattr__(out, "__dict__", state)
        object.__setattr__(out, "__pydantic_fields_set__", given)
        object.__setattr__(out, "__pydantic_extra__", None)
        object.__setattr__(out, "__pydantic_private__", None)
        return out

    # ------------------------------------------------------------------ reading

    @property
    def model_fields_set(self) -> set[str]:
        """The fields given a value (not left at their default)."""
        fields_set: set[str] = self.__pydantic_fields_set__
        return fields_set

    def model_dump(
        self, *, exclude_none: bool = False, exclude_defaults: bool = False
    ) -> dict[str, Any]:
        """The fields (but ``exclude`` ones) as plain data, nested models included."""
        out: dict[str, Any] = {}
        for name, info in type(self).__model_fields__.items():
            if info.exclude or name not in self.__dict__:
                continue
            value = self.__dict__[name]
            if exclude_none and value is None:
                continue
            if exclude_defaults and not info.is_required() and value == info.get_default():
                continue
            out[name] = _dump(value, exclude_none, exclude_defaults)
        return out

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: {name} cannot be set")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: {name} cannot be deleted")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Model):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), *(self.__dict__.get(n) for n in type(self).__model_fields__)))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{n}={self.__dict__[n]!r}" for n in type(self).__model_fields__ if n in self.__dict__
        )
        return f"{type(self).__name__}({shown})"

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        yield from self.__dict__.items()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "__dict__": self.__dict__,
            "__pydantic_fields_set__": self.__pydantic_fields_set__,
            "__pydantic_extra__": self.__pydantic_extra__,
            "__pydantic_private__": self.__pydantic_private__,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)


def _copy_state(source: Model, target: Model) -> None:
    target.__setstate__(source.__getstate__())


def _dump(value: Any, exclude_none: bool, exclude_defaults: bool) -> Any:
    if isinstance(value, Model):
        return value.model_dump(exclude_none=exclude_none, exclude_defaults=exclude_defaults)
    if isinstance(value, (list, tuple)):
        return type(value)(_dump(v, exclude_none, exclude_defaults) for v in value)
    if isinstance(value, dict):
        return {k: _dump(v, exclude_none, exclude_defaults) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- core schemas

_VALIDATORS: dict[Any, SchemaValidator] = {}


def validator(tp: Any) -> SchemaValidator:
    """The core validator of ``tp`` (a model class or a type such as a tagged union of
    models), built on first use."""
    try:
        return _VALIDATORS[tp]
    except (KeyError, TypeError):
        pass
    defs: dict[str, Any] = {}
    root = _Schemas(defs).of(tp)
    schema = {"type": "definitions", "schema": root, "definitions": list(defs.values())}
    built = SchemaValidator(schema)
    _VALIDATORS[tp] = built
    return built


def _validators(cls: type[Model]) -> Iterator[tuple[str, str, Any]]:
    """The model's marked validators (``("model", mode, bound)`` or ``("field", name,
    bound)``), its bases' first."""
    seen: set[str] = set()
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            func = getattr(value, "__func__", None)
            mark = getattr(func, _VALIDATOR, None) if func is not None else None
            if mark is not None and attr not in seen:
                seen.add(attr)
                yield mark[0], mark[1], getattr(cls, attr)


_SIMPLE = {str: "str", int: "int", float: "float", bool: "bool"}


class _Schemas:
    """Core schemas of types, with each model once in ``defs`` (by reference)."""

    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs

    def of(self, tp: Any) -> dict[str, Any]:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is None:
            if tp is Any:
                return {"type": "any"}
            if tp in _SIMPLE:
                return {"type": _SIMPLE[tp]}
            if tp is type(None):
                return {"type": "none"}
            if isinstance(tp, type) and issubclass(tp, Model):
                return self.model(tp)
            raise TypeError(f"no core schema for {tp!r}")
        if origin is Annotated:
            return self.annotated(args[0], args[1:])
        if origin is Literal:
            return {"type": "literal", "expected": list(args)}
        if origin is list:
            return {"type": "list", "items_schema": self.of(args[0])}
        if origin is dict:
            return {
                "type": "dict",
                "keys_schema": self.of(args[0]),
                "values_schema": self.of(args[1]),
            }
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {
                    "type": "tuple",
                    "items_schema": [self.of(args[0])],
                    "variadic_item_index": 0,
                }
            return {"type": "tuple", "items_schema": [self.of(a) for a in args]}
        if origin is Union or origin is types.UnionType:
            members = [a for a in args if a is not type(None)]
            inner = (
                self.of(members[0])
                if len(members) == 1
                else {"type": "union", "choices": [self.of(m) for m in members]}
            )
            return {"type": "nullable", "schema": inner} if len(members) < len(args) else inner
        raise TypeError(f"no core schema for {tp!r}")

    def annotated(self, base: Any, metadata: tuple[Any, ...]) -> dict[str, Any]:
        discriminator = next((m for m in metadata if isinstance(m, Discriminator)), None)
        if discriminator is not None:
            choices = {}
            for member in typing.get_args(base):
                tag = next(m for m in typing.get_args(member)[1:] if isinstance(m, Tag))
                choices[tag.tag] = self.of(member)
            schema: dict[str, Any] = {
                "type": "tagged-union",
                "choices": choices,
                "discriminator": discriminator.discriminator,
                "custom_error_type": discriminator.custom_error_type,
                "custom_error_message": discriminator.custom_error_message,
            }
        elif any(isinstance(m, BeforeValidator) for m in metadata) and base not in _SIMPLE:
            # A type of its own (an expression, a template): its validator makes it.
            schema = {"type": "any"}
        else:
            schema = self.of(base)
        for meta in metadata:
            if isinstance(meta, FieldInfo):
                schema = _constrained(schema, meta.constraints)
            elif isinstance(meta, BeforeValidator):
                schema = _function("before", meta.func, schema)
            elif isinstance(meta, AfterValidator):
                schema = _function("after", meta.func, schema)
        return schema

    def model(self, cls: type[Model]) -> dict[str, Any]:
        ref = f"{cls.__module__}.{cls.__qualname__}"
        if ref not in self.defs:
            self.defs[ref] = None  # being built: a reference to it is enough
            checks = list(_validators(cls))
            fields: dict[str, Any] = {}
            for name, info in cls.__model_fields__.items():
                schema = self.of(info.annotation)
                if info.constraints:
                    schema = _constrained(schema, info.constraints)
                for kind, target, bound in checks:
                    if kind == "field" and target == name:
                        schema = _function("after", bound, schema, info=True)
                if info.default_factory is not None:
                    schema = {
                        "type": "default",
                        "schema": schema,
                        "default_factory": info.default_factory,
                    }
                elif info.default is not _MISSING:
                    schema = {"type": "default", "schema": schema, "default": info.default}
                field: dict[str, Any] = {"type": "model-field", "schema": schema}
                if info.alias is not None:
                    field["validation_alias"] = info.alias
                fields[name] = field
            inner: dict[str, Any] = {
                "type": "model-fields",
                "fields": fields,
                "model_name": cls.__name__,
            }
            for kind, mode, bound in checks:
                if kind == "model" and mode == "before":
                    inner = _function("before", bound, inner)
            schema = {
                "type": "model",
                "cls": cls,
                "schema": inner,
                "config": {**_CONFIG, "title": cls.__name__},
                "custom_init": False,
                "root_model": False,
            }
            for kind, mode, bound in checks:
                if kind == "model" and mode == "wrap":
                    schema = _function("wrap", bound, schema)
            schema["ref"] = ref
            self.defs[ref] = schema
        return {"type": "definition-ref", "schema_ref": ref}


def _function(
    mode: str, func: Callable[..., Any], schema: dict[str, Any], *, info: bool = False
) -> dict[str, Any]:
    return {
        "type": f"function-{mode}",
        "function": {"type": "with-info" if info else "no-info", "function": func},
        "schema": schema,
    }


def _constrained(schema: dict[str, Any], constraints: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``constraints`` (``ge``, ``pattern``…) on the type they concern:
    for ``X | None``, on ``X``."""
    if not constraints:
        return schema
    if schema["type"] == "nullable":
        return {**schema, "schema": _constrained(schema["schema"], constraints)}
    if schema["type"] not in ("str", "int", "float", "list", "dict"):
        raise TypeError(f"constraints {constraints} on a {schema['type']} schema")
    return {**schema, **constraints}


__all__ = [
    "AfterValidator",
    "BeforeValidator",
    "Discriminator",
    "Field",
    "FieldInfo",
    "Model",
    "Tag",
    "field_validator",
    "model_validator",
    "validator",
]
