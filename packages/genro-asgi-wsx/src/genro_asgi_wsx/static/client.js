// genro-asgi-wsx browser client: an ES module with no dependencies.
//
//   import { WsxClient, Decimal } from "/_wsx/client.js";
//   const client = new WsxClient("/_wsx", { token: "..." });
//   await client.connected();
//   const quote = await client.call("/shop/quote", { qty: 3, price: new Decimal("1.50") });
//   const stop = await client.subscribe("orders.*", (data, channel) => { ... });
//
// It speaks the `wsx` subprotocol (docs/wsx-protocol.md): calls, subscriptions, server pings,
// and TYTX typed values (Decimal, Date for dates and datetimes, WsxTime for times). It reconnects
// with exponential backoff and jitter, re-authenticates and re-subscribes after a reconnect
// (resuming from the last event seen on channels with history).

const PREFIX = "WSX://";
const TYPED = "::JS";

/** A decimal number kept as its exact text (TYTX suffix N). */
export class Decimal {
  constructor(text) { this.text = String(text); }
  toString() { return this.text; }
  toJSON() { return this.text; }
  valueOf() { return Number(this.text); }
}

/** A date without time (TYTX suffix D): year, month (1-12), day. */
export class WsxDate {
  constructor(year, month, day) { Object.assign(this, { year, month, day }); }
  toString() {
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    return `${pad(this.year, 4)}-${pad(this.month)}-${pad(this.day)}`;
  }
}

/** A time of day (TYTX suffix H), kept as "HH:MM:SS.mmm". */
export class WsxTime {
  constructor(text) { this.text = String(text); }
  toString() { return this.text; }
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

function encodeValue(value) {
  if (value instanceof Decimal) return [`${value.text}::N`, true];
  if (value instanceof WsxDate) return [`${value}::D`, true];
  if (value instanceof WsxTime) return [`${value.text}::H`, true];
  if (value instanceof Date) {
    const iso = `${pad(value.getUTCFullYear(), 4)}-${pad(value.getUTCMonth() + 1)}-` +
      `${pad(value.getUTCDate())}T${pad(value.getUTCHours())}:${pad(value.getUTCMinutes())}:` +
      `${pad(value.getUTCSeconds())}.${pad(value.getUTCMilliseconds(), 3)}Z`;
    return [`${iso}::DHZ`, true];
  }
  if (Array.isArray(value)) {
    let typed = false;
    const out = value.map((item) => { const [v, t] = encodeValue(item); typed ||= t; return v; });
    return [out, typed];
  }
  if (value && typeof value === "object") {
    let typed = false;
    const out = {};
    for (const [key, item] of Object.entries(value)) {
      const [v, t] = encodeValue(item); out[key] = v; typed ||= t;
    }
    return [out, typed];
  }
  return [value, false];
}

/** A value as TYTX text: JSON, with "::JS" appended when it holds typed values. */
export function toTytx(value) {
  const [plain, typed] = encodeValue(value);
  if (typed && (plain === null || typeof plain !== "object")) return String(plain);
  const text = JSON.stringify(plain === undefined ? null : plain);
  return typed ? text + TYPED : text;
}

const SUFFIX = /^(.*)::(N|D|DHZ|DH|H|L|R|B|T|NN)$/s;

function decodeString(text) {
  const match = SUFFIX.exec(text);
  if (!match) return text;
  const [, body, code] = match;
  switch (code) {
    case "N": return new Decimal(body);
    case "D": { const [y, m, d] = body.split("-").map(Number); return new WsxDate(y, m, d); }
    case "DHZ": case "DH": return new Date(body.endsWith("Z") ? body : body + "Z");
    case "H": return new WsxTime(body);
    case "L": return parseInt(body, 10);
    case "R": return parseFloat(body);
    case "B": return body === "true";
    case "T": return body;
    case "NN": return null;
    default: return text;
  }
}

function hydrate(value) {
  if (typeof value === "string") return decodeString(value);
  if (Array.isArray(value)) return value.map(hydrate);
  if (value && typeof value === "object") {
    const out = {};
    for (const [key, item] of Object.entries(value)) out[key] = hydrate(item);
    return out;
  }
  return value;
}

/** TYTX text back to a value (typed strings hydrated). */
export function fromTytx(text) {
  if (text === undefined || text === null || text === "") return null;
  const body = text.endsWith(TYPED) ? text.slice(0, -TYPED.length) : text;
  try {
    return hydrate(JSON.parse(body));
  } catch (error) {
    return decodeString(body);
  }
}

/** An error answer: `status` (HTTP-like), `code` (e.g. "forbidden"), `errorId` when 500. */
export class WsxError extends Error {
  constructor(status, error) {
    super((error && error.message) || `status ${status}`);
    this.status = status;
    this.code = error && error.code;
    this.errorId = error && error.error_id;
  }
}

/** Close codes after which reconnecting would fail the same way. */
const FINAL_CLOSE = new Set([1002, 1008, 1009, 4001]);

export class WsxClient {
  /**
   * @param {string} url  ws(s) URL or a path (resolved against the page: "/_wsx")
   * @param {object} options  token, minDelay (ms, 250), maxDelay (ms, 10000), timeout (ms,
   *   30000, per call), reconnect (true), WebSocket (a constructor, for tests)
   */
  constructor(url, options = {}) {
    this.url = WsxClient.resolve(url);
    this.options = { minDelay: 250, maxDelay: 10000, timeout: 30000, reconnect: true,
      ...options };
    this.pending = new Map();
    this.subscriptions = new Map(); // local key -> {channel, handler, sid}
    this.bySid = new Map();
    this.nextId = 1;
    this.attempt = 0;
    this.final = null; // the WsxError of a client closed for good (no more reconnects)
    this.listeners = { open: [], close: [] };
    this.preparers = [];
    this.listened = new Map(); // server-side subscription id -> handler (kept across sockets)
    this.waiters = [];
    this._open();
  }

