"""The scripted model (spec: "Testing a workflow offline: the scripted model")."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from loopline.runtime.errors import StepError
from loopline.runtime.model import ModelRequest
from loopline.runtime.scripted import ScriptedModel, ScriptInvalid

SCRIPT = """\
responses:
  - step: classify
    when: "billing"
    answer: {severity: 2, category: billing}
  - step: classify
    answer: "other"
  - step: critic
    answers: [{done: false}, {done: true}]
  - step: flaky
    answers: [{error: Loopline.Transient}, "ok"]
  - step: broken
    answer: {error: Custom.Boom, message: "it broke"}
  - answer: "fallback text"
"""


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel.from_text(SCRIPT, "script.yaml")


def test_the_first_matching_rule_wins_and_when_is_a_substring_of_the_prompt(
    model: ScriptedModel,
) -> None:
    assert json.loads(model.answer("classify", "a billing question")) == {
        "severity": 2,
        "category": "billing",
    }
    assert model.answer("classify", "a shipping question") == "other"


def test_answers_are_consumed_in_order_and_the_last_repeats(model: ScriptedModel) -> None:
    got = [json.loads(model.answer("critic", "p")) for _ in range(4)]
    assert got == [{"done": False}, {"done": True}, {"done": True}, {"done": True}]


def test_an_error_answer_fails_that_call_with_its_name(model: ScriptedModel) -> None:
    with pytest.raises(StepError) as err:
        model.answer("flaky", "p")
    assert err.value.name == "Loopline.Transient"
    assert model.answer("flaky", "p") == "ok"


def test_an_error_answer_may_carry_a_message(model: ScriptedModel) -> None:
    with pytest.raises(StepError) as err:
        model.answer("broken", "p")
    assert (err.value.name, err.value.message) == ("Custom.Boom", "it broke")


def test_a_rule_without_step_matches_any_call(model: ScriptedModel) -> None:
    assert model.answer("anything", "p") == "fallback text"


def test_a_call_no_rule_matches_fails_naming_the_step() -> None:
    m = ScriptedModel.from_data({"responses": [{"step": "a", "answer": "x"}]})
    with pytest.raises(StepError) as err:
        m.answer("summarize", "hello")
    assert err.value.name == "Loopline.LLMError"
    assert "step summarize" in err.value.message


def test_complete_estimates_token_counts(model: ScriptedModel) -> None:
    reply = model.complete(ModelRequest(step="classify", prompt="x" * 40, system="y" * 8))
    assert reply.text == "other"
    assert reply.usage == {"input_tokens": 12, "output_tokens": 2}


def test_concurrent_calls_each_get_their_own_answer() -> None:
    m = ScriptedModel.from_data({"responses": [{"answers": list(range(50))}]})
    got: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        a = m.answer("s", "p")
        with lock:
            got.append(a)

    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(a) for a in got) == list(range(50))


def test_a_json_script_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"responses": [{"answer": [1, 2]}]}))
    assert ScriptedModel.from_file(path).answer("s", "p") == "[1, 2]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "responses:\n  - step: a\n",
            "responses[0]: a rule needs exactly one of answer or answers",
        ),
        (
            "responses:\n  - answer: x\n    answers: [y]\n",
            "responses[0]: a rule needs exactly one of answer or answers",
        ),
        (
            "responses:\n  - answer: x\n    wen: billing\n",
            'unknown key "wen" (did you mean "when"?)',
        ),
        ("responses:\n  - answers: []\n", "responses[0].answers"),
        ("responses:\n  - answer: {error: 3}\n", "is not an error name"),
        ("answers: [x]\n", 'unknown key "answers"'),
        ("- a\n", "a model script is a mapping with a responses list"),
        ("responses: [\n", "invalid YAML"),
    ],
)
def test_a_bad_script_gives_located_readable_problems(text: str, expected: str) -> None:
    with pytest.raises(ScriptInvalid) as err:
        ScriptedModel.from_text(text, "bad.yaml")
    rendered = err.value.render()
    assert expected in rendered
    assert rendered.startswith("bad.yaml:")


def test_a_missing_script_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ScriptInvalid, match="no such file"):
        ScriptedModel.from_file(tmp_path / "nope.yaml")
