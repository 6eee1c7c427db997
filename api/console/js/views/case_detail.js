// One case: the snapshot with the people and the zone drawn over it, the counts, the audit
// trail, units and feedback, and only the actions this user may take now
// (GET /cases/{id}/actions decides; the console never guesses from the role).
import { api, authorisedImage, errorText } from "../api.js";
import { clear, formatDuration, formatTime, h, number, svg } from "../dom.js";
import { caseTitle, label, t } from "../i18n.js";

const ONE_CLICK = new Set(["acknowledge", "start"]);

export class CaseDetail {
  constructor(app) {
    this.app = app;
    this.id = null;
    this.case = null;
    this.actions = [];
    this.alertId = null;
    this.payloads = new Map(); // alert id → raw event (people boxes, zone polygon, density)
    this.images = new Map(); // alert id → {url} | {error}
    this.overlay = true;
    this.form = null; // the action whose form is open
    this.notice = null; // {kind: ok|error, text}
    this.error = null;
    this.busy = false;
    this.units = null;
    this.generation = 0;
  }

  mount(container) {
    this.container = container;
    this.render();
  }

  unmount() {
    for (const image of this.images.values()) {
      if (image.url) URL.revokeObjectURL(image.url);
      else if (image.then) image.then((i) => URL.revokeObjectURL(i.url)).catch(() => {});
    }
    this.images.clear();
  }

  clear() {
    this.id = null;
    this.case = null;
    this.render();
  }

  async load(id) {
    if (id !== this.id) {
      this.id = id;
      this.case = null;
      this.alertId = null;
      this.form = null;
      this.notice = null;
      this.error = null;
      this.render();
    }
    await this.fetch();
  }

  /** Re-read the case after a live event (keeps an open form unless the state moved on). */
  async refresh() {
    if (this.id) await this.fetch();
  }

  async fetch() {
    const generation = ++this.generation;
    const id = this.id;
    try {
      const [detail, actions] = await Promise.all([
        api(`/cases/${id}`),
        api(`/cases/${id}/actions`),
      ]);
      if (generation !== this.generation || id !== this.id) return;
      if (this.case && this.case.state !== detail.state) this.form = null;
      this.case = detail;
      this.actions = actions;
      this.error = null;
      const withSnapshot = detail.alerts.filter((a) => a.has_snapshot);
      if (!detail.alerts.some((a) => a.id === this.alertId)) {
        const newest = withSnapshot.at(-1) || detail.alerts.at(-1);
        this.alertId = newest ? newest.id : null;
      }
    } catch (error) {
      if (generation !== this.generation) return;
      this.error = error;
      this.case = null;
    }
    this.render();
    this.loadAlert();
  }

  async loadAlert() {
    const id = this.alertId;
    if (!id || !this.case) return;
    const alert = this.case.alerts.find((a) => a.id === id);
    const tasks = [];
    if (!this.payloads.has(id)) {
      tasks.push(
        api(`/alerts/${id}`)
          .then((a) => this.payloads.set(id, a.payload))
          .catch(() => this.payloads.set(id, {})),
      );
    }
    if (alert && alert.has_snapshot && !this.images.has(id)) {
      tasks.push(
        authorisedImage(alert.snapshot_url)
          .then((image) => this.images.set(id, image))
          .catch((error) => this.images.set(id, { error })),
      );
    }
    if (tasks.length) {
      await Promise.all(tasks);
      if (id === this.alertId) this.render();
    }
  }

