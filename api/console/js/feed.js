// The live feed: one WebSocket to /feed/ws that reconnects by itself and resumes from the
// last event id it saw (?after=), so a dropped network or an API restart loses nothing.
//
// Events: "state" (detail: connecting | live | reconnecting | offline), "hello",
// "event" (detail: a feed message {id, type, at, case_id, data}), "unauthorized".
import { token } from "./api.js";

const MAX_DELAY_MS = 8000;
const SILENCE_MS = 70000; // the API pings every 25 s when idle: silence this long = dead link

export class LiveFeed extends EventTarget {
  constructor() {
    super();
    this.lastId = null; // null until the first hello: then every event after it is ours
    this.state = "connecting";
    this.socket = null;
    this.delay = 1000;
    this.stopped = true;
    this.timer = null;
    this.watchdog = null;
    this.replayed = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    if (this.socket) this.socket.close(1000, "logged out");
    this.socket = null;
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    document.body.dataset.feed = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  connect() {
    clearTimeout(this.timer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams({ token: token() || "" });
    if (this.lastId !== null) params.set("after", String(this.lastId));
    const socket = new WebSocket(`${scheme}://${location.host}/feed/ws?${params}`);
    this.replayed = 0;
    this.socket = socket;
    this.resetWatchdog();
    socket.onmessage = (message) => {
      this.resetWatchdog();
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      if (data.type === "hello") {
        const first = this.lastId === null;
        if (first || data.last_id > this.lastId) this.lastId = data.last_id;
        this.delay = 1000;
        this.setState("live");
        this.dispatchEvent(
          new CustomEvent("hello", { detail: { ...data, first, replayed: this.replayed } }),
        );
        this.replayed = 0;
      } else if (data.type === "ping") {
        // keeps the watchdog quiet
      } else if (typeof data.id === "number") {
        if (this.lastId !== null && data.id <= this.lastId) return; // already seen
        this.lastId = data.id;
        this.replayed += 1; // counted until the hello: events the API replayed
        this.dispatchEvent(new CustomEvent("event", { detail: data }));
      }
    };
    socket.onclose = (event) => {
      if (socket !== this.socket || this.stopped) return;
      clearTimeout(this.watchdog);
      if (event.code === 4401) {
        this.setState("offline");
        this.dispatchEvent(new CustomEvent("unauthorized"));
        return;
      }
      if (event.code === 4403) {
        this.setState("offline"); // this role does not read cases: nothing to follow
        return;
      }
      this.setState("reconnecting");
      const jitter = Math.random() * 0.3 * this.delay;
      this.timer = setTimeout(() => this.connect(), this.delay + jitter);
      this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    };
  }

  resetWatchdog() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.socket) this.socket.close(4000, "silent too long");
    }, SILENCE_MS);
  }
}
