/** parseChatRequest: the scheduling fields (priority, session_id, user) and max_tokens defaulting. */
import { describe, expect, it } from 'vitest';
import { parseChatRequest, parsePriority } from '../../shared/api/chat-completions.ts';
import { ApiError } from '../../shared/api/errors.ts';

const base = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
const parse = (extra: Record<string, unknown>) => parseChatRequest({ ...base, ...extra }, { defaultMaxTokens: 64, maxTokensLimit: 1000 });

function rejects(extra: Record<string, unknown>, param: string): void {
  try {
    parse(extra);
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    expect((e as ApiError).status).toBe(400);
    expect((e as ApiError).param).toBe(param);
    return;
  }
  throw new Error(`accepted ${JSON.stringify(extra)}`);
}

describe('chat request scheduling fields', () => {
  it('maps priority classes and vLLM integer priorities', () => {
    expect(parse({}).priority).toBeUndefined();
    expect(parse({ priority: 'gui' }).priority).toBe('gui');
    expect(parse({ priority: 'batch' }).priority).toBe('batch');
    expect(parse({ priority: -5 }).priority).toBe('gui');
    expect(parse({ priority: 0 }).priority).toBe('interactive');
    expect(parse({ priority: 3 }).priority).toBe('batch');
    expect(parsePriority('interactive', 'x-vlmesh-priority')).toBe('interactive');
    rejects({ priority: 'urgent' }, 'priority');
    rejects({ priority: 1.5 }, 'priority');
    rejects({ priority: [1] }, 'priority');
  });

  it('takes session_id and user, and rejects bad ones', () => {
    expect(parse({ session_id: 'conv-1', user: 'u' }).sessionId).toBe('conv-1');
    rejects({ session_id: '' }, 'session_id');
    rejects({ session_id: 'x'.repeat(257) }, 'session_id');
    rejects({ session_id: 7 }, 'session_id');
    rejects({ user: 7 }, 'user');
  });

  it('marks a request without max_tokens so the engine uses what the context leaves', () => {
    expect(parse({}).sampling).toMatchObject({ maxTokens: 64, maxTokensAuto: true });
    expect(parse({ max_tokens: 5 }).sampling.maxTokens).toBe(5);
    expect(parse({ max_tokens: 5 }).sampling.maxTokensAuto).toBeUndefined();
    expect(parse({ max_completion_tokens: 7 }).sampling.maxTokensAuto).toBeUndefined();
  });
});
