// Statistics (综合考评): handling and closure rates and response times per centre, and the
// cases per day, as charts, with the figures as a table and a CSV download.
import { api, errorText, token } from "../api.js";
import { groupedBars, stackedColumns } from "../charts.js";
import { clear, formatDuration, h, number, percent } from "../dom.js";
import { t } from "../i18n.js";

const WINDOWS = [7, 30, 90];

export class StatsView {
  constructor(app) {
    this.app = app;
    this.days = 30;
    this.centres = null;
    this.daily = null;
    this.error = null;
    this.loading = false;
  }

  mount(container) {
    this.container = container;
    this.render();
    this.load();
  }

  window() {
    const until = new Date(Date.now() + 1000);
    const since = new Date(until.getTime() - this.days * 86400 * 1000);
    return { since: since.toISOString(), until: until.toISOString() };
  }

  async load() {
    this.loading = true;
    this.render();
    const range = this.window();
    try {
      const [centres, daily] = await Promise.all([
        api("/stats", { query: { group_by: "centre", ...range } }),
        api("/stats", { query: { group_by: "period", period: "day", ...range } }),
      ]);
      this.centres = centres;
      this.daily = daily;
      this.error = null;
    } catch (error) {
      this.error = error;
    }
    this.loading = false;
    this.render();
  }

  async download() {
    const range = this.window();
    const response = await fetch(`/stats.csv?${new URLSearchParams({ group_by: "centre", ...range })}`, {
      headers: { Authorization: `Bearer ${token()}` },
    });
    if (!response.ok) return;
    const url = URL.createObjectURL(await response.blob());
    const link = h("a", {
      href: url,
      download: `sharpeyes-stats-centre-${range.since.slice(0, 10)}-${range.until.slice(0, 10)}.csv`,
    });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  render() {
    if (!this.container) return;
    const head = h(
      "div",
      { class: "page-head" },
      h("h2", {}, t("stats.title")),
      h(
        "div",
        { class: "segmented", role: "group", "aria-label": t("stats.window") },
        WINDOWS.map((days) =>
          h(
            "button",
            {
              type: "button",
              class: ["chip", days === this.days && "on"],
              dataset: { days: String(days) },
              onclick: () => {
                this.days = days;
                this.load();
              },
            },
            t("stats.days", { n: days }),
          ),
        ),
      ),
      h("button", { type: "button", class: "ghost", onclick: () => this.download() }, t("stats.download")),
    );
    const body = h("div", { class: "stats-body" });
    clear(this.container).append(h("div", { class: "page stats-page" }, head, body));
    if (this.error) {
      body.append(h("p", { class: "error" }, errorText(this.error)));
      return;
    }
    if (!this.centres) {
      body.append(h("p", { class: "muted" }, t("cases.loading")));
      return;
    }
    const rows = this.centres.rows.filter((r) => r.cases > 0);
    if (!rows.length) {
      body.append(h("p", { class: "muted", dataset: { testid: "stats-empty" } }, t("stats.empty")));
      return;
    }
    const name = (row) => {
      const parts = row.name.split(" / ");
      return `${"· ".repeat(parts.length - 1)}${parts.at(-1)}`;
    };
    const ordered = [...rows].sort((a, b) => a.name.localeCompare(b.name));
    body.append(
      h(
        "div",
        { class: "stats-grid" },
        h(
          "section",
          { class: "panel" },
          h("h3", {}, t("stats.rates")),
          groupedBars({
            testid: "chart-rates",
            rows: ordered.map((r) => ({
              label: name(r),
              values: [r.handling_rate, r.closure_rate, r.false_alarm_rate],
            })),
            series: [
              { name: t("stats.rates.handling") },
              { name: t("stats.rates.closure") },
              { name: t("stats.rates.false_alarm") },
            ],
            max: 1,
            format: (v) => percent(v),
          }),
        ),
        h(
          "section",
          { class: "panel" },
          h("h3", {}, t("stats.times")),
          groupedBars({
            testid: "chart-times",
            rows: ordered.map((r) => ({
              label: name(r),
              values: [
                r.time_to_acknowledge_median_s,
                r.time_to_dispatch_median_s,
                r.time_to_close_median_s,
              ],
              markers: [r.time_to_acknowledge_p90_s, r.time_to_dispatch_p90_s, r.time_to_close_p90_s],
            })),
            series: [
              { name: t("stats.times.ack") },
              { name: t("stats.times.dispatch") },
              { name: t("stats.times.close") },
            ],
            format: (v) => formatDuration(v),
          }),
        ),
        h(
          "section",
          { class: "panel wide" },
          h("h3", {}, t("stats.daily")),
          stackedColumns({
            testid: "chart-daily",
            columns: this.dailyColumns(),
            series: [
              { name: t("stats.daily.closed") },
              { name: t("stats.daily.dismissed") },
              { name: t("stats.daily.open") },
            ],
          }),
        ),
        h("section", { class: "panel wide" }, h("h3", {}, t("stats.table")), this.table(ordered, name)),
      ),
    );
  }

  /** One column per day of the window, days without cases included (UTC, as the API). */
  dailyColumns() {
    const byDay = new Map(this.daily.rows.map((r) => [r.key, r]));
    const columns = [];
    const end = new Date();
    for (let i = this.days - 1; i >= 0; i--) {
      const day = new Date(end.getTime() - i * 86400 * 1000).toISOString().slice(0, 10);
      const row = byDay.get(day);
      columns.push({
        label: day.slice(5),
        values: row ? [row.closed, row.dismissed, row.open] : [0, 0, 0],
      });
    }
    return columns;
  }

  table(rows, name) {
    const columns = ["cases", "handled", "closed", "dismissed", "open", "escalated"];
    return h(
      "table",
      { class: "grid", dataset: { testid: "stats-table" } },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, t("stats.col.centre")),
          columns.map((c) => h("th", { class: "num" }, t(`stats.col.${c}`))),
          h("th", { class: "num" }, t("stats.rates.handling")),
          h("th", { class: "num" }, t("stats.rates.closure")),
          h("th", { class: "num" }, t("stats.times.ack")),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((r) =>
          h(
            "tr",
            {},
            h("td", { title: r.name }, name(r)),
            columns.map((c) => h("td", { class: "num" }, number(r[c]))),
            h("td", { class: "num" }, percent(r.handling_rate)),
            h("td", { class: "num" }, percent(r.closure_rate)),
            h("td", { class: "num" }, formatDuration(r.time_to_acknowledge_median_s)),
          ),
        ),
      ),
    );
  }
}