  // -- rendering -------------------------------------------------------------------------
  render() {
    if (!this.container) return;
    clear(this.container);
    if (!this.id) {
      this.container.append(h("div", { class: "placeholder" }, t("cases.none_selected")));
      return;
    }
    if (this.error) {
      const text =
        this.error.status === 404 ? t("cases.not_found", { id: this.id }) : errorText(this.error);
      this.container.append(
        h("div", { class: "placeholder error", dataset: { testid: "case-error" } }, text),
      );
      return;
    }
    const c = this.case;
    if (!c) {
      this.container.append(h("div", { class: "placeholder" }, t("cases.loading")));
      return;
    }
    this.container.append(
      h(
        "article",
        { class: "case-detail", dataset: { testid: "case-detail", caseId: String(c.id) } },
        this.header(c),
        h(
          "div",
          { class: "case-grid" },
          h("div", { class: "case-visual" }, this.snapshot(c), this.alertStrip(c), this.facts(c)),
          h(
            "div",
            { class: "case-side" },
            this.actionPanel(c),
            this.timeline(c),
            this.dispatchList(c),
            this.feedbackList(c),
          ),
        ),
      ),
    );
  }

  header(c) {
    return h(
      "header",
      { class: `case-header severity-${c.severity}` },
      h(
        "div",
        { class: "case-heading" },
        h("span", { class: "case-id" }, t("case.title", { id: c.id })),
        h("h2", {}, caseTitle(c)),
      ),
      h(
        "div",
        { class: "case-pills" },
        h("span", { class: `pill severity ${c.severity}` }, label("severity", c.severity)),
        h(
          "span",
          { class: `pill state ${c.state}`, dataset: { testid: "case-state", state: c.state } },
          label("state", c.state),
        ),
        c.escalation_level > 0 &&
          h("span", { class: "pill escalated" }, `⇧ ${t("cases.escalated", { n: c.escalation_level })}`),
      ),
    );
  }

  snapshot(c) {
    const alert = c.alerts.find((a) => a.id === this.alertId);
    const image = this.images.get(this.alertId);
    const payload = this.payloads.get(this.alertId) || {};
    const figure = h("figure", { class: "snapshot", dataset: { testid: "snapshot" } });
    if (!alert || !alert.has_snapshot) {
      figure.append(h("div", { class: "no-snapshot" }, t("case.snapshot.none")));
      return figure;
    }
    if (!image) {
      figure.append(h("div", { class: "no-snapshot" }, t("cases.loading")));
      return figure;
    }
    if (image.error) {
      figure.append(h("div", { class: "no-snapshot error" }, errorText(image.error)));
      return figure;
    }
    const width = payload.snapshot?.width || 1600;
    const height = payload.snapshot?.height || 900;
    const img = h("img", { src: image.url, alt: t("case.snapshot"), draggable: "false" });
    const overlay = svg("svg", {
      class: ["overlay", !this.overlay && "hidden"],
      viewBox: `0 0 ${width} ${height}`,
      preserveAspectRatio: "none",
      dataset: { testid: "overlay" },
    });
    if (payload.zone_polygon && payload.zone_polygon.length >= 3) {
      overlay.append(
        svg("polygon", {
          class: "zone",
          points: payload.zone_polygon.map(([x, y]) => `${x * width},${y * height}`).join(" "),
        }),
      );
    }
    for (const person of payload.people || []) {
      const [x1, y1, x2, y2] = person.box;
      overlay.append(
        svg("rect", {
          class: ["person", person.in_zone ? "in-zone" : "outside"],
          x: x1 * width,
          y: y1 * height,
          width: Math.max(1, (x2 - x1) * width),
          height: Math.max(1, (y2 - y1) * height),
        }),
      );
    }
    const frame = h("div", { class: "snapshot-frame" }, img, overlay);
    frame.style.aspectRatio = `${width} / ${height}`;
    frame.style.width = `min(100%, calc((100vh - 330px) * ${width / height}))`;
    figure.append(
      frame,
      h(
        "figcaption",
        {},
        h(
          "label",
          { class: "toggle" },
          h("input", {
            type: "checkbox",
            checked: this.overlay,
            onchange: (e) => {
              this.overlay = e.target.checked;
              overlay.classList.toggle("hidden", !this.overlay);
            },
          }),
          t("case.overlay"),
        ),
        h(
          "span",
          {},
          `${label("kind", alert.kind)} · ${formatTime(alert.occurred_at)} · ${t("cases.people", {
            n: alert.count,
          })}`,
        ),
      ),
    );
    return figure;
  }

