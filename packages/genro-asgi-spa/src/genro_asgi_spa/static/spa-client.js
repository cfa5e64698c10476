// genro-asgi-spa browser client: an ES module built on the WSX client (/_wsx/client.js).
//
//   import { SpaClient } from "/_spa/client.js";
//   const spa = new SpaClient({ info: { title: document.title } });
//   spa.on("error", (error) => show(error.code, error.message));
//   const page = await spa.ready();                // {page_id, session_id, user_id, ...}
//   await spa.subscribe("user", "prefs", (change) => render(change.path, change.value));
//   await spa.set("user", "prefs.theme", "dark");  // every page of this user hears it
//
// The page id is kept in sessionStorage, so a reload (and a reconnect) re-attaches the same
// page with its data. The wire protocol is docs/spa.md, "Wire protocol": spa routes called
// over WSX, and the page's events pushed as WSX events of the subscription "spa".

// served with this server's own wsx and spa paths in place of the defaults below
import { WsxClient } from "/_wsx/client.js";

export { Decimal, WsxDate, WsxTime, WsxError } from "/_wsx/client.js";

export const LEVELS = ["user", "connection", "session", "page"];
const CODE = /^(spa_[a-z_]+): (.*)$/s;
// a stored page the server no longer has (its grace period ended) or that another tab holds
// (a duplicated tab copies sessionStorage): register a new page instead
const RENEW = new Set(["spa_unknown_page", "spa_page_in_use"]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A refusal of the SPA manager: `code` ("spa_foreign"...), `status`, `message`. */
export class SpaError extends Error {
  constructor(code, status, message) {
    super(message);
    this.name = "SpaError";
    this.code = code;
    this.status = status;
  }

  /** A WsxError (or anything thrown) as a SpaError when it carries a spa code. */
  static from(error) {
    if (error instanceof SpaError) return error;
    const match = error && typeof error.message === "string" && CODE.exec(error.message);
    if (match) return new SpaError(match[1], error.status, match[2]);
    return error;
  }
}

/** Whether data path `a` covers `b` or `b` covers `a` ("" covers everything). */
export function related(a, b) {
  if (a === "" || b === "" || a === b) return true;
  return b.startsWith(a + ".") || a.startsWith(b + ".");
}

function checkLevel(level) {
  if (!LEVELS.includes(level)) {
    throw new SpaError("spa_bad_request", 400, `level must be one of ${LEVELS.join(", ")}`);
  }
}

export class SpaClient {
  /**
   * @param {object} options
   *   base ("/_spa"): where the spa routes are; wsx ("/_wsx"): the WSX endpoint;
   *   token: the auth plugin's token (sent as the WSX `auth` message and on the cookie fetch);
   *   info: an object the server keeps with the page (title, url...);
   *   session: the master page's session id (an iframe joins its master's session);
   *   storage (sessionStorage): where the page id survives a reload; null keeps it in memory;
   *   storageKey ("genro-spa-page:" + base);
   *   inUseWait (ms, 1500): after a reload or a reconnect the old socket may not have closed
   *   yet on the server, so a page "in use" is asked for again for this long before a new
   *   page is registered (a duplicated tab really shares it);
   *   any other option goes to the WsxClient (minDelay, maxDelay, timeout, WebSocket).
   */
  constructor(options = {}) {
    const { base = "/_spa", wsx = "/_wsx", token, info, session, storage, storageKey,
      inUseWait = 1500, ...wsxOptions } = options;
    this.inUseWait = inUseWait;
    this.base = "/" + base.replace(/^\/+|\/+$/g, "");
    this.wsxUrl = wsx;
    this.token = token;
    this.info = info;
    this.session = session;
    this.storage = storage === undefined ? globalThis.sessionStorage || null : storage;
    this.storageKey = storageKey || `genro-spa-page:${this.base}`;
    this.wsxOptions = wsxOptions;
    this.page = null; // the register answer of the page this client holds
    this.connectionToken = null; // only when the cookie could not be set
    this.subscriptions = new Map(); // local key -> {level, path, handler, sid}
    this.listeners = { error: [], reset: [], message: [], attach: [], close: [] };
    this.topics = new Map(); // topic -> [handler]
    this.wsx = null;
    this.final = null;
    this.closed = false; // close() was called
    this._ready = this._start();
    this._ready.catch(() => {}); // surfaced through ready() and the "error" listeners
  }

  /**
   * on(event, callback):
   *   "error" (SpaError or WsxError): a refusal not tied to a call of yours, such as the page
   *     refused on (re)attach (tampered cookie, a page id of another user), the client ended
   *     by the WSX layer (a refused token, a final close code), or a data subscription the
   *     server no longer takes after a reconnect;
   *   "reset" ({page, previous}): the stored page was gone (its grace period ended) or open in
   *     another tab, so a new page was registered: its page-level data starts empty;
   *   "attach" (page): the page is (re)attached, on the first socket and after each reconnect;
   *   "message" ({topic, data, from}): an addressed message (see also onMessage);
   *   "close" (code): the socket closed (the client reconnects unless closed for good).
   */
  on(event, callback) { this.listeners[event].push(callback); return this; }

  _emit(event, ...args) {
    for (const callback of this.listeners[event]) {
      try { callback(...args); } catch (error) { console.error(error); }
    }
  }

  /** Resolves with the page once it is registered (or re-attached); rejects with the
   *  refusal when it cannot be (the client is then closed for good). */
  async ready() {
    await this._ready;
    await this.wsx.connected();
    return this.page;
  }

  async _start() {
    await this._mintCookie();
    this.wsx = new WsxClient(this.wsxUrl, { token: this.token, ...this.wsxOptions });
    this.wsx.prepare((call) => this._attach(call));
    this.wsx.listen("spa", (data, channel) => this._event(data, channel));
    if (this.closed) this.wsx.close();
    this.wsx.on("close", (code) => {
      this._emit("close", code);
      // ended for a reason of the WSX layer (a refused token, a final close code): said too
      if (this.wsx.final && !this.final && !this.closed) this._fail(SpaError.from(this.wsx.final));
    });
    try {
      await this.wsx.connected();
    } catch (error) {
      const refusal = SpaError.from(error);
      if (!this.final && !this.closed) this._fail(refusal);
      throw refusal;
    }
  }

  /** GET <base>/connection: the server sets the signed connection cookie before the socket
   *  opens, so the handshake carries it. A failure here is not final: without the cookie the
   *  register answer brings a connection token, kept in memory. */
  async _mintCookie() {
    if (typeof fetch !== "function") return;
    const headers = this.token ? { authorization: `Bearer ${this.token}` } : {};
    try {
      await fetch(`${this.base}/connection`, { credentials: "same-origin", headers });
    } catch (error) { /* the register call mints a connection token instead */ }
  }

  _stored() {
    if (!this.storage) return this._memory || null;
    try {
      const stored = JSON.parse(this.storage.getItem(this.storageKey) || "null");
      return stored && typeof stored.page_id === "string" ? stored : null;
    } catch (error) { return null; }
  }

  _store(page) {
    const value = page && { page_id: page.page_id, session_id: page.session_id,
      connection_token: this.connectionToken };
    if (!this.storage) { this._memory = value; return; }
    try {
      if (value) this.storage.setItem(this.storageKey, JSON.stringify(value));
      else this.storage.removeItem(this.storageKey);
    } catch (error) { /* storage full or refused: the page id lives in memory only */ }
  }

  /** Forget the stored page id: the next socket registers a new page (e.g. after a logout). */
  forgetPage() { this._store(null); this._memory = null; }

  /** Run by the WSX client on every socket before anything else is sent. */
  async _attach(call) {
    const stored = this.page ? { page_id: this.page.page_id } : this._stored();
    if (stored && stored.connection_token) this.connectionToken = stored.connection_token;
    const args = {};
    if (this.info !== undefined) args.info = this.info;
    if (this.session) args.session_id = this.session;
    if (this.connectionToken) args.connection = this.connectionToken;
    let answer;
    let previous = null;
    try {
      answer = stored ? await this._resume(call, args, stored.page_id)
        : await call(`${this.base}/register`, args);
    } catch (raw) {
      const error = SpaError.from(raw);
      if (!(stored && error instanceof SpaError && RENEW.has(error.code))) {
        if (error.status) this._fail(error);
        throw error;
      }
      previous = stored.page_id;
      try {
        answer = await call(`${this.base}/register`, args);
      } catch (again) {
        const refusal = SpaError.from(again);
        if (refusal.status) this._fail(refusal);
        throw refusal;
      }
    }
    if (answer.connection_token) this.connectionToken = answer.connection_token;
    this.page = answer;
    this._store(answer);
    if (previous !== null) this._emit("reset", { page: answer, previous });
    await this._resubscribe(call);
    this._emit("attach", answer);
  }

  /** Register the stored page again; "in use" is retried for `inUseWait` ms (the page's
   *  previous socket, before a reload or a dropped connection, may still be closing on the
   *  server). */
  async _resume(call, args, pageId) {
    const deadline = Date.now() + this.inUseWait;
    for (;;) {
      try {
        return await call(`${this.base}/register`, { ...args, page_id: pageId });
      } catch (raw) {
        const error = SpaError.from(raw);
        if (error.code !== "spa_page_in_use" || Date.now() >= deadline) throw raw;
      }
      await sleep(100);
    }
  }

  _fail(error) {
    this.final = error;
    this._emit("error", error);
  }

  /** Data subscriptions again on a new socket; the handler hears the current value (the page
   *  may have missed changes while away). One the server refuses now is dropped. */
  async _resubscribe(call) {
    for (const [key, sub] of [...this.subscriptions]) {
      let answer;
      try {
        answer = await call(`${this.base}/subscribe`, { level: sub.level, path: sub.path });
      } catch (raw) {
        const error = SpaError.from(raw);
        if (!error.status) throw error; // no answer: the WSX client opens a new socket
        this.subscriptions.delete(key);
        this._emit("error", error);
        continue;
      }
      sub.sid = answer.subscription;
      this._notify(sub, { level: sub.level, path: sub.path, value: answer.value,
        deleted: false, resync: true });
    }
  }

  _notify(sub, change) {
    try { sub.handler(change); } catch (error) { console.error(error); }
  }

  _event(data, channel) {
    if (!data || typeof data !== "object") return;
    if (channel === "spa.change") {
      for (const sub of this.subscriptions.values()) {
        if (sub.level === data.level && related(sub.path, data.path)) this._notify(sub, data);
      }
    } else if (channel === "spa.message") {
      this._emit("message", data);
      for (const handler of this.topics.get(data.topic) || []) {
        try { handler(data.data, data); } catch (error) { console.error(error); }
      }
    }
  }

  async _call(route, params = {}) {
    await this.ready();
    try {
      return await this.wsx.call(`${this.base}/${route}`, params);
    } catch (error) {
      throw SpaError.from(error);
    }
  }

  /** The value at `path` ("" for the whole tree) of the caller's tree at `level`, or null. */
  get(level, path = "") { checkLevel(level); return this._call("get", { level, path }); }

  /** Set `path` (not "") at `level`; resolves with {size} (the tree's bytes after). Every page
   *  that subscribed to a covering path at that level hears the change, this one included. */
  set(level, path, value) { checkLevel(level); return this._call("set", { level, path, value }); }

  /** Delete `path` ("" for the whole tree) at `level`; resolves with {deleted}. */
  delete(level, path = "") { checkLevel(level); return this._call("delete", { level, path }); }

  /**
   * subscribe(level, path, handler): `handler(change)` for each change at `level` on a path
   * that covers `path` or is under it; change is {level, path, value, deleted}, and
   * {..., resync: true} with the current value at once and after each reconnect. Resolves
   * with an async unsubscribe function.
   */
  async subscribe(level, path, handler) {
    checkLevel(level);
    const sub = { level, path, handler, sid: null };
    const answer = await this._call("subscribe", { level, path });
    sub.sid = answer.subscription;
    const key = Symbol(`${level}:${path}`);
    this.subscriptions.set(key, sub);
    this._notify(sub, { level, path, value: answer.value, deleted: false, resync: true });
    return async () => {
      if (!this.subscriptions.delete(key)) return;
      await this._call("unsubscribe", { subscription: sub.sid });
    };
  }

  /**
   * send(to, topic, data, {id}): an addressed message to the caller's own session,
   * connection or user (`to` "session", "connection", "user"), or to one page of the caller's
   * user (`to` "page" with its `id`). The pages hear it as a "message" event.
   */
  send(to, topic, data = null, { id } = {}) {
    const params = { to, topic, data };
    if (id !== undefined) params.id = id;
    return this._call("send", params);
  }

  /** onMessage(topic, handler): `handler(data, message)` for messages of that topic. */
  onMessage(topic, handler) {
    const handlers = this.topics.get(topic) || [];
    handlers.push(handler);
    this.topics.set(topic, handlers);
    return () => {
      const left = (this.topics.get(topic) || []).filter((h) => h !== handler);
      this.topics.set(topic, left);
    };
  }

  /** {page_id, session_id, connection_id, user_id, process_id} of this page. */
  whoami() { return this._call("whoami"); }

  /** The pages of the caller's user (another user's with `userId`: needs presence_auth). */
  pages(userId) { return this._call("pages", userId === undefined ? {} : { user_id: userId }); }

  /** The sessions of the caller's connection, each with its pages. */
  sessions() { return this._call("sessions"); }

  /** End the page now (no grace period) and forget it; the socket stays open. */
  async unregister() {
    const answer = await this._call("unregister");
    this.page = null;
    this.forgetPage();
    return answer;
  }

  /** Close the socket for good. The page keeps its state for the server's grace period, so
   *  a reload that follows re-attaches it. */
  close() {
    this.closed = true;
    if (this.wsx) this.wsx.close();
  }
}

export { WsxClient };
