"""``loopline.dsl.modeling``: the language's models behave as frozen pydantic models did,
validated by pydantic-core with a validator built once per type."""

from __future__ import annotations

import copy
import pickle

import pytest
from loopline.dsl import modeling, models
from loopline.dsl.modeling import Field, Model
from pydantic_core import ValidationError


def test_a_validated_model_holds_its_defaults_and_knows_which_fields_were_given() -> None:
    retry = models.RetrySpec.model_validate({"max_attempts": 5, "interval": "1m"})

    assert (retry.max_attempts, retry.interval, retry.backoff, retry.on) == (5, 60, 2.0, None)
    assert retry.model_fields_set == {"max_attempts", "interval"}


def test_a_field_is_read_by_its_alias_or_its_name() -> None:
    by_alias = models.AssertStep.model_validate({"id": "a", "assert": "true"})
    by_name = models.AssertStep.model_validate({"id": "a", "assert_": "true"})

    assert by_alias.assert_.source() == by_name.assert_.source() == "true"
    assert by_alias.kind == "assert"


def test_a_model_is_frozen() -> None:
    goto = models.Goto.model_validate({"goto": "a"})

    with pytest.raises(AttributeError, match="frozen"):
        goto.goto = "b"  # type: ignore[misc]


def test_model_construct_takes_values_unchecked_and_fills_in_the_defaults() -> None:
    step = models.InvalidStep.model_construct(id=None)

    assert step.id is None and step.bodies == [] and step.loop_names == ()
    assert step.kind == "invalid"
    assert step.model_fields_set == {"id"}


def test_model_dump_leaves_out_excluded_fields_nulls_and_defaults_when_asked() -> None:
    escalate = models.EscalateTo.model_validate({"role": "lead", "notify": [{"email": "a@b.c"}]})
    step = models.ToolStep.model_validate({"id": "t", "tool": "now"})

    assert escalate.model_dump(exclude_none=True, exclude_defaults=True) == {
        "role": "lead",
        "notify": [{"email": "a@b.c"}],
    }
    assert "kind" not in step.model_dump()
    assert step.model_dump(exclude_none=True) == {"id": "t", "tool": "now", "args": {}}


def test_models_with_the_same_values_are_equal_and_survive_copies_and_pickling() -> None:
    a = models.Assignee.model_validate({"role": "ops"})
    b = models.Assignee.model_validate({"role": "ops"})

    assert a == b and hash(a) == hash(b)
    assert a != models.Assignee.model_validate({"user": "ops"})
    for twin in (copy.copy(a), copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert twin == a and twin.model_fields_set == {"role"}


def test_an_instance_given_where_a_model_is_expected_is_kept_as_it_is() -> None:
    step = models.InvalidStep.model_construct(id="x")

    assert modeling.validator(models.Step).validate_python(step) is step


def test_errors_are_pydantic_core_s_located_by_alias() -> None:
    with pytest.raises(ValidationError) as caught:
        models.LoopSpec.model_validate({"while": "true", "max_iterations": 0, "steps": []})

    found = {(tuple(e["loc"]), e["type"]) for e in caught.value.errors(include_url=False)}
    assert (("max_iterations",), "greater_than_equal") in found
    assert (("steps",), "too_short") in found


def test_each_type_s_validator_is_built_once() -> None:
    assert modeling.validator(models.Step) is modeling.validator(models.Step)
    assert modeling.validator(models.Workflow) is modeling.validator(models.Workflow)


def test_a_field_type_without_a_core_schema_is_refused_when_the_validator_is_built() -> None:
    class Odd(Model):
        tags: frozenset[str] = Field(default_factory=frozenset)

    with pytest.raises(TypeError, match="no core schema"):
        Odd.model_validate({})
