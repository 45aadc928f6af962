/** Webview side of the request/reply protocol: correlates host replies with pending requests. */
import type { ReplyMessage, RequestMethod, RequestParams, RequestResults, WebviewRequest, WebviewToHost } from '../src/shared/protocol';
import { MAX_REQUEST_ID } from '../src/shared/protocol';

/** The host refused or failed a request; `message` is the host's text. */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly method: RequestMethod,
  ) {
    super(message);
    this.name = 'RequestError';
  }
}

interface Pending {
  method: RequestMethod;
  resolve: (result: RequestResults[RequestMethod]) => void;
  reject: (err: RequestError) => void;
}

type ParamsArgs<M extends RequestMethod> = RequestParams[M] extends undefined ? [] : [params: RequestParams[M]];

export class RpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly post: (message: WebviewToHost) => void) {}

  /** Sends a request; resolves with the host's result or rejects with a RequestError. */
  request<M extends RequestMethod>(method: M, ...params: ParamsArgs<M>): Promise<RequestResults[M]> {
    const requestId = this.nextId;
    this.nextId = this.nextId >= MAX_REQUEST_ID ? 1 : this.nextId + 1;
    const message = (params.length > 0 ? { type: 'request', requestId, method, params: params[0] } : { type: 'request', requestId, method }) as WebviewRequest;
    return new Promise<RequestResults[M]>((resolve, reject) => {
      this.pending.set(requestId, {
        method,
        resolve: resolve as (result: RequestResults[RequestMethod]) => void,
        reject,
      });
      this.post(message);
    });
  }

  /** Settles the request a reply answers. False when no request is waiting for it. */
  handleReply(reply: ReplyMessage): boolean {
    const p = this.pending.get(reply.requestId);
    if (!p || p.method !== reply.method) return false;
    this.pending.delete(reply.requestId);
    if (reply.ok) p.resolve(reply.result);
    else p.reject(new RequestError(reply.error, reply.method));
    return true;
  }
}
