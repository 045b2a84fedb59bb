"""A Batch job is never orphaned: every way the polling loop can end early terminates the job, transient
errors are retried, a throttled final log read does not fail a successful job, and a retry of the step
attaches to the job an earlier attempt left running. moto + `LocalBatchClient` (real local processes)."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from aws_fakes import LocalBatchClient, ThrottlingLogs, setup_batch, throttle
from botocore.exceptions import ClientError, EndpointConnectionError
from conftest_aws import MotoEndpoint
from dagster_pipes import encode_param

from rosbag_assets.compute.batch import BatchCompute
from rosbag_assets.compute.batch_client import PipesBatchClient
from rosbag_assets.steps.fanout import FanOut, array_extras

pytestmark = pytest.mark.timeout(120)

# A job that reports a materialization after a few seconds (long enough for several polls).
WORKER = """
import time
from dagster_pipes import open_dagster_pipes
with open_dagster_pipes() as pipes:
    pipes.log.info("worker started")
    time.sleep(float(pipes.extras.get("seconds", 2)))
    pipes.report_asset_materialization(metadata={"answer": 42})
"""


@pytest.fixture
def fake(moto_server: MotoEndpoint) -> Iterator[LocalBatchClient]:
    setup_batch(moto_server)
    client = LocalBatchClient(moto_server.client("batch"), moto_server.client("logs"))
    try:
        yield client
    finally:
        client.close()


def _asset(client: PipesBatchClient, seconds: float = 2, retries: int = 0) -> dg.AssetsDefinition:
    @dg.asset(name="worker", retry_policy=dg.RetryPolicy(max_retries=retries) if retries else None)
    def worker(context: dg.AssetExecutionContext):
        params = {
            "jobName": f"worker-{context.run_id[:8]}",
            "jobQueue": "cpu",
            "jobDefinition": "rosbag",
            "containerOverrides": {"command": ["python", "-c", WORKER]},
        }
        return client.run(
            context=context, submit_job_params=params, extras={"seconds": seconds}
        ).get_results()

    return worker


def _client(fake: LocalBatchClient, moto: MotoEndpoint, **kw: Any) -> PipesBatchClient:
    kw.setdefault("logs_client", moto.client("logs"))
    return PipesBatchClient(fake, poll_interval_s=0.1, logs_grace_s=10, max_poll_errors=3, **kw)


def _error(result: dg.ExecuteInProcessResult) -> str:
    return result.get_step_failure_events()[0].step_failure_data.error.to_string()


def _assert_terminated(fake: LocalBatchClient) -> None:
    (job,) = fake.jobs.values()
    assert fake.terminated == [job.job_id]
    assert job.done.wait(10) and job.process is not None and job.process.poll() is not None
    assert job.status == "FAILED" and job.status_reason.startswith(
        "Dagster: the Dagster step stopped waiting"
    )


def test_transient_throttling_while_polling_is_retried(
    fake: LocalBatchClient, moto_server: MotoEndpoint
) -> None:
    fake.describe_faults = [None, throttle("DescribeJobs"), throttle("DescribeJobs"), None]
    result = dg.materialize([_asset(_client(fake, moto_server))])
    assert result.success
    assert fake.terminated == [] and len(fake.submitted) == 1
    assert result.asset_materializations_for_node("worker")[0].metadata["answer"].value == 42


@pytest.mark.parametrize(
    "fault",
    [
        throttle("DescribeJobs"),
        pytest.param(
            EndpointConnectionError(endpoint_url="https://batch.us-east-1.amazonaws.com"),
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeJobs"),
            marks=pytest.mark.slow,
        ),
    ],
    ids=["throttled", "network", "access-denied"],
)
def test_polling_that_fails_for_good_terminates_the_job(
    fake: LocalBatchClient,
    moto_server: MotoEndpoint,
    fault: Exception,
) -> None:
    fake.describe_faults = [None] + [fault] * 20  # the job is submitted and seen once, then polls fail
    result = dg.materialize([_asset(_client(fake, moto_server), seconds=30)], raise_on_error=False)
    assert not result.success
    _assert_terminated(fake)
    transient = not isinstance(fault, ClientError) or "Throttling" in str(fault)
    assert ("RemoteJobLost" in _error(result)) is transient  # retried, then given up; or final at once
    assert len(fake.submitted) == 1


def test_a_vanished_job_is_given_up_and_terminated(fake: LocalBatchClient, moto_server: MotoEndpoint) -> None:
    calls: list[int] = []

    @dg.asset(name="worker")
    def worker(context: dg.AssetExecutionContext):
        client = _client(fake, moto_server)
        params = {
            "jobName": "vanishing",
            "jobQueue": "cpu",
            "jobDefinition": "rosbag",
            "containerOverrides": {"command": ["python", "-c", WORKER]},
        }
        fake.vanished = True  # describe_jobs returns no job at all (an IndexError before)
        calls.append(1)
        return client.run(context=context, submit_job_params=params, extras={"seconds": 30}).get_results()

    result = dg.materialize([worker], raise_on_error=False)
    assert not result.success and calls == [1]
    assert "RemoteJobLost" in _error(result) and "does not know job" in _error(result)
    _assert_terminated(fake)


def test_a_throttled_final_log_read_does_not_fail_a_successful_job(
    fake: LocalBatchClient,
    moto_server: MotoEndpoint,
) -> None:
    logs = ThrottlingLogs(moto_server.client("logs"))
    result = dg.materialize([_asset(_client(fake, moto_server, logs_client=logs), seconds=0.5)])
    assert result.success
    assert logs.closed_seen and logs.throttled >= 4  # every read after the last message was throttled
    assert result.asset_materializations_for_node("worker")[0].metadata["answer"].value == 42


def test_a_retry_attaches_to_the_job_an_earlier_attempt_left_running(
    fake: LocalBatchClient,
    moto_server: MotoEndpoint,
) -> None:
    # The first attempt dies while polling without stopping its job (as a killed step process would:
    # forward_termination=False); Dagster's retry policy runs the step again.
    fake.describe_faults = [None, ClientError({"Error": {"Code": "AccessDeniedException"}}, "DescribeJobs")]
    client = _client(fake, moto_server, forward_termination=False)
    result = dg.materialize([_asset(client, seconds=4, retries=1)])
    assert result.success
    assert len(fake.submitted) == 1 and fake.terminated == []  # attached: no second job
    (job,) = fake.jobs.values()
    assert job.exit_code == 0
    # the job's messages (written before and after the retry began) reached the retry's session
    assert result.asset_materializations_for_node("worker")[0].metadata["answer"].value == 42
    events = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" in events


def test_a_retried_fanned_out_step_keeps_the_plan_of_its_live_array_job() -> None:
    plan = FanOut(parts=[{"bag_names": ["a"], "version": "v1"}, {"bag_names": ["b"], "version": "v1"}])
    context = encode_param({"data": {"extras": array_extras(plan)}})
    job = {"container": {"environment": [{"name": "DAGSTER_PIPES_CONTEXT", "value": context}]}}
    assert BatchCompute._plan_of(job) == plan  # same parts, same shared version: the finish step matches
    assert BatchCompute._plan_of({"container": {"environment": []}}) is None
