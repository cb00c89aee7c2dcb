/**
 * The API's one error path: every failure becomes an OpenAI-shaped body
 * `{error: {message, type, param, code}}` with the right status. Cascade failures carry their
 * trace as the extension field `error.cascade`.
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ErrorType } from '../common/errors.js';
import type { CascadeTrace } from '../common/types.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly cascade?: CascadeTrace,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** Sent as `Retry-After` (seconds) with a 429. */
  retryAfterS?: number;

  static invalid(message: string, param: string | null = null, code: string | null = null): ApiError {
    return new ApiError(400, message, 'invalid_request_error', code, param);
  }

  /** `model` names neither a policy nor a configured model; the message lists the policies. */
  static modelNotFound(model: string, policies: Iterable<string>): ApiError {
    return new ApiError(
      404,
      `The model '${model}' does not exist. Use 'cascade', 'cascade:<policy>' (${[...policies].join(', ')}) or a configured model.`,
      'invalid_request_error',
      'model_not_found',
      'model',
    );
  }
}

/** HTTP status and OpenAI error type for each shared error name a workflow can end with. */
const WORKFLOW_ERRORS: Record<string, { status: number; type: string }> = {
  [ErrorType.InvalidRequest]: { status: 400, type: 'invalid_request_error' },
  [ErrorType.ContextLengthExceeded]: { status: 400, type: 'invalid_request_error' },
  [ErrorType.ContentPolicyViolation]: { status: 400, type: 'invalid_request_error' },
  [ErrorType.BudgetExceeded]: { status: 402, type: 'invalid_request_error' },
  [ErrorType.DeadlineExceeded]: { status: 504, type: 'timeout_error' },
  [ErrorType.NoCapacity]: { status: 503, type: 'service_unavailable_error' },
  [ErrorType.CircuitOpen]: { status: 503, type: 'service_unavailable_error' },
  [ErrorType.RateLimited]: { status: 503, type: 'service_unavailable_error' },
  [ErrorType.ConfigurationError]: { status: 500, type: 'server_error' },
};

export function fromWorkflowError(type: string, message: string, trace?: CascadeTrace): ApiError {
  const mapped = WORKFLOW_ERRORS[type] ?? { status: 502, type: 'upstream_error' };
  return new ApiError(mapped.status, message, mapped.type, type, null, trace);
}

export const notFound: RequestHandler = (req, _res, next) => {
  next(new ApiError(404, `Unknown route ${req.method} ${req.path}`, 'invalid_request_error', 'unknown_url'));
};

export function errorBody(err: ApiError) {
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code, ...(err.cascade && { cascade: err.cascade }) } };
}

export function errorHandler(logger: { error: (o: object, m: string) => void }): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    let apiError: ApiError;
    if (err instanceof ApiError) apiError = err;
    else if (err?.type === 'entity.too.large')
      apiError = new ApiError(413, `Request body exceeds ${err.limit} bytes`, 'invalid_request_error', 'request_too_large');
    else if (err?.type === 'entity.parse.failed') apiError = ApiError.invalid(`Request body is not valid JSON: ${err.message}`, null, 'invalid_json');
    else if (err?.type === 'encoding.unsupported')
      apiError = new ApiError(415, `${err.message} (supported: gzip, deflate, br, identity)`, 'invalid_request_error', 'unsupported_encoding');
    else if (err?.type === 'charset.unsupported') apiError = new ApiError(415, err.message, 'invalid_request_error', 'unsupported_encoding');
    else if (isDecompressionError(err))
      // body-parser passes zlib's error on (status 400, no type): the body does not match its Content-Encoding.
      apiError = ApiError.invalid(
        `Request body is not valid ${req.headers['content-encoding']} data (${err.message}); send it compressed as Content-Encoding says, or drop the header`,
        null,
        'invalid_body',
      );
    else {
      logger.error({ err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'unhandled error');
      apiError = new ApiError(500, 'Internal server error', 'server_error', 'internal_error');
    }
    if (apiError.retryAfterS !== undefined) res.setHeader('retry-after', String(apiError.retryAfterS));
    res.status(apiError.status).json(errorBody(apiError));
  };
}

/** zlib's errors carry codes like Z_DATA_ERROR or Z_BUF_ERROR (also brotli's ERR__ERROR_FORMAT_PADDING_1 ...). */
function isDecompressionError(err: unknown): err is Error {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && (code.startsWith('Z_') || code.startsWith('ERR__ERROR_FORMAT'));
}
