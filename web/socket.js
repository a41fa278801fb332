// The WebSocket to Parlor (`/ws?token=`): one JSON object per frame, reconnects with
// exponential backoff and jitter, and an application ping that keeps the line checked.

const PING_MS = 25000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30000;

export class Socket {
  /**
   * @param {{onFrame: (frame: object) => void, onState: (state: string, retryMs?: number) => void,
   *          onDown: (event: CloseEvent) => void}} handlers
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.ws = null;
    this.token = null;
    this.connected = false;
    this.stopped = true;
    this.attempt = 0;
    this.retry = null;
    this.ping = null;
  }

  /** Connects with `token`, and keeps connecting until `stop`. */
  start(token) {
    this.token = token;
    this.stopped = false;
    this.attempt = 0;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    this.retry = null;
    this.drop(1000);
    this.handlers.onState('offline');
  }

  /** Whether a frame sent now reaches a registered session. */
  get ready() {
    return this.connected && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a frame; false when the socket is down (use the REST fallback). */
  send(frame) {
    if (!this.ready) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Tries at once instead of waiting out the backoff (the network came back). */
  now() {
    if (this.stopped || this.ws !== null) return;
    clearTimeout(this.retry);
    this.retry = null;
    this.open();
  }

  open() {
    this.retry = null;
    this.handlers.onState('connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws?token=${encodeURIComponent(this.token)}`);
    this.ws = ws;
    this.connected = false;
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === 'connected') {
        this.connected = true;
        this.attempt = 0;
        this.handlers.onState('online');
      }
      this.handlers.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.connected = false;
      clearInterval(this.ping);
      this.handlers.onDown(event);
      if (!this.stopped) this.schedule();
    };
    clearInterval(this.ping);
    this.ping = setInterval(() => this.send({ type: 'ping' }), PING_MS);
  }

  schedule() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt += 1;
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.handlers.onState('offline', delay);
    this.retry = setTimeout(() => this.open(), delay);
  }

  drop(code) {
    clearInterval(this.ping);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      this.connected = false;
      ws.onclose = null;
      ws.onmessage = null;
      ws.close(code);
    }
  }
}
