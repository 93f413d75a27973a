"""Whole-workflow checks (``loopline.dsl.checks``) through ``load_workflow_text``.

Each test is one small workflow: valid ones must load, invalid ones must report exactly
the listed problems (``path: message``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Collection

import pytest
from loopline.dsl import CheckContext, Workflow, WorkflowInvalid, load_workflow_text


def load(text: str) -> Workflow:
    return load_workflow_text(textwrap.dedent(text), "wf.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(WorkflowInvalid) as caught:
        load(text)
    return [f"{p.path}: {p.message}" for p in caught.value.problems]


# --------------------------------------------------------------------------- valid workflows


def test_given_a_branch_arm_step_read_under_an_exists_conjunction_then_it_loads() -> None:
    load(
        """
        name: wf
        steps:
          - id: route
            branch:
              if: "true"
              then: [{id: fix, llm: fix it}]
          - id: report
            assert: "exists(steps.fix) and steps.fix.output != ''"
        """
    )


def test_given_a_branch_arm_step_read_by_a_step_whose_if_checks_it_exists_then_it_loads() -> None:
    load(
        """
        name: wf
        steps:
          - id: route
            branch:
              if: "true"
              then: [{id: fix, llm: fix it}]
              else: [{id: keep, tool: noop}]
          - id: report
            if: exists(steps.fix)
            llm: "Report on {{ steps.fix.output }}"
          - id: other
            if: "not exists(steps.keep) or steps.keep.output.ok == false"
            tool: audit
        """
    )


def test_given_a_guard_in_an_enclosing_group_if_then_the_steps_inside_may_read() -> None:
    load(
        """
        name: wf
        steps:
          - id: loop1
            loop:
              while: "true"
              max_iterations: 3
              steps: [{id: attempt, tool: try_it}]
          - id: after
            if: exists(steps.attempt)
            group:
              - id: use
                llm: "Use {{ steps.attempt.output }}"
        """
    )


def test_given_exists_alone_on_an_arm_step_then_no_guard_is_needed() -> None:
    load(
        """
        name: wf
        steps:
          - id: route
            branch:
              if: "true"
              then: [{id: fix, llm: fix it}]
          - id: flag
            tool: record
            args: {fixed: "{{ exists(steps.fix) }}"}
        """
    )


def test_given_a_while_condition_reading_its_own_body_then_it_loads() -> None:
    load(
        """
        name: wf
        steps:
          - id: refine
            loop:
              while: "not exists(steps.judge) or steps.judge.output.done == false"
              max_iterations: 5
              steps:
                - id: rewrite
                  llm: Rewrite.
                - id: judge
                  llm: "Judge {{ steps.rewrite.output }}"
        """
    )


def test_given_a_while_body_step_reading_a_later_body_step_with_a_guard_then_it_loads() -> None:
    load(
        """
        name: wf
        steps:
          - id: refine
            loop:
              while: "true"
              max_iterations: 5
              steps:
                - id: rewrite
                  llm: "Rewrite using {{ exists(steps.judge) and steps.judge.output }}"
                - id: polish
                  if: exists(steps.judge)
                  llm: "Polish {{ steps.judge.output }} {{ exists(steps.polish) and steps.polish.output }}"
                - id: judge
                  llm: "Judge {{ steps.rewrite.output }}"
        """
    )


def test_given_loop_variables_inside_their_loops_then_they_load() -> None:
    load(
        """
        name: wf
        inputs:
          docs: {type: json, required: true}
        steps:
          - id: outer
            loop:
              for_each: inputs.docs
              steps:
                - id: inner
                  loop:
                    for_each: item.pages
                    as: page
                    steps:
                      - id: read
                        llm: "Page {{ index }} of {{ item.title }}: {{ page.text }}"
                - id: sum
                  llm: "Summarise {{ steps.inner.output }} ({{ index }})"
        """
    )


def test_given_steps_in_groups_and_parallel_entries_then_they_are_visible_after() -> None:
    load(
        """
        name: wf
        steps:
          - id: prep
            group:
              - id: fetch
                http: {url: "https://example.com"}
          - id: checks
            parallel:
              - id: lint
                tool: ruff
              - id: both
                group:
                  - id: unit
                    tool: pytest
                  - id: report
                    llm: "Tests said {{ steps.unit.output }} on {{ steps.fetch.output.body }}"
          - id: verdict
            llm: "{{ steps.lint.output }} {{ steps.report.output }} {{ steps.checks.output }}"
        output:
          verdict: "{{ steps.verdict.output }}"
          tokens: "{{ steps.verdict.usage }}"
        """
    )


def test_given_gotos_inside_one_scope_then_they_load() -> None:
    load(
        """
        name: wf
        inputs:
          items: {type: json}
        steps:
          - id: start
            tool: start
            on_error: {goto: cleanup}
          - id: body
            group:
              - id: cleanup
                tool: cleanup
          - id: checks
            parallel:
              - id: entry
                group:
                  - id: try_it
                    tool: risky
                    on_error: {goto: fallback}
                  - id: fallback
                    tool: safe
          - id: each
            loop:
              for_each: inputs.items
              steps:
                - id: one
                  tool: risky
                  on_error: {goto: two}
                - id: two
                  tool: safe
        """
    )


def test_given_workflow_without_inputs_then_any_input_path_is_allowed() -> None:
    load(
        """
        name: wf
        steps:
          - id: a
            llm: "{{ inputs.anything.at.all }}"
        """
    )


def test_given_custom_and_states_error_names_in_retry_then_they_load() -> None:
    load(
        """
        name: wf
        defaults:
          retry: {on: [States.ALL]}
        steps:
          - id: a
            tool: t
            retry: {on: [Loopline.Transient, MyService.Busy, States.Timeout]}
        """
    )


def test_given_a_rollback_to_an_earlier_sibling_then_it_loads() -> None:
    load(
        """
        name: wf
        steps:
          - id: g
            group:
              - id: draft
                llm: Draft.
              - id: ok
                approval: {timeout: 1h, rollback_to: [draft]}
        """
    )


def test_given_human_steps_with_their_timeouts_in_place_then_they_load() -> None:
    load(
        """
        name: wf
        steps:
          - id: ok
            approval: {timeout: 1h}
          - id: form
            human_task: {timeout: 2d, form_schema: {type: object}}
          - id: wait
            pause: Resume when ready.
            timeout: 30m
        """
    )


# --------------------------------------------------------------------------- references


def test_given_exists_only_under_or_then_the_arm_step_is_not_guarded() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: route
            branch:
              if: "true"
              then: [{id: fix, llm: fix it}]
          - id: check
            assert: "exists(steps.fix) or steps.fix.output.ok"
        """
    ) == [
        'steps[1].assert: steps.fix.output.ok: "fix" is inside a branch arm of "route" '
        "and may not have run; guard it with exists(steps.fix)"
    ]