  alertStrip(c) {
    if (c.alerts.length < 2) return null;
    return h(
      "div",
      { class: "alert-strip", "aria-label": t("case.alerts") },
      c.alerts.map((a) =>
        h(
          "button",
          {
            type: "button",
            class: ["alert-chip", a.id === this.alertId && "on", `severity-${a.severity}`],
            onclick: () => {
              this.alertId = a.id;
              this.render();
              this.loadAlert();
            },
          },
          `${label("kind", a.kind)} ${formatTime(a.occurred_at)} · ${a.count}`,
        ),
      ),
    );
  }

  facts(c) {
    const payload = this.payloads.get(this.alertId) || {};
    const rows = [
      [t("case.count"), number(c.people_count), "count"],
      [t("case.peak"), number(c.peak_count)],
      [t("case.threshold"), payload.threshold ?? "–"],
      [
        t("case.density"),
        payload.density_per_m2 != null
          ? t("case.density.value", { value: number(payload.density_per_m2, 2) })
          : "–",
      ],
      payload.zone_area_m2 != null && [t("case.area"), `${number(payload.zone_area_m2, 0)} m²`],
      [t("case.rule"), (payload.rules && payload.rules.length ? payload.rules : [payload.rule])
          .filter(Boolean)
          .map((rule) => label("rule", rule))
          .join(", ") || "–"],
      payload.reason && [t("case.reason"), payload.reason],
      [t("case.camera"), c.camera_name || c.camera_id || "–"],
      [t("case.zone"), c.zone_name || c.zone_id || "–"],
      [
        t("case.location"),
        [c.district, c.street, c.community, c.grid_cell].filter(Boolean).join(" / ") || "–",
      ],
      [t("case.centre"), this.app.centreName(c.centre_id)],
      [t("case.created"), `${formatTime(c.created_at)} (${c.created_by || c.origin})`],
      c.episode_ended_at && [
        "",
        t("case.episode_ended", { time: formatTime(c.episode_ended_at) }),
      ],
      c.dismiss_reason && ["", t("case.dismiss_reason", { reason: c.dismiss_reason })],
    ].filter(Boolean);
    return h(
      "dl",
      { class: "facts" },
      rows.map(([term, value, testid]) => [
        h("dt", {}, term),
        h("dd", { dataset: testid ? { testid } : undefined }, String(value)),
      ]),
    );
  }

  // -- actions ---------------------------------------------------------------------------
  actionPanel(c) {
    const panel = h(
      "section",
      { class: "panel actions", dataset: { testid: "actions" } },
      h("h3", {}, t("case.actions")),
    );
    if (!this.actions.length) {
      panel.append(h("p", { class: "muted" }, t("case.actions.none")));
    } else {
      panel.append(
        h(
          "div",
          { class: "action-buttons" },
          this.actions.map((a) =>
            h(
              "button",
              {
                type: "button",
                class: [
                  "action",
                  a.action === "dismiss" ? "danger" : "primary",
                  this.form && this.form.action === a.action && "on",
                ],
                disabled: this.busy,
                dataset: { action: a.action },
                onclick: () => this.choose(a),
              },
              label("action", a.action),
            ),
          ),
        ),
      );
    }
    if (this.form) panel.append(this.actionForm(this.form, c));
    if (this.notice) {
      panel.append(
        h(
          "p",
          {
            class: ["notice", this.notice.kind],
            role: this.notice.kind === "error" ? "alert" : "status",
            dataset: { testid: "action-notice" },
          },
          this.notice.text,
        ),
      );
    }
    return panel;
  }

  choose(action) {
    this.notice = null;
    if (ONE_CLICK.has(action.action)) {
      this.perform(action, {});
      return;
    }
    this.form = this.form && this.form.action === action.action ? null : action;
    if (this.form && ["dispatch", "add_units"].includes(action.action) && !this.units) {
      api("/units")
        .then((units) => {
          this.units = units;
          this.render();
        })
        .catch((error) => {
          this.notice = { kind: "error", text: errorText(error) };
          this.render();
        });
    }
    this.render();
  }

