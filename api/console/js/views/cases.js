// The live case feed (filters + list, kept current by the WebSocket) beside the case view.
import { api } from "../api.js";
import { ageOf, clear, formatDuration, formatTime, h } from "../dom.js";
import { caseTitle, label, t } from "../i18n.js";
import { ALL_STATES, defaultFilters, OPEN_STATES, SEVERITIES } from "../store.js";
import { CaseDetail } from "./case_detail.js";

export class CasesView {
  constructor(app, params) {
    this.app = app;
    this.store = app.store;
    this.selected = params[0] ? Number(params[0]) : null;
    this.detail = new CaseDetail(app);
    this.cameras = [];
    this.onChange = (e) => this.storeChanged(e.detail || {});
    this.clock = null;
  }

  mount(container) {
    this.container = container;
    this.store.addEventListener("change", this.onChange);
    api("/cameras")
      .then((cameras) => {
        this.cameras = cameras;
        this.renderFilters();
      })
      .catch(() => {});
    this.render();
    if (this.selected) this.open(this.selected);
    // Ages ("3 min") stay current without re-fetching anything.
    this.clock = setInterval(() => this.renderList(), 15000);
  }

  unmount() {
    this.store.removeEventListener("change", this.onChange);
    clearInterval(this.clock);
    this.detail.unmount();
  }

  update(params) {
    const id = params[0] ? Number(params[0]) : null;
    if (id === this.selected) return;
    this.selected = id;
    this.renderList();
    if (id) this.open(id);
    else this.detail.clear();
  }

  open(id) {
    this.store.fresh.delete(id);
    this.app.updateTitle();
    this.renderList();
    this.detail.load(id);
  }

  render() {
    this.filtersEl = h("div", { class: "filters", dataset: { testid: "filters" } });
    this.countEl = h("div", { class: "list-count" });
    this.listEl = h("ol", { class: "case-list", dataset: { testid: "case-list" } });
    const detailEl = h("section", { class: "case-pane" });
    clear(this.container).append(
      h(
        "div",
        { class: "cases-layout" },
        h("aside", { class: "feed-pane" }, this.filtersEl, this.countEl, this.listEl),
        detailEl,
      ),
    );
    this.renderFilters();
    this.renderList();
    this.detail.mount(detailEl);
  }

  storeChanged(detail) {
    this.renderList();
    if (detail.id && detail.id === this.selected) this.detail.refresh();
  }

  // -- filters ---------------------------------------------------------------------------
  renderFilters() {
    if (!this.filtersEl) return;
    const f = this.store.filters;
    const stateChips = ALL_STATES.map((state) =>
      h(
        "button",
        {
          type: "button",
          class: ["chip", `state-${state}`, f.states.includes(state) && "on"],
          "aria-pressed": String(f.states.includes(state)),
          dataset: { state },
          onclick: () => {
            const states = f.states.includes(state)
              ? f.states.filter((s) => s !== state)
              : [...f.states, state];
            this.setFilters({ states });
          },
        },
        label("state", state),
      ),
    );
    const centres = [...this.app.centres.values()];
    clear(this.filtersEl).append(
      h(
        "div",
        { class: "filter-row" },
        h("span", { class: "filter-label" }, t("filters.state")),
        h(
          "button",
          {
            type: "button",
            class: ["chip", "preset", sameSet(f.states, OPEN_STATES) && "on"],
            onclick: () => this.setFilters({ states: [...OPEN_STATES] }),
          },
          t("filters.open"),
        ),
        h(
          "button",
          {
            type: "button",
            class: ["chip", "preset", sameSet(f.states, ALL_STATES) && "on"],
            onclick: () => this.setFilters({ states: [...ALL_STATES] }),
          },
          t("filters.all"),
        ),
      ),
      h("div", { class: "filter-row chips" }, stateChips),
      h(
        "div",
        { class: "filter-row selects" },
        select(
          t("filters.severity"),
          "severity",
          f.severity,
          SEVERITIES.map((s) => [s, label("severity", s)]),
          (value) => this.setFilters({ severity: value }),
        ),
        select(
          t("filters.centre"),
          "centre",
          f.centre,
          centres.map((c) => [String(c.id), `${"\u00a0\u00a0".repeat(depth(this.app, c))}${c.name}`]),
          (value) => this.setFilters({ centre: value }),
        ),
        select(
          t("filters.camera"),
          "camera",
          f.camera,
          this.cameras.map((c) => [c.id, c.name]),
          (value) => this.setFilters({ camera: value }),
        ),
        h(
          "button",
          {
            type: "button",
            class: "ghost small",
            onclick: () => this.setFilters(defaultFilters()),
          },
          t("filters.reset"),
        ),
      ),
    );
  }