def test_given_a_later_while_body_step_without_a_guard_then_it_is_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: refine
            loop:
              while: "true"
              max_iterations: 5
              steps:
                - id: rewrite
                  llm: "Rewrite using {{ steps.judge.output }}"
                - id: judge
                  llm: Judge.
        """
    ) == [
        'steps[0].loop.steps[0].llm: steps.judge.output: "judge" runs after this step; it has '
        "a value only from an earlier iteration of the while loop: guard it with "
        "exists(steps.judge)"
    ]


def test_given_a_while_condition_reading_a_for_each_body_inside_it_then_it_is_reported() -> None:
    msgs = problems(
        """
        name: wf
        steps:
          - id: refine
            loop:
              while: "steps.one.output.ok"
              max_iterations: 5
              steps:
                - id: each
                  loop:
                    for_each: "steps.each.output"
                    steps: [{id: one, llm: x}]
        """
    )
    assert msgs == [
        'steps[0].loop.while: steps.one.output.ok: "one" is inside for_each loop "each" and '
        "has no single value outside it; use steps.each.output (the list of each "
        "iteration's last output)",
        # In a while body a step's own output exists from the previous iteration.
        "steps[0].loop.steps[0].loop.for_each: steps.each.output: a step reads its own output "
        "only from an earlier iteration of its while loop; guard it with exists(steps.each)",
    ]


def test_given_a_for_each_reading_its_body_then_it_is_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: each
            loop:
              for_each: "steps.one.output"
              steps: [{id: one, llm: x}]
        """
    ) == [
        'steps[0].loop.for_each: steps.one.output: "one" is inside this step and has not run '
        "when this is evaluated"
    ]


def test_given_a_loop_variable_in_its_own_for_each_then_it_is_not_in_scope() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: each
            loop:
              for_each: item.children
              steps: [{id: one, llm: "{{ item }}"}]
        """
    ) == [
        'steps[0].loop.for_each: item.children: unknown name "item"; a path starts with '
        "inputs or steps; item exists only inside a for_each loop"
    ]


def test_given_a_steps_path_without_an_id_then_it_is_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: a
            llm: "{{ steps }}"
        """
    ) == ["steps[0].llm: steps: name a step, as in steps.<id>.output"]