  static resolve(url) {
    if (/^wss?:\/\//.test(url)) return url;
    const base = new URL(url, globalThis.location ? globalThis.location.href : "http://localhost/");
    base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    return base.href;
  }

  /** on("open" | "close", callback): connection events (close gets the close code). */
  on(event, callback) { this.listeners[event].push(callback); return this; }

  /**
   * prepare(async (call) => ...): run on every socket that opens (after the token is
   * accepted), before the subscriptions are renewed and before connected() resolves, so an
   * extension re-establishes its server-side state first (genro-asgi-spa re-attaches its
   * page). `call(path, params)` calls a route without waiting for connected(). A rejection
   * with a `status` (the server refused) closes the client for good with that error; any
   * other (no answer, the socket dropped) opens a new socket.
   */
  prepare(callback) { this.preparers.push(callback); return this; }

  /**
   * listen(subscription, handler): `handler(data, channel)` for the events of a subscription
   * id the server assigns itself (genro-asgi-spa pushes a page's events under "spa"), on
   * this socket and every later one. Client subscriptions are "s1", "s2"...: do not listen
   * to those. Returns a function that stops listening.
   */
  listen(subscription, handler) {
    this.listened.set(subscription, handler);
    return () => {
      if (this.listened.get(subscription) === handler) this.listened.delete(subscription);
    };
  }

  /** Resolves when the socket is open (and authenticated when a token was given); rejects
   *  once the client is closed for good (close(), a refused token, a final close code). */
  connected() {
    if (this.ready) return Promise.resolve();
    if (this.final) return Promise.reject(this.final);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  _open() {
    const Socket = this.options.WebSocket || globalThis.WebSocket;
    const ws = new Socket(this.url, ["wsx"]);
    this.ws = ws;
    this.ready = false;
    ws.onopen = () => this._onOpen();
    ws.onmessage = (event) => this._onMessage(event.data);
    ws.onclose = (event) => this._onClose(event.code);
  }

  async _onOpen() {
    this.attempt = 0;
    const ws = this.ws;
    if (this.options.token) {
      try {
        this.identity = await this._request({ type: "auth", token: this.options.token });
      } catch (error) {
        // refused: the same token would be refused again, so the client ends (the server
        // does not close the socket when an identity is optional: waiting would hang)
        if (error.status) this._end(error);
        else this._retry(ws); // no answer: try a new socket
        return;
      }
    }
    const call = (path, params = {}) => this._request({ path, data: toTytx(params) });
    for (const prepare of this.preparers) {
      try { await prepare(call); } catch (error) {
        if (error && error.status) this._end(error);
        else this._retry(ws);
        return;
      }
      if (this.ws !== ws || this.final) return;
    }
    for (const [key, sub] of [...this.subscriptions]) {
      try { await this._resubscribe(sub); } catch (error) {
        if (!error.status) { this._retry(ws); return; }
        this.subscriptions.delete(key); // refused now (e.g. forbidden): dropped, not retried
      }
    }
    if (this.ws !== ws || this.final) return;
    this.ready = true;
    const waiting = this.waiters;
    this.waiters = [];
    for (const { resolve } of waiting) resolve();
    for (const callback of this.listeners.open) callback();
  }

  /** Close this socket (if still open) so that _onClose reconnects. */
  _retry(ws) {
    if (ws === this.ws && ws.readyState === 1) ws.close(1000);
  }

  /** Closed for good: no reconnect, waiting and later callers get `error`. */
  _end(error) {
    if (this.final) return;
    this.final = error;
    const waiting = this.waiters;
    this.waiters = [];
    for (const { reject } of waiting) reject(error);
    if (this.ws.readyState <= 1) this.ws.close(1000);
  }

  _onClose(code) {
    this.ready = false;
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new WsxError(0, { code: "disconnected", message: `connection closed (${code})` }));
    }
    this.pending.clear();
    this.bySid.clear();
    for (const callback of this.listeners.close) callback(code);
    if (this.final) return;
    if (!this.options.reconnect || FINAL_CLOSE.has(code)) {
      this._end(new WsxError(0, { code: "closed", message: `connection closed (${code})` }));
      return;
    }
    const ceiling = Math.min(this.options.maxDelay, this.options.minDelay * 2 ** this.attempt);
    this.attempt += 1;
    setTimeout(() => this._open(), ceiling / 2 + Math.random() * ceiling / 2);
  }

