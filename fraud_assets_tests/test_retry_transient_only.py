"""Retries for transient faults only: Dagster's RetryPolicy retries any exception, the wrapper
turns everything that is not transient into a non-retryable failure."""

import dagster as dg
import pytest

from fraud_assets.clickhouse.errors import is_transient, retry_transient_only
from fraud_assets.definitions import defs

FAST_RETRIES = dg.RetryPolicy(max_retries=2, delay=0.01)


def _materialize(*assets) -> dg.ExecuteInProcessResult:
    return dg.materialize(list(assets), raise_on_error=False)


def _events(result: dg.ExecuteInProcessResult, event_type: str) -> list:
    return [e for e in result.all_events if e.event_type_value == event_type]


def _failing_first(fault: Exception) -> tuple[dg.AssetsDefinition, list[int]]:
    """An asset that raises ``fault`` on its first attempt and succeeds after; its attempts."""
    calls: list[int] = []

    @dg.asset(retry_policy=FAST_RETRIES)
    @retry_transient_only
    def flaky(context: dg.AssetExecutionContext) -> int:
        calls.append(context.retry_number)
        if context.retry_number == 0:
            raise fault
        return 1

    return flaky, calls


def test_a_bug_fails_once_with_the_original_error_in_the_message():
    calls = []

    @dg.asset(retry_policy=FAST_RETRIES)
    @retry_transient_only
    def buggy(context: dg.AssetExecutionContext) -> int:
        calls.append(context.retry_number)
        return {"a": 1}["b"]

    result = _materialize(buggy)
    assert not result.success
    assert calls == [0]
    assert _events(result, "STEP_UP_FOR_RETRY") == []
    (failure,) = _events(result, "STEP_FAILURE")
    error = failure.event_specific_data.error
    assert "KeyError: 'b'" in error.message and "not retried" in error.message
    assert error.cause is not None and "KeyError" in error.cause.cls_name


@pytest.mark.parametrize("fault", [TimeoutError("read timed out"), ConnectionError("reset")])
def test_a_transient_fault_is_retried_until_it_clears(fault: Exception):
    flaky, calls = _failing_first(fault)
    result = _materialize(flaky)
    assert result.success
    assert calls == [0, 1]
    assert len(_events(result, "STEP_UP_FOR_RETRY")) == 1


def test_generator_assets_are_wrapped_as_generators():
    calls = []

    @dg.multi_asset(
        outs={"first": dg.AssetOut(), "second": dg.AssetOut()}, retry_policy=FAST_RETRIES
    )
    @retry_transient_only
    def pair(context: dg.AssetExecutionContext):
        calls.append(context.retry_number)
        yield dg.Output(1, output_name="first")
        if context.retry_number == 0:
            raise TimeoutError("the second half timed out")
        yield dg.Output(2, output_name="second")

    result = _materialize(pair)
    assert result.success and calls == [0, 1]

    @dg.multi_asset(outs={"third": dg.AssetOut()}, retry_policy=FAST_RETRIES)
    @retry_transient_only
    def broken(context: dg.AssetExecutionContext):
        calls.append(context.retry_number)
        raise ValueError("bad data")
        yield  # pragma: no cover (a generator)

    calls.clear()
    result = _materialize(broken)
    assert not result.success and calls == [0]


def test_a_transient_fault_wrapped_in_another_exception_is_still_transient():
    try:
        try:
            raise ConnectionError("connection refused")
        except ConnectionError as cause:
            raise RuntimeError("could not read the hour") from cause
    except RuntimeError as exc:
        wrapped = exc
    assert not is_transient(wrapped)

    reader, calls = _failing_first(wrapped)
    assert _materialize(reader).success and calls == [0, 1]


def test_a_bug_while_handling_a_transient_fault_is_not_retried():
    try:
        try:
            raise ConnectionError("connection refused")
        except ConnectionError:
            int("fallback")  # the bug: raised while handling, so only an implicit __context__
    except ValueError as exc:
        bug = exc
    assert isinstance(bug.__context__, ConnectionError)

    reader, calls = _failing_first(bug)
    assert not _materialize(reader).success and calls == [0]


def test_dagster_failures_pass_through_unchanged():
    @dg.asset(retry_policy=FAST_RETRIES)
    @retry_transient_only
    def refuses() -> int:
        raise dg.Failure("no active model", allow_retries=False)

    result = _materialize(refuses)
    (failure,) = _events(result, "STEP_FAILURE")
    assert failure.event_specific_data.error.cls_name == "Failure"
    assert "no active model" in failure.event_specific_data.error.message
    assert "not retried" not in failure.event_specific_data.error.message


def test_every_asset_with_a_retry_policy_retries_transient_faults_only():
    unwrapped, retried = [], 0
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if not assets_def.is_executable or not hasattr(assets_def, "op"):
            continue
        op = assets_def.op
        if op.retry_policy is None:
            continue
        retried += 1
        function = op.compute_fn.decorated_fn
        if getattr(function, "__wrapped__", None) is None:
            unwrapped.append(op.name)
    assert retried >= 15, "the scoring, training and monitoring assets carry retry policies"
    assert unwrapped == []