def test_given_usage_of_an_llm_step_then_it_is_allowed_but_not_of_a_tool_step() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: a
            llm: hi
          - id: b
            tool: t
          - id: c
            llm: "{{ steps.a.usage.input_tokens }} {{ steps.b.usage }}"
        """
    ) == ['steps[2].llm: steps.b.usage: only llm steps record usage; "b" is a tool step']


def test_given_problems_in_several_places_then_all_are_reported_in_file_order() -> None:
    msgs = problems(
        """
        name: wf
        output:
          x: "{{ steps.nope.output }}"
        steps:
          - id: a
            llm: "{{ steps.b.output }}"
          - id: b
            group: [{id: a, tool: t}]
        """
    )
    assert msgs == [
        'output.x: steps.nope.output: no step has id "nope"',
        'steps[0].llm: steps.b.output: "b" runs after this step, so it has no value here',
        'steps[1].group[0].id: duplicate id "a"',
    ]


# --------------------------------------------------------------------------- other rules


def test_given_goto_to_an_unknown_step_or_itself_then_both_are_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: fetch
            tool: t
            on_error: {goto: fetch}
          - id: parse
            tool: t
            on_error: {goto: fecth}
        """
    ) == [
        "steps[0].on_error.goto: a step cannot go to itself on error; use retry to run it again",
        'steps[1].on_error.goto: no step has id "fecth" (did you mean "fetch"?)',
    ]


def test_given_goto_out_of_a_for_each_body_then_it_is_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: done
            tool: t
          - id: each
            loop:
              for_each: "inputs.items"
              steps: [{id: one, tool: t, on_error: {goto: done}}]
        """
    ) == [
        'steps[1].loop.steps[0].on_error.goto: cannot go to "done": it is in the top level and '
        'this step is in the body of for_each loop "each"; goto stays inside the top level, one '
        "parallel entry, one loop body, or one group, branch or while loop that has retry or "
        "on_error"
    ]


def test_given_a_rollback_to_itself_or_unknown_then_both_are_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: ok
            approval: {timeout: 1h, rollback_to: [ok, drfat]}
          - id: draft
            llm: x
        """
    ) == [
        "steps[0].approval.rollback_to[0]: an approval cannot roll back to itself; "
        "name an earlier step",
        'steps[0].approval.rollback_to[1]: no step has id "drfat" (did you mean "draft"?)',
    ]


def test_given_a_task_without_any_step_types_then_it_asks_to_declare_one() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: a
            task: extract
        """
    ) == ['steps[0].task: unknown step type "extract": declare it under step_types']


def test_given_a_fail_step_raising_an_unknown_loopline_error_then_it_is_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: a
            fail: nope
            error: Loopline.Rejectd
        """
    ) == ['steps[0].error: unknown error "Loopline.Rejectd" (did you mean "Loopline.Rejected"?)']


@pytest.mark.parametrize("name", ["inputs", "steps", "index"])
def test_given_a_reserved_loop_variable_name_then_it_is_reported(name: str) -> None:
    msgs = problems(
        f"""
        name: wf
        steps:
          - id: each
            loop:
              for_each: "inputs.items"
              as: {name}
              steps: [{{id: one, tool: t}}]
        """
    )
    assert msgs == [
        f'steps[0].loop.as: "{name}" is reserved; choose another name for the loop variable'
    ]


def test_given_succeed_inside_a_while_loop_then_it_is_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: w
            loop:
              while: "true"
              max_iterations: 2
              steps: [{id: s, succeed: done}]
        """
    ) == [
        "steps[0].loop.steps[0].succeed: succeed ends the whole task, so it cannot be inside "
        'while loop "w"; end it with its condition and succeed after it'
    ]


def test_given_timeouts_on_control_steps_then_each_is_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: a
            assert: "true"
            timeout: 5
          - id: b
            parallel: [{id: c, tool: t, timeout: 5}]
            timeout: 5
        """
    ) == [
        "steps[0].timeout: timeout applies to action and human steps, not to an assert step",
        "steps[1].timeout: timeout applies to action and human steps, not to a parallel step",
    ]


def test_given_an_input_default_of_the_wrong_type_then_it_is_reported() -> None:
    assert problems(
        """
        name: wf
        inputs:
          n: {type: number, default: "3"}
          ok: {type: boolean, default: false}
        steps:
          - id: a
            llm: "{{ inputs.n }}"
        """
    ) == ['inputs.n.default: default must be a number (got "3")']