  actionForm(action, c) {
    const fields = [];
    if (action.action === "dispatch" || action.action === "add_units") {
      const sent = new Set(c.dispatches.map((d) => d.unit_id));
      const units = (this.units || []).filter((u) => u.active && !sent.has(u.id));
      fields.push(
        h(
          "fieldset",
          { class: "units" },
          h("legend", {}, t("case.units")),
          this.units === null
            ? h("p", { class: "muted" }, t("cases.loading"))
            : units.length
              ? units.map((u) =>
                  h(
                    "label",
                    { class: "unit-choice" },
                    h("input", { type: "checkbox", name: "unit", value: String(u.id) }),
                    h("span", { class: "unit-name" }, u.name),
                    h(
                      "span",
                      { class: "muted" },
                      ` ${[
                        label("unit", u.kind),
                        this.app.centres.get(u.centre_id)?.name, // centres above yours: unnamed
                        u.phone && `☎ ${u.phone}`,
                      ]
                        .filter(Boolean)
                        .join(" · ")}`,
                    ),
                  ),
                )
              : h("p", { class: "muted" }, t("case.units.none")),
        ),
      );
    }
    if (action.action === "feedback") {
      fields.push(
        h("label", {}, t("case.feedback.note"), h("textarea", { name: "note", required: true, rows: 3 })),
        h(
          "label",
          {},
          t("case.feedback.unit"),
          h(
            "select",
            { name: "unit_id" },
            h("option", { value: "" }, t("case.feedback.no_unit")),
            c.dispatches.map((d) => h("option", { value: String(d.unit_id) }, d.unit_name)),
          ),
        ),
        h(
          "label",
          {},
          t("case.feedback.photo"),
          h("input", { type: "file", name: "photo", accept: "image/jpeg,image/png" }),
        ),
      );
    } else if (action.action === "dismiss") {
      fields.push(
        h(
          "label",
          {},
          t("case.dismiss.reason"),
          h("textarea", { name: "reason", required: true, rows: 2 }),
        ),
      );
    } else {
      fields.push(h("label", {}, t("case.note"), h("textarea", { name: "note", rows: 2 })));
    }
    return h(
      "form",
      {
        class: "action-form",
        dataset: { testid: `form-${action.action}` },
        onsubmit: (e) => {
          e.preventDefault();
          const data = new FormData(e.target);
          this.perform(action, {
            note: String(data.get("note") || "").trim() || null,
            reason: String(data.get("reason") || "").trim(),
            unit_ids: data.getAll("unit").map(Number),
            unit_id: data.get("unit_id") ? Number(data.get("unit_id")) : null,
            photo: data.get("photo"),
          });
        },
      },
      fields,
      h(
        "div",
        { class: "form-buttons" },
        h("button", { type: "submit", class: "primary", disabled: this.busy }, t("case.confirm")),
        h(
          "button",
          {
            type: "button",
            class: "ghost",
            onclick: () => {
              this.form = null;
              this.render();
            },
          },
          t("case.cancel"),
        ),
      ),
    );
  }

  async perform(action, values) {
    const id = this.id;
    this.busy = true;
    this.render();
    let photoProblem = null;
    try {
      if (action.action === "dispatch" || action.action === "add_units") {
        await api(action.path, { method: "POST", json: { unit_ids: values.unit_ids, note: values.note } });
      } else if (action.action === "feedback") {
        const item = await api(action.path, {
          method: "POST",
          json: { note: values.note || "", unit_id: values.unit_id },
        });
        const photo = values.photo;
        if (photo && photo.size) {
          try {
            await api(`/cases/${id}/feedback/${item.id}/photos`, {
              method: "POST",
              body: photo,
              contentType: photo.type || "application/octet-stream",
            });
          } catch (error) {
            photoProblem = error;
          }
        }
      } else {
        const body = { to: action.to, note: values.note || null };
        if (action.action === "dismiss") body.reason = values.reason;
        await api(action.path, { method: "POST", json: body });
      }
      this.form = null;
      this.notice = photoProblem
        ? { kind: "error", text: t("case.photo_failed", { message: errorText(photoProblem) }) }
        : { kind: "ok", text: t("case.done", { action: label("action", action.action) }) };
    } catch (error) {
      this.notice = { kind: "error", text: errorText(error) };
    } finally {
      this.busy = false;
    }
    if (id === this.id) await this.fetch();
  }

