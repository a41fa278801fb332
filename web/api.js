// REST calls on the uni-app face: JSON bodies, the token in the `token` header, answers in
// the envelope {"msg":"ok","data":...} or {"msg":"fail","data":"reason"}.

import { t } from './i18n.js';

/** A refused call: the HTTP status (0 when the server could not be reached) and the reason. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class Api {
  constructor() {
    this.token = null;
    /** Called when the server refuses the current token (401). */
    this.onUnauthorized = () => {};
  }

  async request(method, path, body) {
    const headers = {};
    if (this.token) headers.token = this.token;
    let payload;
    if (body instanceof FormData) {
      payload = body;
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
    } catch {
      throw new ApiError(0, t('net.unreachable'));
    }
    let envelope = null;
    try {
      envelope = await resp.json();
    } catch {
      // not JSON: the status says what happened
    }
    if (resp.ok && envelope && envelope.msg === 'ok') return envelope.data;
    const reason = envelope && typeof envelope.data === 'string'
      ? envelope.data
      : `${resp.status} ${resp.statusText}`.trim();
    if (resp.status === 401 && this.token) this.onUnauthorized(reason);
    throw new ApiError(resp.status, reason);
  }

  get(path) {
    return this.request('GET', path);
  }

  post(path, body = {}) {
    return this.request('POST', path, body);
  }

  /** Uploads one chat image; answers its URL. */
  async uploadImage(file) {
    const form = new FormData();
    form.append('file', file, file.name);
    const data = await this.request('POST', '/api/chat/uploadStreamSingleToServerDiy/chatImgs', form);
    const url = data && (data.url || (Array.isArray(data) && data[0] && data[0].url));
    if (!url) throw new ApiError(200, t('image.noUrl'));
    return url;
  }
}