# --------------------------------------------------------------------------- goto and units


@pytest.mark.parametrize(
    ("owner", "body_key"),
    [
        ("group", "group"),
        ("branch", "branch"),
        ("loop", "loop"),
    ],
)
def test_given_goto_out_of_a_control_step_with_on_error_then_it_is_reported(
    owner: str, body_key: str
) -> None:
    inner = "[{id: inner, tool: t, on_error: {goto: first}}]"
    spec = {
        "group": inner,
        "branch": f'{{if: "true", then: {inner}}}',
        "loop": f'{{while: "true", max_iterations: 2, steps: {inner}}}',
    }[owner]
    what = {"group": "group", "branch": "branch", "loop": "while loop"}[owner]
    msgs = problems(
        f"""
        name: wf
        steps:
          - id: first
            tool: t
          - id: unit
            on_error: continue
            {body_key}: {spec}
        """
    )
    assert len(msgs) == 1
    assert msgs[0].endswith(
        f'on_error.goto: cannot go to "first": it is in the top level and this step is in '
        f'{what} "unit" (a unit of its own: it has on_error); goto stays inside the top '
        "level, one parallel entry, one loop body, or one group, branch or while loop that "
        "has retry or on_error"
    )


def test_given_goto_into_a_group_with_retry_then_it_is_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: unit
            retry: {max_attempts: 2}
            group: [{id: inner, tool: t}]
          - id: last
            tool: t
            on_error: {goto: inner}
        """
    ) == [
        'steps[1].on_error.goto: cannot go to "inner": it is in group "unit" (a unit of its '
        "own: it has retry) and this step is in the top level; goto stays inside the top "
        "level, one parallel entry, one loop body, or one group, branch or while loop that "
        "has retry or on_error"
    ]


def test_given_goto_inside_one_unit_or_out_of_a_plain_group_then_it_loads_and_compiles() -> None:
    from loopline.compiler import compile_workflow

    wf = load(
        """
        name: wf
        steps:
          - id: first
            tool: t
          - id: plain
            group: [{id: a, tool: t, on_error: {goto: first}}]
          - id: unit
            on_error: continue
            branch:
              if: "true"
              then:
                - {id: b, tool: t}
                - {id: c, tool: t, on_error: {goto: b}}
              else:
                - {id: d, tool: t, on_error: {goto: b}}
        """
    )
    compile_workflow(wf)


# --------------------------------------------------------------------------- all at once


def test_given_an_invalid_step_then_the_other_steps_are_still_checked() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: first
            llm: hi
            max_turns: many
          - id: hold
            pause: Wait.
          - id: later
            llm: "{{ steps.nowhere.output }}"
        """
    ) == [
        "steps[0].max_turns: expected an integer",
        "steps[1].timeout: a pause needs a timeout: how long to wait (e.g. 48h)",
        'steps[2].llm: steps.nowhere.output: no step has id "nowhere"',
    ]


def test_given_references_to_invalid_steps_then_only_their_own_problems_are_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: fetch
            http: {url: "https://example.com", method: PUSH}
          - id: each
            loop: {for_each: "inputs.items", as: "1x", steps: [{id: one, tool: t}]}
          - id: use
            llm: "{{ steps.fetch.output }} {{ steps.each.output }}"
            on_error: {goto: fetch}
          - id: ask
            approval: {instruction: ok?, timeout: 1h, rollback_to: [fetch]}
        """
    ) == [
        "steps[0].http.method: 'PUSH' is not one of 'GET', 'POST', 'PUT', 'PATCH', 'DELETE' or "
        "'HEAD'",
        "steps[1].loop.as: '1x' is not a valid name: a letter, then letters, digits or _",
    ]


def test_given_a_step_with_an_invalid_id_then_steps_naming_it_are_not_reported_again() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: first-draft
            llm: Draft.
          - id: review
            llm: "{{ steps.polish.output }}"
          - id: polish
            llm: Polish.
        """
    ) == [
        "steps[0].id: 'first-draft' is not a valid id: a letter, then letters, digits or _ "
        "(at most 40)",
        'steps[1].llm: steps.polish.output: "polish" runs after this step, so it has no value here',
    ]