  // -- trail, units, feedback --------------------------------------------------------------
  timeline(c) {
    return h(
      "section",
      { class: "panel timeline", dataset: { testid: "timeline" } },
      h("h3", {}, t("case.timeline")),
      h(
        "ol",
        {},
        c.history.map((e) =>
          h(
            "li",
            { class: `event ${e.action}`, dataset: { action: e.action } },
            h("time", { datetime: e.at, title: e.at }, formatTime(e.at)),
            h("span", { class: "actor" }, e.actor),
            h("span", { class: "what" }, this.describe(e)),
            e.note && h("div", { class: "note" }, e.note),
            this.eventDetails(e),
          ),
        ),
      ),
    );
  }

  describe(e) {
    switch (e.action) {
      case "created":
        return t("history.created");
      case "transition":
        return t("history.transition", {
          from: label("state", e.from_state),
          to: label("state", e.to_state),
        });
      case "escalated":
        return `${t("history.escalated", { sla: formatDuration(e.data.sla_s) })}: ${this.app.centreName(
          e.data.from_centre_id,
        )} → ${this.app.centreName(e.data.to_centre_id)}`;
      default:
        return label("history", e.action);
    }
  }

  eventDetails(e) {
    const parts = [];
    if (e.data && Array.isArray(e.data.units) && e.data.units.length) {
      parts.push(t("history.units", { units: e.data.units.map((u) => u.name).join(", ") }));
    }
    if (e.data && e.data.reason) parts.push(t("history.reason", { reason: e.data.reason }));
    return parts.length ? h("div", { class: "details" }, parts.join(" · ")) : null;
  }

  dispatchList(c) {
    if (!c.dispatches.length) return null;
    return h(
      "section",
      { class: "panel dispatches", dataset: { testid: "dispatches" } },
      h("h3", {}, t("case.dispatches")),
      h(
        "ul",
        {},
        c.dispatches.map((d) =>
          h(
            "li",
            {},
            h("strong", {}, d.unit_name),
            ` ${label("unit", d.unit_kind)} · ${formatTime(d.dispatched_at)} · ${d.dispatched_by}`,
          ),
        ),
      ),
    );
  }

  feedbackList(c) {
    if (!c.feedback.length) return null;
    const units = new Map(c.dispatches.map((d) => [d.unit_id, d.unit_name]));
    return h(
      "section",
      { class: "panel feedback", dataset: { testid: "feedback" } },
      h("h3", {}, t("case.feedback")),
      h(
        "ul",
        {},
        c.feedback.map((f) =>
          h(
            "li",
            {},
            h(
              "div",
              { class: "muted" },
              `${formatTime(f.at)} · ${f.author}${f.unit_id ? ` · ${units.get(f.unit_id) || ""}` : ""}`,
            ),
            h("div", {}, f.note),
            f.photos.length ? h("div", { class: "photos" }, f.photos.map((p) => this.photo(p))) : null,
          ),
        ),
      ),
    );
  }

  photo(p) {
    const img = h("img", { class: "photo", alt: "", dataset: { photo: String(p.id) } });
    const key = `photo:${p.url}`;
    if (!this.images.has(key)) this.images.set(key, authorisedImage(p.url));
    this.images
      .get(key)
      .then((image) => {
        img.src = image.url;
      })
      .catch(() => img.classList.add("broken"));
    return img;
  }
}
