/**
 * The closed list of error types shared by activities, workflows and the API.
 * Activities throw ApplicationFailure with one of these as `type`; the workflow decides
 * failover/escalation from it; the API maps it to an HTTP status and an OpenAI-shaped body.
 * Pure module: imported by workflow code.
 */
export const ErrorType = {
  /** Bad request from the caller (validation). Never retried. */
  InvalidRequest: 'invalid_request',
  /** The prompt does not fit the model's context window. Not retried on the same model. */
  ContextLengthExceeded: 'context_length_exceeded',
  /** The provider's content filter refused the request. Not retried; the reason reaches the caller. */
  ContentPolicyViolation: 'content_policy_violation',
  /** 429 from upstream (retried after Retry-After, then failed over). */
  RateLimited: 'rate_limited',
  /** 5xx from upstream. */
  UpstreamError: 'upstream_error',
  /** Connection reset, refused, DNS failure. */
  ConnectionError: 'connection_error',
  /** No first token / no response within the attempt's limit. */
  UpstreamTimeout: 'upstream_timeout',
  /** Stream went silent mid-answer. */
  StreamStalled: 'stream_stalled',
  /** Stream ended before the answer was complete (no finish_reason). */
  StreamIncomplete: 'stream_incomplete',
  /** Stream carried an event that is not valid JSON. */
  StreamMalformed: 'stream_malformed',
  /** Upstream rejected our credentials (401/403). Not retried. */
  AuthenticationFailed: 'authentication_failed',
  /** The pool has no worker that took the attempt in time. */
  NoCapacity: 'no_capacity',
  /** Every deployment of the model is cut off by its circuit breaker. */
  CircuitOpen: 'circuit_open',
  /** The worker's configuration does not know the deployment it was asked to call. */
  ConfigurationError: 'configuration_error',
  /** The request's deadline was spent before an answer was accepted. */
  DeadlineExceeded: 'deadline_exceeded',
  /** The request's budget could not pay for any remaining step. */
  BudgetExceeded: 'budget_exceeded',
  /** Every step and deployment failed. */
  AllDeploymentsFailed: 'all_deployments_failed',
} as const;

export type ErrorTypeName = (typeof ErrorType)[keyof typeof ErrorType];

/** Errors that concern the request itself: another deployment of the same model would fail the same way. */
export const REQUEST_ERRORS: readonly string[] = [ErrorType.InvalidRequest, ErrorType.ContextLengthExceeded, ErrorType.ContentPolicyViolation];

/** Errors Temporal must not retry on the same deployment (the workflow decides what comes next). */
export const NON_RETRYABLE_ERRORS: readonly string[] = [...REQUEST_ERRORS, ErrorType.AuthenticationFailed, ErrorType.ConfigurationError, ErrorType.CircuitOpen];

/** Errors that say nothing about a deployment's health, so they do not feed its circuit breaker. */
export function countsAgainstDeployment(type: string | undefined): boolean {
  return !REQUEST_ERRORS.includes(type ?? '');
}
