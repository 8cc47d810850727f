"""Approval: a tool asks from inside its run, ApprovalHook asks the handler (sync or async),
the call runs again approved or is denied, the run waits when nobody can answer, and every
request and answer is in the audit log and the run record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import openai
import pytest

from looplet import (
    ErrorKind,
    StopReason,
    ToolCall,
    ToolContext,
    ToolSpec,
    composable_loop,
)
from looplet.approval import (
    Approval,
    ApprovalHook,
    ApprovalRequest,
    AsyncApprovalHook,
    NeedsApproval,
    approval_request,
)
from looplet.backends import OpenAIBackend
from looplet.errors import AsyncHookError
from looplet.permissions import PermissionDecision, PermissionEngine, PermissionHook
from looplet.record.codec import decode_trajectory, encode_trajectory
from looplet.testing import MockLLMBackend, ScriptedModelServer, call, tool_reply
from looplet.types import ToolResult
from tests.conftest import RunLoop, make_tools, run_async, run_sync

DEPLOY = ToolCall("deploy", {"env": "prod"}, call_id="c1")
DONE = ToolCall("done", {"answer": "ok"}, call_id="c9")


class Deployer:
    """A tool that asks before its side effect, and counts what it did."""

    def __init__(self) -> None:
        self.deployed: list[tuple[str, str | None]] = []
        self.entered = 0

    def spec(self) -> ToolSpec:
        def deploy(env: str, ctx: ToolContext) -> dict[str, Any]:
            self.entered += 1
            granted = ctx.approve(f"deploy to {env}", options=["now", "tonight"])
            self.deployed.append((env, granted.option))
            return {"deployed": env, "when": granted.option}

        return ToolSpec("deploy", "Deploy.", {"env": "str"}, deploy)

    def async_spec(self) -> ToolSpec:
        async def deploy(env: str, ctx: ToolContext) -> dict[str, Any]:
            self.entered += 1
            await asyncio.sleep(0)
            granted = ctx.approve(f"deploy to {env}", options=["now", "tonight"])
            self.deployed.append((env, granted.option))
            return {"deployed": env, "when": granted.option}

        return ToolSpec("deploy", "Deploy.", {"env": "str"}, deploy)


def llm() -> MockLLMBackend:
    return MockLLMBackend([DEPLOY, DONE])


# -- approve, choose an option, deny --------------------------------------------------------


def test_an_approved_call_runs_again_with_the_approval_and_its_result_is_the_step(
    run_loop: RunLoop,
) -> None:
    asked: list[ApprovalRequest] = []

    def human(request: ApprovalRequest) -> str:
        asked.append(request)
        return "tonight"  # one of the options: approved with it

    tool = Deployer()
    hook = ApprovalHook(human)
    steps, traj = run_loop(llm=llm(), tools=make_tools(d=tool.spec()), task="t", hooks=[hook])

    assert traj.stop_reason is StopReason.DONE and [s.ok for s in steps] == [True, True]
    assert steps[0].tool_result.data == {"deployed": "prod", "when": "tonight"}
    assert tool.deployed == [("prod", "tonight")]  # the side effect happened once
    assert tool.entered == 2  # asked, then ran again approved
    (request,) = asked
    assert (request.step, request.tool, dict(request.args)) == (1, "deploy", {"env": "prod"})
    assert (request.description, request.options) == ("deploy to prod", ("now", "tonight"))
    (entry,) = hook.audit_log
    assert entry.decision is PermissionDecision.ALLOW and entry.decided_by == "approval_handler"
    assert "'tonight'" in entry.reason and entry.asked and entry.step == 1
    assert traj.permission_decisions == [entry]


def test_a_denied_call_is_a_permission_denied_step_the_model_reads(run_loop: RunLoop) -> None:
    tool = Deployer()
    model = llm()
    hook = ApprovalHook(lambda request: ("deny", "freeze until Monday"))
    steps, traj = run_loop(llm=model, tools=make_tools(d=tool.spec()), task="t", hooks=[hook])

    assert steps[0].tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert tool.deployed == [] and tool.entered == 1
    assert "freeze until Monday" in (steps[0].tool_result.error or "")
    told = model.requests[1].messages[-1]
    assert told.role == "tool" and "freeze until Monday" in told.content
    assert traj.denied() == [steps[0]]
    (entry,) = traj.permission_decisions
    assert entry.decision is PermissionDecision.DENY and "freeze until Monday" in entry.reason


@pytest.mark.parametrize(
    ("answer", "approved", "option"),
    [
        (True, True, None),
        ("approve", True, None),
        (PermissionDecision.ALLOW, True, None),
        (Approval(True, option="now", reason="go"), True, "now"),
        (False, False, None),
        ("no", False, None),
        ("maybe", False, None),  # not an answer: denied
        (Approval(True, option="at noon"), False, None),  # not an option offered: denied
        (None, False, None),
    ],
)
def test_the_handler_may_answer_in_several_forms_and_anything_else_denies(
    answer: Any, approved: bool, option: str | None
) -> None:
    tool = Deployer()
    hook = ApprovalHook(lambda request: answer)
    steps, _ = run_sync(llm=llm(), tools=make_tools(d=tool.spec()), task="t", hooks=[hook])
    assert steps[0].ok is approved
    assert tool.deployed == ([("prod", option)] if approved else [])


def test_a_raising_handler_denies_and_the_audit_log_says_why(run_loop: RunLoop) -> None:
    def broken(request: ApprovalRequest) -> bool:
        raise ConnectionError("approval service down")

    hook = ApprovalHook(broken)
    steps, traj = run_loop(llm=llm(), tools=make_tools(d=Deployer().spec()), task="t", hooks=[hook])
    assert steps[0].tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert traj.stop_reason is StopReason.DONE  # the run goes on
    (entry,) = hook.audit_log
    assert entry.decided_by == "error" and "approval service down" in entry.reason


# -- async handlers and async tools -----------------------------------------------------------


def test_an_async_handler_is_awaited_by_the_async_loop_with_an_async_tool() -> None:
    answered: list[str] = []

    async def human(request: ApprovalRequest) -> str:
        await asyncio.sleep(0)
        answered.append(request.description)
        return "now"

    hook = ApprovalHook(human)
    assert isinstance(hook, AsyncApprovalHook)
    tool = Deployer()
    steps, traj = run_async(
        llm=llm(), tools=make_tools(d=tool.async_spec()), task="t", hooks=[hook]
    )
    assert traj.stop_reason is StopReason.DONE and steps[0].ok
    assert answered == ["deploy to prod"] and tool.deployed == [("prod", "now")]
    assert [e.decided_by for e in traj.permission_decisions] == ["approval_handler"]


def test_a_sync_handler_serves_an_async_tool_in_the_async_loop() -> None:
    tool = Deployer()
    steps, _ = run_async(
        llm=llm(),
        tools=make_tools(d=tool.async_spec()),
        task="t",
        hooks=[ApprovalHook(lambda r: True)],
    )
    assert steps[0].ok and tool.deployed == [("prod", None)]


def test_the_sync_loop_refuses_an_async_handler_when_the_run_starts() -> None:
    async def human(request: ApprovalRequest) -> bool:
        return True

    model = llm()
    with pytest.raises(AsyncHookError, match="async_composable_loop"):
        composable_loop(
            llm=model, tools=make_tools(d=Deployer().spec()), task="t", hooks=[ApprovalHook(human)]
        )
    assert model.requests == []  # before any model call


# -- nobody to answer: the run waits ----------------------------------------------------------


def test_with_no_handler_the_run_stops_waiting_and_an_answer_applies_next_time() -> None:
    tool = Deployer()
    hook = ApprovalHook()
    tools = make_tools(d=tool.spec())
    steps, traj = run_sync(llm=llm(), tools=tools, task="t", hooks=[hook])

    assert traj.stop_reason is StopReason.HOOK_STOP
    assert traj.stop_detail == "waiting_for_approval: deploy: deploy to prod"
    assert len(steps) == 1 and tool.deployed == []  # nothing was done
    pending = hook.pending
    assert pending is not None and pending.description == "deploy to prod"
    assert pending.to_dict() == {
        "step": 1,
        "tool": "deploy",
        "args": {"env": "prod"},
        "description": "deploy to prod",
        "options": ["now", "tonight"],
        "call_id": "c1",
    }
    (entry,) = traj.permission_decisions
    assert entry.decision is PermissionDecision.ASK and entry.decided_by == "approval_pending"

    given = hook.answer("now", "signed off by Dana")  # later: a human answers
    assert given.approved and hook.pending is None
    model = MockLLMBackend([ToolCall("deploy", {"env": "prod"}, call_id="c2"), DONE])
    steps, traj = run_sync(llm=model, tools=tools, task="t", hooks=[hook])
    assert "deploy to prod) was approved (option 'now'): signed off by Dana" in (
        model.requests[0].messages[-1].content
    )
    assert steps[0].ok and tool.deployed == [("prod", "now")]  # no second question
    assert [e.decided_by for e in hook.audit_log] == ["approval_pending", "approval_answer"]
    with pytest.raises(LookupError, match="no request is pending"):
        hook.answer(True)


def test_without_an_approval_hook_a_request_fails_closed(run_loop: RunLoop) -> None:
    tool = Deployer()
    steps, traj = run_loop(llm=llm(), tools=make_tools(d=tool.spec()), task="t")
    assert steps[0].tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert "approval required: deploy to prod" in (steps[0].tool_result.error or "")
    assert tool.deployed == [] and traj.stop_reason is StopReason.DONE
    # Outside a loop too: dispatch gives the same failure.
    result = make_tools(d=tool.spec()).dispatch(DEPLOY)
    assert result.error_kind is ErrorKind.PERMISSION_DENIED


# -- the original's data marker, and data that asks nothing ------------------------------------


def legacy_tool(reads_approval: bool) -> ToolSpec:
    def transfer(amount: int, ctx: ToolContext) -> dict[str, Any]:
        if reads_approval and ctx.approval:
            return {"transferred": amount, "approved_by": ctx.approval.reason}
        return {"needs_approval": True, "description": f"transfer {amount}", "options": None}

    return ToolSpec("transfer", "Move money.", {"amount": "int"}, transfer)


def test_the_originals_needs_approval_data_asks_too(run_loop: RunLoop) -> None:
    model = MockLLMBackend([ToolCall("transfer", {"amount": 500}), DONE])
    hook = ApprovalHook(lambda r: (r.description == "transfer 500", "under the limit"))
    steps, _ = run_loop(llm=model, tools=make_tools(t=legacy_tool(True)), task="t", hooks=[hook])
    assert steps[0].tool_result.data == {"transferred": 500, "approved_by": "under the limit"}


def test_a_tool_that_asks_again_once_approved_is_an_error_not_a_loop(run_loop: RunLoop) -> None:
    asked: list[str] = []

    def human(request: ApprovalRequest) -> bool:
        asked.append(request.description)
        return True

    hook = ApprovalHook(human)
    model = MockLLMBackend([ToolCall("transfer", {"amount": 5}), DONE])
    steps, _ = run_loop(llm=model, tools=make_tools(t=legacy_tool(False)), task="t", hooks=[hook])
    assert asked == ["transfer 5"]
    assert steps[0].tool_result.error_kind is ErrorKind.EXECUTION
    assert "asked again for the approval it was given" in (steps[0].tool_result.error or "")


@pytest.mark.parametrize(
    "data", [[{"needs_approval": True}], "needs_approval", 7, None, {"needs_approval": "yes"}]
)
def test_data_that_is_not_the_marker_asks_nothing_and_never_crashes(data: Any) -> None:
    spec = ToolSpec("listing", "List.", None, lambda: data)
    asked: list[ApprovalRequest] = []

    def human(request: ApprovalRequest) -> bool:
        asked.append(request)
        return True

    hook = ApprovalHook(human)
    model = MockLLMBackend([ToolCall("listing", {}), DONE])
    steps, traj = run_sync(llm=model, tools=make_tools(l=spec), task="t", hooks=[hook])
    assert steps[0].ok and steps[0].tool_result.data == data and asked == []
    assert traj.permission_decisions == []
    assert approval_request(ToolCall("x"), ToolResult("x", data=data), 1) is None


def test_a_tool_may_raise_needs_approval_and_ask_twice() -> None:
    def wipe(ctx: ToolContext) -> str:
        first = ctx.approve("wipe the cache")
        second = ctx.approve("wipe the logs", options=["keep a copy", "no copy"])
        return f"{bool(first)} {second.option}"

    asked: list[str] = []

    def human(request: ApprovalRequest) -> Any:
        asked.append(request.description)
        return request.options[0] if request.options else True

    model = MockLLMBackend([ToolCall("wipe", {}), DONE])
    steps, traj = run_sync(
        llm=model,
        tools=make_tools(w=ToolSpec("wipe", "Wipe.", None, wipe)),
        task="t",
        hooks=[ApprovalHook(human)],
    )
    assert steps[0].tool_result.data == "True keep a copy"
    assert asked == ["wipe the cache", "wipe the logs"]
    assert len(traj.permission_decisions) == 2
    with pytest.raises(TypeError, match="say what needs approval"):
        NeedsApproval("")


def test_a_call_that_keeps_asking_is_denied_after_max_asks() -> None:
    counter = iter(range(100))

    def needy(ctx: ToolContext) -> str:
        ctx.approve(f"question {next(counter)}")  # a new question every time
        return "never"

    model = MockLLMBackend([ToolCall("needy", {}), DONE])
    hook = ApprovalHook(lambda r: True, max_asks=2)
    steps, _ = run_sync(
        llm=model,
        tools=make_tools(n=ToolSpec("needy", "N.", None, needy)),
        task="t",
        hooks=[hook],
    )
    assert steps[0].tool_result.error_kind is ErrorKind.PERMISSION_DENIED
    assert "asked more than 2 times" in (steps[0].tool_result.error or "")
    assert [e.decision.value for e in hook.audit_log] == ["allow", "allow", "deny"]


# -- the audit log and the record ----------------------------------------------------------


def test_entries_join_the_permission_engines_audit_log_and_the_run_record(
    tmp_path: Path,
) -> None:
    engine = PermissionEngine().allow("deploy").allow("done")
    hook = ApprovalHook(lambda r: ("now", "change #42"), engine=engine)
    steps, traj = run_sync(
        llm=llm(),
        tools=make_tools(d=Deployer().spec()),
        task="t",
        hooks=[PermissionHook(engine, guard_done=True), hook],
    )
    assert steps[0].ok
    by = [(e.tool, e.decided_by) for e in engine.audit_log]
    assert by == [("deploy", "rule"), ("deploy", "approval_handler"), ("done", "rule")]
    assert hook.audit_log is engine.audit_log
    lines = engine.write_audit_log(tmp_path / "audit.jsonl").read_text().splitlines()
    approved = json.loads(lines[1])
    assert approved["decision"] == "allow" and "change #42" in approved["reason"]
    again = decode_trajectory(json.loads(json.dumps(encode_trajectory(traj))), "run")
    assert [d.decided_by for d in again.permission_decisions] == [e[1] for e in by]
    assert again.permission_decisions[1].reason == engine.audit_log[1].reason


# -- over HTTP, with the real OpenAI SDK ----------------------------------------------------


def test_approval_in_a_run_through_the_openai_sdk() -> None:
    script = [
        tool_reply(call("deploy", {"env": "staging"})),
        tool_reply(call("done", {"answer": "deployed"})),
    ]
    tool = Deployer()
    hook = ApprovalHook(lambda r: "now")
    with ScriptedModelServer(script) as server:
        with openai.OpenAI(base_url=server.base_url, api_key="sk-test") as client:
            run = composable_loop(
                llm=OpenAIBackend(client, model="gpt-4o-mini"),
                tools=make_tools(d=tool.spec()),
                task="Deploy to staging.",
                hooks=[hook],
            )
            steps = list(run)
        sent = server.requests[1].body["messages"][-1]
    assert [s.ok for s in steps] == [True, True] and tool.deployed == [("staging", "now")]
    assert sent["role"] == "tool" and "staging" in sent["content"]
    assert [e.decided_by for e in run.trajectory.permission_decisions] == ["approval_handler"]


def test_a_paused_run_continues_in_its_conversation_even_in_another_process(
    tmp_path: Path,
) -> None:
    from looplet.conversation import Conversation

    tool = Deployer()
    tools = make_tools(d=tool.spec())
    conv = Conversation()
    hook = ApprovalHook()
    _, first = run_sync(llm=llm(), tools=tools, task="Deploy.", hooks=[hook], conversation=conv)
    assert first.stop_detail.startswith("waiting_for_approval") and hook.pending is not None
    conv.save(tmp_path / "chat.json")
    kept = json.dumps(hook.pending.to_dict())  # what the app keeps while a human decides

    # Later, elsewhere: a new hook, the conversation and the request read back.
    later = ApprovalHook()
    later.answer("tonight", "after the freeze", request=ApprovalRequest.from_dict(json.loads(kept)))
    conv = Conversation.load(tmp_path / "chat.json")
    model = MockLLMBackend([ToolCall("deploy", {"env": "prod"}, call_id="c2"), DONE])
    steps, traj = run_sync(llm=model, tools=tools, task=None, hooks=[later], conversation=conv)

    seen = [m.content for m in model.requests[0].messages]
    assert any("approval required: deploy to prod" in text for text in seen)  # the pause
    assert "was approved (option 'tonight'): after the freeze" in seen[-1]  # the answer
    assert traj.stop_reason is StopReason.DONE and steps[0].ok
    assert tool.deployed == [("prod", "tonight")]
    assert [e.decided_by for e in traj.permission_decisions] == ["approval_answer"]
    with pytest.raises(TypeError, match="'options': expected list"):
        ApprovalRequest.from_dict({**json.loads(kept), "options": "now"})


def test_the_engine_runs_a_call_again_at_most_max_reruns_times(run_loop: RunLoop) -> None:
    from looplet._engine_hooks import MAX_RERUNS
    from looplet.hooks import HookDecision

    seen: list[Any] = []

    def count(ctx: ToolContext) -> int:
        seen.append(ctx.approval)
        return len(seen)

    class AlwaysApproves:
        def post_dispatch(self) -> HookDecision:
            return HookDecision(approval=Approval(True, reason="again"))

    model = MockLLMBackend([ToolCall("count", {}), DONE])
    tools = make_tools(c=ToolSpec("count", "Count.", None, count))
    steps, traj = run_loop(llm=model, tools=tools, task="t", hooks=[AlwaysApproves()])
    assert len(seen) == 1 + MAX_RERUNS and seen[0] is None and seen[1].reason == "again"
    assert steps[0].tool_result.data == 1 + MAX_RERUNS  # the last run's result
    assert traj.tools == ["count", "done"]


def test_a_kept_request_that_is_no_object_is_refused_naming_it() -> None:
    # It said "(string indices must be integers, not 'str' missing)".
    with pytest.raises(TypeError, match=r"an approval request is an object .*, got str"):
        ApprovalRequest.from_dict("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"'description' missing"):
        ApprovalRequest.from_dict({"step": 1, "tool": "t", "args": {}})


def test_the_model_is_told_an_answer_once_not_at_every_later_run() -> None:
    # The answer waits for the model to call again, but the notice of it was prepended to
    # every later run (each turn of a chat) for as long as the model did not call again.
    tool = Deployer()
    hook = ApprovalHook()
    tools = make_tools(d=tool.spec())
    run_sync(llm=llm(), tools=tools, task="t", hooks=[hook])
    hook.answer("deny", "not today")
    told = "deploy to prod) was denied: not today"
    first = MockLLMBackend([DONE])
    run_sync(llm=first, tools=tools, task="t", hooks=[hook])
    assert told in first.requests[0].messages[-1].content
    second = MockLLMBackend([DONE])
    run_sync(llm=second, tools=tools, task="t", hooks=[hook])
    assert all(told not in (m.content or "") for m in second.requests[0].messages)
    # The answer itself still applies when the model calls again, without asking.
    again = MockLLMBackend([ToolCall("deploy", {"env": "prod"}, call_id="c3"), DONE])
    steps, _ = run_sync(llm=again, tools=tools, task="t", hooks=[hook])
    assert steps[0].tool_result.error_kind == "permission_denied" and tool.deployed == []
    assert hook.pending is None and hook._asked == {}  # nothing kept for the calls that ended
