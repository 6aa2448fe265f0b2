/**
 * Errors of the OpenAI-compatible API. Each carries the HTTP status and the fields of the error
 * body `{"error":{"message","type","param","code"}}`, so a server answers without parsing text.
 */
import { VlmeshError } from '../errors.ts';

/** The `error.type` values OpenAI uses. */
export enum ApiErrorType {
  InvalidRequest = 'invalid_request_error',
  Authentication = 'authentication_error',
  NotFound = 'not_found_error',
  Server = 'server_error',
  Unavailable = 'service_unavailable_error',
  RateLimit = 'rate_limit_exceeded',
}

/** The JSON error body. */
export interface ApiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** An API request failed with `status`; `param` names the offending field (`messages[0].content`). */
export class ApiError extends VlmeshError {
  readonly status: number;
  readonly type: ApiErrorType;
  readonly param: string | null;
  readonly apiCode: string;

  constructor(status: number, type: ApiErrorType, apiCode: string, message: string, param: string | null = null) {
    super(`API_${apiCode.toUpperCase()}`, message);
    this.status = status;
    this.type = type;
    this.param = param;
    this.apiCode = apiCode;
  }

  /** The body to send. */
  toJSON(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.apiCode } };
  }
}

/** A 400 for a field with the wrong type or value. */
export function invalidParam(param: string, message: string, code = 'invalid_value'): ApiError {
  return new ApiError(400, ApiErrorType.InvalidRequest, code, message, param);
}
