// The cases the console shows: loaded with the current filters, then kept current by the
// live feed (an event carries the case as it is after the change). Lives for the whole
// login, so alerts that arrive while an operator looks at cameras are there on return.
import { api } from "./api.js";

export const OPEN_STATES = ["reported", "acknowledged", "dispatched", "in_progress", "resolved"];
export const ALL_STATES = [...OPEN_STATES, "closed", "dismissed"];
export const SEVERITIES = ["notice", "warning", "critical"];
const PAGE = 200;

export function defaultFilters() {
  return { states: [...OPEN_STATES], severity: "", centre: "", camera: "" };
}

export class CaseStore extends EventTarget {
  constructor(ctx) {
    super();
    this.ctx = ctx;
    this.cases = new Map();
    this.total = 0;
    this.loading = false;
    this.error = null;
    this.filters = defaultFilters();
    this.fresh = new Set(); // ids that arrived live and were not opened yet
    this.generation = 0;
    this.touched = new Map(); // cases changed by events during a reload
  }

  setFilters(changes) {
    this.filters = { ...this.filters, ...changes };
    return this.reload();
  }

  async reload() {
    const generation = ++this.generation;
    this.touched = new Map();
    this.loading = true;
    this.changed();
    const f = this.filters;
    try {
      const page = await api("/cases", {
        query: {
          state: f.states.length === ALL_STATES.length ? [] : f.states,
          severity: f.severity,
          centre_id: f.centre,
          camera_id: f.camera,
          limit: PAGE,
        },
      });
      if (generation !== this.generation) return; // a newer reload won
      const cases = new Map(page.items.map((c) => [c.id, c]));
      // Events that arrived while the list was on its way may be newer than the list.
      for (const c of this.touched.values()) {
        const listed = cases.get(c.id);
        if (listed && listed.updated_at > c.updated_at) continue;
        if (this.matches(c)) cases.set(c.id, c);
        else cases.delete(c.id);
      }
      this.cases = cases;
      this.total = Math.max(page.total, cases.size);
      this.error = null;
    } catch (error) {
      if (generation !== this.generation) return;
      this.error = error;
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.changed();
      }
    }
  }

  /** True if a case passes the filters (live events are filtered like GET /cases). */
  matches(c) {
    const f = this.filters;
    if (f.states.length && !f.states.includes(c.state)) return false;
    if (f.severity && c.severity !== f.severity) return false;
    if (f.camera && c.camera_id !== f.camera) return false;
    if (f.centre) {
      const subtree = this.ctx.subtree(Number(f.centre));
      if (!subtree.has(c.centre_id)) return false;
    }
    return true;
  }

  /** Apply one feed event; returns {case, created, previous} or null. */
  apply(event) {
    const data = event.data || {};
    const c = data.case;
    if (!c) return null;
    const previous = this.cases.get(c.id) || null; // events arrive in order: c is newest
    if (this.loading) this.touched.set(c.id, c);
    const created = event.type === "alert" && Boolean(data.case_created);
    if (this.matches(c)) {
      if (!previous) this.total += 1;
      this.cases.set(c.id, c);
      if (created) this.fresh.add(c.id);
    } else if (previous) {
      this.cases.delete(c.id);
      this.total = Math.max(0, this.total - 1);
    }
    this.changed({ id: c.id, event });
    return { case: c, created, previous };
  }

  sorted() {
    return [...this.cases.values()].sort(
      (a, b) => (b.created_at > a.created_at) - (b.created_at < a.created_at) || b.id - a.id,
    );
  }

  changed(detail = {}) {
    this.dispatchEvent(new CustomEvent("change", { detail }));
  }
}