def test_given_an_invalid_if_then_guards_it_may_hold_are_not_doubted() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: route
            branch: {if: "true", then: [{id: fix, tool: t}]}
          - id: report
            if: "exists(steps.fix) and =="
            llm: "{{ steps.fix.output }}"
        """
    ) == [
        "steps[1].if: invalid expression: unexpected '==', expected a value: a path, a "
        "number, a string, true, false, null or ( (column 23)"
    ]


def test_given_a_loop_with_a_bad_field_and_a_broken_rule_then_both_are_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: w
            loop:
              while: "=="
              as: x
              steps: [{id: a, tool: t, timeout: soon}]
        """
    ) == [
        "steps[0].loop: a while loop needs max_iterations (1..1000)",
        "steps[0].loop.while: invalid expression: unexpected '==', expected a value: a path, a "
        "number, a string, true, false, null or ( (column 1)",
        "steps[0].loop.steps[0].timeout: invalid duration 'soon': use seconds or 30s, 5m, 48h, 2d",
    ]


def test_given_an_input_breaking_several_rules_then_each_is_its_own_problem() -> None:
    assert problems(
        """
        name: wf
        inputs:
          n: {type: integer, values: [1, 2], pattern: "[0-9]", min_length: 3, max_length: 1}
          e: {type: enum, default: x}
          s: {type: string, default: 3}
        steps:
          - id: a
            llm: "{{ inputs.n }}"
        """
    ) == [
        "inputs.n.values: values applies to enum inputs only",
        "inputs.n.pattern: pattern applies to string inputs only",
        "inputs.n.min_length: min_length is greater than max_length",
        "inputs.e: an enum input needs values",
        "inputs.s.default: default must be text (got 3)",
    ]


def test_given_a_bad_on_error_then_it_reads_as_the_language() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: a
            tool: t
            on_error: stop
          - id: b
            tool: t
            on_error: {got: a}
        """
    ) == [
        'steps[0].on_error: expected "continue" or {goto: <step id>}',
        "steps[1].on_error.goto: is required",
        'steps[1].on_error.got: unknown key "got" (did you mean "goto"?)',
    ]


# --------------------------------------------------------------------------- the environment


def checked(text: str, context: CheckContext) -> list[str]:
    with pytest.raises(WorkflowInvalid) as caught:
        load_workflow_text(textwrap.dedent(text), "wf.yaml", context)
    return [f"{p.path}: {p.message}" for p in caught.value.problems]


TOOLS_AND_FUNCTIONS = """
    name: wf
    step_types:
      count: {function: WordCountFunctoin}
      other: {function: "arn:aws:lambda:us-east-1:123456789012:function:other"}
    steps:
      - id: fetch
        tool: htp_get
      - id: ask
        llm: Answer.
        tools: [now, zzz]
      - id: n
        task: count
    """


def test_given_tool_and_function_names_the_context_does_not_know_then_each_is_reported() -> None:
    context = CheckContext(tools={"http_get", "now"}, functions={"WordCountFunction"})

    assert checked(TOOLS_AND_FUNCTIONS, context) == [
        'step_types.count.function: "WordCountFunctoin" is neither an ARN nor a function of '
        'template.yaml (did you mean "WordCountFunction"?)',
        'steps[0].tool: unknown tool "htp_get" (did you mean "http_get"?)',
        'steps[1].tools[1]: unknown tool "zzz"; the tools are http_get, now',
    ]


def test_given_no_context_then_tool_and_function_names_are_not_judged() -> None:
    load(TOOLS_AND_FUNCTIONS)


def test_given_a_context_that_cannot_tell_then_nothing_is_reported() -> None:
    class Unsure(CheckContext):
        def tool_names(self, wanted: Collection[str]) -> Collection[str] | None:
            return None

    load_workflow_text(textwrap.dedent(TOOLS_AND_FUNCTIONS), "wf.yaml", Unsure())


def test_given_a_workflow_without_tools_or_named_functions_then_the_context_is_not_asked() -> None:
    class Refuses(CheckContext):
        def tool_names(self, wanted: Collection[str]) -> Collection[str] | None:
            raise AssertionError("asked for tools")

        def function_names(self) -> Collection[str] | None:
            raise AssertionError("asked for functions")

    load_workflow_text("name: wf\nsteps: [{id: a, llm: hi}]\n", "wf.yaml", Refuses())


def test_given_a_reference_to_a_later_invalid_step_then_both_problems_are_reported() -> None:
    assert problems(
        """
        name: wf
        steps:
          - id: a
            llm: "{{ steps.b.output }}"
          - id: b
            http: {url: "https://example.com", method: PUSH}
        """
    ) == [
        'steps[0].llm: steps.b.output: "b" runs after this step, so it has no value here',
        "steps[1].http.method: 'PUSH' is not one of 'GET', 'POST', 'PUT', 'PATCH', 'DELETE' or "
        "'HEAD'",
    ]