  setFilters(changes) {
    this.store.setFilters(changes);
    this.renderFilters();
  }

  // -- list ------------------------------------------------------------------------------
  renderList() {
    if (!this.listEl) return;
    const store = this.store;
    const cases = store.sorted();
    clear(this.countEl).append(
      store.loading && !cases.length
        ? t("cases.loading")
        : t("cases.count", { shown: cases.length, total: store.total }),
    );
    if (store.error) {
      this.countEl.append(h("span", { class: "error" }, ` ${store.error.message}`));
    }
    clear(this.listEl);
    if (!cases.length && !store.loading) {
      this.listEl.append(h("li", { class: "empty" }, t("cases.empty")));
      return;
    }
    for (const c of cases) this.listEl.append(this.row(c));
  }

  row(c) {
    const place = [c.camera_name, c.zone_name, c.community, c.grid_cell].filter(Boolean);
    return h(
      "li",
      {
        class: [
          "case-row",
          `severity-${c.severity}`,
          c.id === this.selected && "selected",
          this.store.fresh.has(c.id) && "fresh",
        ],
        dataset: { caseId: String(c.id), state: c.state, severity: c.severity },
      },
      h(
        "a",
        { href: `#/cases/${c.id}` },
        h(
          "div",
          { class: "row-top" },
          h("span", { class: "case-id" }, `#${c.id}`),
          h("span", { class: "case-title" }, caseTitle(c)),
          this.store.fresh.has(c.id) && h("span", { class: "pill new" }, t("cases.new")),
        ),
        h(
          "div",
          { class: "row-mid" },
          h("span", { class: `pill severity ${c.severity}` }, label("severity", c.severity)),
          h(
            "span",
            { class: `pill state ${c.state}`, dataset: { testid: "row-state" } },
            label("state", c.state),
          ),
          c.escalation_level > 0 &&
            h(
              "span",
              { class: "pill escalated", dataset: { testid: "row-escalated" } },
              `⇧ ${t("cases.escalated", { n: c.escalation_level })}`,
            ),
          h(
            "span",
            { class: "people" },
            t("cases.people", { n: c.people_count }),
            c.peak_count > c.people_count ? ` (${t("case.peak")} ${c.peak_count})` : "",
          ),
        ),
        h(
          "div",
          { class: "row-bottom" },
          h("span", { class: "place" }, place.join(" · ")),
          h(
            "span",
            { class: "when", title: c.created_at },
            `${formatTime(c.created_at)} · ${formatDuration(ageOf(c.created_at))}`,
          ),
        ),
      ),
    );
  }
}

function select(title, name, value, options, onchange) {
  return h(
    "label",
    { class: "select" },
    h("span", {}, title),
    h(
      "select",
      { name, onchange: (e) => onchange(e.target.value) },
      h("option", { value: "" }, t("filters.any")),
      options.map(([key, text]) => h("option", { value: key, selected: key === value }, text)),
    ),
  );
}

function sameSet(a, b) {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function depth(app, centre) {
  let n = 0;
  let parent = centre.parent_id;
  while (parent !== null && parent !== undefined && app.centres.has(parent) && n < 5) {
    n += 1;
    parent = app.centres.get(parent).parent_id;
  }
  return n;
}
