"""A typed facade over Temporal for other Python services: start and drive exchanges by application id.

Callers never touch workflow ids, update names or the data converter; they get our own exceptions
with a message naming the field and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_json
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from schemas.codec import PayloadKeys
from schemas.converter import data_converter, describe_errors
from schemas.errors import Refusal
from schemas.exchange import (
    ApplicationInput,
    CancelInput,
    ConfirmPaymentInput,
    ExchangeOutcome,
    ExchangeStatus,
    SignCommitmentInput,
    SubmitReportInput,
    SubmitReviewInput,
    ValidateReportInput,
    WithdrawInput,
)
from schemas.funding import FUNDS_WORKFLOW_TYPE, FundsReleasedInput, FundsState, funds_workflow_id
from schemas.ids import EXCHANGE_WORKFLOW_TYPE, TASK_QUEUE, exchange_workflow_id
from schemas.messages import SIGNALS, UPDATES
from schemas.policy import UnknownPolicyVersion, load_policy

M = TypeVar("M", bound=BaseModel)


class ExchangeClientError(Exception):
    """Base of every error this client raises; the message is fit to show to a person."""


class InvalidInput(ExchangeClientError):
    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))


class DuplicateApplication(ExchangeClientError):
    def __init__(self, application_id: str) -> None:
        self.application_id = application_id
        super().__init__(
            f"application_id {application_id!r}: an exchange with this id already exists "
            "(each application id starts exactly one exchange)"
        )


class ExchangeNotFound(ExchangeClientError):
    def __init__(self, application_id: str) -> None:
        super().__init__(f"application_id {application_id!r}: no such exchange")


class DecisionRefused(ExchangeClientError):
    """An update's validator (or the workflow) refused the request; nothing was recorded.

    `refusal` is the failure's type as the workflow raised it (a schemas.errors.Refusal value such as
    `WrongStage` or `NotAllowed`), or None when the refusal came from elsewhere (an ended exchange).
    """

    def __init__(self, message: str, refusal: str | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


def describe_validation_error(error: ValidationError, prefix: str = "") -> InvalidInput:
    return InvalidInput(describe_errors(error, prefix))


def parse(model: type[M], data: M | Mapping[str, Any]) -> M:
    """Validate untrusted input into a contract model, or raise InvalidInput naming each field.

    The input goes through JSON and pydantic's strict JSON mode, exactly as a payload from another SDK is
    decoded by the workers (schemas/converter.py): what this accepts, the engine accepts, and no more
    (`"5"` is not an integer, `1` is not a boolean).
    """
    if isinstance(data, model):
        return data
    try:
        text = to_json(data)
    except PydanticSerializationError as error:
        raise InvalidInput([("input", f"not representable as JSON ({error})")]) from None
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as error:
        raise describe_validation_error(error) from None


class ExchangeClient:
    def __init__(self, client: Client, task_queue: str = TASK_QUEUE) -> None:
        self._client = client
        self._task_queue = task_queue

    @classmethod
    async def connect(
        cls,
        address: str,
        namespace: str = "default",
        task_queue: str = TASK_QUEUE,
        runtime: Runtime | None = None,
        payload_keys: PayloadKeys | None = None,
    ) -> ExchangeClient:
        """Connect another Python service; `payload_keys` are the engine's (CX_PAYLOAD_KEYS), None for plaintext."""
        converter = data_converter(payload_keys)
        client = await Client.connect(address, namespace=namespace, data_converter=converter, runtime=runtime)
        return cls(client, task_queue)

    @property
    def temporal(self) -> Client:
        return self._client

    @property
    def task_queue(self) -> str:
        return self._task_queue

    async def start_exchange(
        self, application: ApplicationInput | Mapping[str, Any], *, now: datetime | None = None
    ) -> str:
        """Start the exchange's workflow; returns its workflow id. Refuses bad input and duplicates."""
        app = parse(ApplicationInput, application)
        now = now or datetime.now(UTC)
        if app.submitted_at is not None and app.submitted_at > now:
            raise InvalidInput([("submitted_at", "must not be in the future")])
        try:
            load_policy(app.policy_version) if app.policy_version else None
        except UnknownPolicyVersion as error:
            raise InvalidInput([("policy_version", str(error))]) from None
        workflow_id = exchange_workflow_id(app.application_id)
        try:
            await self._client.start_workflow(
                EXCHANGE_WORKFLOW_TYPE,
                app,
                id=workflow_id,
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
        except WorkflowAlreadyStartedError:
            raise DuplicateApplication(app.application_id) from None
        return workflow_id

    async def status(self, application_id: str) -> ExchangeStatus:
        try:
            status: ExchangeStatus = await self._handle(application_id).query("status", result_type=ExchangeStatus)
            return status
        except RPCError as error:
            raise await self._translate(application_id, error) from None
        except WorkflowQueryFailedError as error:
            raise ExchangeClientError(f"{application_id}: status unavailable ({error.message})") from None

    async def application(self, application_id: str) -> ApplicationInput:
        """The application as it stands now (amendments applied), from the workflow's `application` query."""
        try:
            handle = self._handle(application_id)
            found: ApplicationInput = await handle.query("application", result_type=ApplicationInput)
            return found
        except RPCError as error:
            raise await self._translate(application_id, error) from None
        except WorkflowQueryFailedError as error:
            raise ExchangeClientError(f"{application_id}: application unavailable ({error.message})") from None

    async def result(self, application_id: str) -> ExchangeOutcome:
        handle = self._client.get_workflow_handle(self._workflow_id(application_id), result_type=ExchangeOutcome)
        outcome: ExchangeOutcome = await handle.result()
        return outcome

    async def submit_review(
        self, application_id: str, decision: SubmitReviewInput | Mapping[str, Any], *, update_id: str | None = None
    ) -> ExchangeStatus:
        return await self._update(application_id, "submit_review", parse(SubmitReviewInput, decision), update_id)

    async def decide(
        self, application_id: str, update: str, payload: BaseModel | Mapping[str, Any], *, update_id: str | None = None
    ) -> ExchangeStatus:
        """Send any update of schemas.messages.UPDATES by name, validated against its model first;
        `update_id` makes a retried call answered once."""
        model = UPDATES.get(update)
        if model is None:
            raise InvalidInput([("update", f"unknown update {update!r}; one of {sorted(UPDATES)}")])
        return await self._update(application_id, update, parse(model, payload), update_id)

    async def sign_commitment(
        self, application_id: str, signature: SignCommitmentInput | Mapping[str, Any]
    ) -> ExchangeStatus:
        return await self._update(application_id, "sign_commitment", parse(SignCommitmentInput, signature))

    async def submit_report(self, application_id: str, report: SubmitReportInput | Mapping[str, Any]) -> ExchangeStatus:
        return await self._update(application_id, "submit_report", parse(SubmitReportInput, report))

    async def validate_report(
        self, application_id: str, decision: ValidateReportInput | Mapping[str, Any]
    ) -> ExchangeStatus:
        return await self._update(application_id, "validate_report", parse(ValidateReportInput, decision))

    async def withdraw(self, application_id: str, request: WithdrawInput | Mapping[str, Any]) -> ExchangeStatus:
        return await self._update(application_id, "withdraw", parse(WithdrawInput, request))

    async def cancel(self, application_id: str, request: CancelInput | Mapping[str, Any]) -> ExchangeStatus:
        return await self._update(application_id, "cancel", parse(CancelInput, request))

    async def confirm_payment(self, application_id: str, confirmation: ConfirmPaymentInput | Mapping[str, Any]) -> None:
        await self._signal(application_id, "confirm_payment", parse(ConfirmPaymentInput, confirmation))

    async def signal(self, application_id: str, name: str, payload: BaseModel | Mapping[str, Any]) -> None:
        """Send any signal of schemas.messages.SIGNALS by name, validated against its model first."""
        model = SIGNALS.get(name)
        if model is None:
            raise InvalidInput([("signal", f"unknown signal {name!r}; one of {sorted(SIGNALS)}")])
        await self._signal(application_id, name, parse(model, payload))

    async def announce_release(self, partnership_id: str, reason: str) -> None:
        """Tell the partnership's waitlist that money was released (a top-up, say): signal-with-start `released`
        to its Funds workflow, which offers the money to the exchanges waiting, oldest first (docs/contract.md,
        "The waitlist"). Announcing twice only makes the waitlist look again."""
        await self._client.start_workflow(
            FUNDS_WORKFLOW_TYPE,
            FundsState(partnership_id=partnership_id),
            id=funds_workflow_id(partnership_id),
            task_queue=self._task_queue,
            # A waitlist that ended idle is started anew; a running one just receives the signal.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal="released",
            start_signal_args=[FundsReleasedInput(partnership_id=partnership_id, reason=reason)],
        )

    def _handle(self, application_id: str) -> WorkflowHandle[Any, Any]:
        return self._client.get_workflow_handle(self._workflow_id(application_id))

    @staticmethod
    def _workflow_id(application_id: str) -> str:
        try:
            return exchange_workflow_id(application_id)
        except ValueError as error:
            raise InvalidInput([("application_id", str(error))]) from None

    async def _update(
        self, application_id: str, name: str, payload: BaseModel, update_id: str | None = None
    ) -> ExchangeStatus:
        try:
            status: ExchangeStatus = await self._handle(application_id).execute_update(
                name, payload, id=update_id, result_type=ExchangeStatus
            )
            return status
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            refusal = cause.type if isinstance(cause, ApplicationError) else None
            raise DecisionRefused(getattr(cause, "message", None) or str(cause), refusal) from None
        except RPCError as error:
            raise await self._translate(application_id, error) from None

    async def _signal(self, application_id: str, name: str, payload: BaseModel) -> None:
        try:
            await self._handle(application_id).signal(name, payload)
        except RPCError as error:
            raise await self._translate(application_id, error) from None

    async def _translate(self, application_id: str, error: RPCError) -> ExchangeClientError:
        if error.status == RPCStatusCode.NOT_FOUND:
            # Updates and signals to a closed workflow also answer NOT_FOUND: tell "ended" from "never existed".
            # The raw call reads only the status (no search-attribute decoding, which some servers differ on).
            request = DescribeWorkflowExecutionRequest(
                namespace=self._client.namespace,
                execution=WorkflowExecution(workflow_id=self._workflow_id(application_id)),
            )
            try:
                description = await self._client.workflow_service.describe_workflow_execution(request)
            except RPCError:
                return ExchangeNotFound(application_id)
            status = WorkflowExecutionStatus(description.workflow_execution_info.status).name
            return DecisionRefused(
                f"application_id {application_id!r}: the exchange has already ended ({status})", Refusal.WRONG_STAGE
            )
        return ExchangeClientError(f"{application_id}: {error.message}")
