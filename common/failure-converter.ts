/**
 * Failure messages and stack traces go into the failure's encoded attributes, so the payload
 * codec encrypts them too: an error message can quote a prompt or an answer. Loaded by path
 * (the SDK requires it in clients, workers and the workflow sandbox alike).
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