  _onMessage(text) {
    if (typeof text !== "string" || !text.startsWith(PREFIX)) return;
    let message;
    try { message = JSON.parse(text.slice(PREFIX.length)); } catch (error) { return; }
    if (message.type === "ping") { this._send({ type: "pong" }); return; }
    if (message.type === "event") {
      const sub = this.bySid.get(message.subscription);
      if (sub) {
        if (typeof message.offset === "string") sub.offset = message.offset;
        sub.handler(fromTytx(message.data), message.channel);
      } else {
        const handler = this.listened.get(message.subscription);
        if (handler) handler(fromTytx(message.data), message.channel);
      }
      return;
    }
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    this.pending.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.status === 200) waiter.resolve(fromTytx(message.data));
    else waiter.reject(new WsxError(message.status, message.error));
  }

  _send(message) { this.ws.send(PREFIX + JSON.stringify(message)); }

  _request(message) {
    if (this.final) return Promise.reject(this.final);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new WsxError(0, { code: "timeout", message: "no answer in time" }));
      }, this.options.timeout);
      this.pending.set(id, { resolve, reject, timer });
      try { this._send({ ...message, id }); } catch (error) {
        this.pending.delete(id); clearTimeout(timer); reject(error);
      }
    });
  }

  /** Call the route at `path` with `params` (an object; typed values allowed). */
  async call(path, params = {}, { method } = {}) {
    await this.connected();
    const message = { path, data: toTytx(params) };
    if (method) message.method = method;
    return this._request(message);
  }

  /** Call without waiting for (or getting) an answer: a WSX event. */
  async notify(path, params = {}) {
    await this.connected();
    this._send({ path, data: toTytx(params) });
  }

  /**
   * Subscribe to `channel` (wildcards `*` and `>`); returns an async unsubscribe function.
   * On a channel with history, a reconnect resumes from the last event seen (the server
   * replays what was missed); when it cannot (the gap is too old), `onGap(channel)` is called:
   * reload what the page shows.
   */
  async subscribe(channel, handler, { onGap = null } = {}) {
    await this.connected();
    const sub = { channel, handler, sid: null, offset: null, onGap };
    await this._resubscribe(sub);
    const key = Symbol(channel);
    this.subscriptions.set(key, sub);
    return async () => {
      this.subscriptions.delete(key);
      if (sub.sid && this.bySid.get(sub.sid) === sub) {
        this.bySid.delete(sub.sid);
        await this._request({ type: "unsubscribe", subscription: sub.sid });
      }
    };
  }

  async _resubscribe(sub) {
    const message = { type: "subscribe", channel: sub.channel };
    if (sub.offset !== null) message.since = sub.offset;
    const answer = await this._request(message);
    sub.sid = answer.subscription;
    this.bySid.set(sub.sid, sub);
    if (answer.recovered === false && sub.onGap) sub.onGap(sub.channel);
  }

  /** Close for good (no reconnect); later calls reject with code "closed". */
  close() {
    this._end(new WsxError(0, { code: "closed", message: "closed by the client" }));
  }
}
