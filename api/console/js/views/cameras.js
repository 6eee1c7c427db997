// Cameras for integrators: the registry with each stream's health (refreshed every few
// seconds), adding a camera by RTSP URL or by ONVIF probe, and the way to its zones.
import { api, errorText } from "../api.js";
import { clear, formatDuration, formatTime, h } from "../dom.js";
import { label, t } from "../i18n.js";

const REFRESH_MS = 5000;
const BAD_STATES = new Set(["stalled", "backoff", "failed_auth", "ended", "stopped"]);

function emptyForm() {
  return {
    id: "",
    name: "",
    source: "",
    username: "",
    password: "",
    grid_cell: "",
    address: "",
    onvifAddress: "",
    onvifUsername: "",
    onvifPassword: "",
  };
}

export class CamerasView {
  constructor(app) {
    this.app = app;
    this.cameras = [];
    this.health = {};
    this.healthError = null;
    this.error = null;
    this.refreshedAt = null;
    this.adding = false;
    this.tab = "rtsp";
    this.form = emptyForm();
    this.result = null; // {kind, text, testid}
    this.onvif = null; // the probe's answer
    this.onvifProfile = null;
    this.busy = false;
    this.rowNotice = null;
    this.timer = null;
  }

  mount(container) {
    this.container = container;
    this.render();
    this.load();
    this.timer = setInterval(() => this.load(), REFRESH_MS);
  }

  unmount() {
    clearInterval(this.timer);
  }

  async load() {
    try {
      const [cameras, health] = await Promise.all([api("/cameras"), api("/cameras/health")]);
      this.cameras = cameras;
      this.health = health.cameras || {};
      this.healthError = health.error || null;
      this.error = null;
      this.refreshedAt = new Date().toISOString();
    } catch (error) {
      this.error = error;
    }
    this.renderTable();
  }

  render() {
    const canWrite = this.app.can("cameras.write");
    this.tableSlot = h("div", { class: "table-slot" });
    clear(this.container).append(
      h(
        "div",
        { class: "page cameras-page" },
        h(
          "div",
          { class: "page-head" },
          h("h2", {}, t("cameras.title")),
          (this.refreshEl = h("span", { class: "muted" })),
          canWrite &&
            h(
              "button",
              {
                type: "button",
                class: ["primary", this.adding && "on"],
                dataset: { testid: "add-camera" },
                onclick: () => {
                  this.adding = !this.adding;
                  this.render();
                },
              },
              t("cameras.add"),
            ),
        ),
        canWrite && this.adding && this.addPanel(),
        this.tableSlot,
      ),
    );
    this.renderTable();
  }

  renderTable() {
    if (!this.tableSlot) return;
    clear(this.refreshEl).append(
      this.refreshedAt ? t("cameras.refresh", { time: formatTime(this.refreshedAt) }) : "",
    );
    clear(this.tableSlot);
    if (this.error) {
      this.tableSlot.append(h("p", { class: "error" }, errorText(this.error)));
    }
    if (this.healthError) this.tableSlot.append(h("p", { class: "error" }, this.healthError));
    if (!this.cameras.length) {
      this.tableSlot.append(h("p", { class: "muted" }, t("cameras.empty")));
      return;
    }
    const canWrite = this.app.can("cameras.write");
    const rows = [];
    for (const camera of this.cameras) {
      rows.push(this.row(camera, canWrite));
      if (this.rowNotice && this.rowNotice.id === camera.id) {
        rows.push(
          h(
            "tr",
            { class: "row-notice" },
            h(
              "td",
              { colspan: 8, class: ["notice", this.rowNotice.kind], dataset: { testid: "row-notice" } },
              this.rowNotice.text,
            ),
          ),
        );
      }
    }
    this.tableSlot.append(
      h(
        "table",
        { class: "grid cameras", dataset: { testid: "camera-table" } },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["state", "camera", "location", "frame_age", "stream", "zones", "origin", "actions"].map(
              (c) => h("th", {}, t(`cameras.col.${c}`)),
            ),
          ),
        ),
        h("tbody", {}, rows),
      ),
    );
  }

  row(camera, canWrite) {
    const health = this.health[camera.id];
    const state = health ? health.state : "unknown";
    const age =
      health && health.last_frame_at ? Date.now() / 1000 - Number(health.last_frame_at) : null;
    const size = health && health.stream_size ? health.stream_size.join("×") : "";
    const problems = [];
    if (health && health.reconnects) problems.push(t("cameras.reconnects", { n: health.reconnects }));
    if (health && health.decode_errors) problems.push(t("cameras.errors", { n: health.decode_errors }));
    return h(
      "tr",
      { dataset: { cameraId: camera.id, health: state } },
      h(
        "td",
        {},
        h(
          "span",
          {
            class: ["health", state, BAD_STATES.has(state) && "bad"],
            dataset: { testid: "health" },
            title: health && health.last_error ? health.last_error : "",
          },
          label("health", state),
        ),
      ),
      h(
        "td",
        {},
        h("div", { class: "strong" }, camera.name),
        h("div", { class: "muted mono" }, camera.id),
      ),
      h(
        "td",
        {},
        h("div", {}, [camera.location.community, camera.grid_cell].filter(Boolean).join(" · ")),
        h(
          "div",
          { class: "muted" },
          camera.location.address || `${camera.location.district} / ${camera.location.street}`,
        ),
      ),
      h(
        "td",
        { dataset: { testid: "frame-age" } },
        age === null
          ? h("span", { class: "muted" }, health ? t("time.never") : t("cameras.not_reported"))
          : t("cameras.ago", { age: formatDuration(age) }),
        problems.length ? h("div", { class: "muted" }, problems.join(" · ")) : null,
        health && health.last_error
          ? h("div", { class: "error small" }, health.last_error)
          : null,
      ),
      h(
        "td",
        {},
        h("div", { class: "mono small" }, camera.source),
        h("div", { class: "muted" }, [size, health && health.decode_mode].filter(Boolean).join(" · ")),
      ),
      h("td", {}, String(camera.zones.length)),
      h("td", {}, t(`cameras.origin.${camera.origin}`)),
      h(
        "td",
        {},
        h(
          "div",
          { class: "row-actions" },
          h("a", { class: "button small", href: `#/cameras/${camera.id}/zones` }, t("cameras.zones")),
        canWrite &&
          h(
            "button",
            { type: "button", class: "small", onclick: () => this.testCamera(camera) },
            t("cameras.test"),
          ),
        canWrite &&
          camera.origin === "api" &&
          h(
            "button",
            { type: "button", class: "small danger", onclick: () => this.remove(camera) },
            t("cameras.delete"),
          ),
        ),
      ),
    );
  }

  async testCamera(camera) {
    this.rowNotice = { id: camera.id, kind: "muted", text: t("add.probing") };
    this.renderTable();
    try {
      const answer = await api(`/cameras/${camera.id}/test`, { method: "POST" });
      this.rowNotice = { id: camera.id, ...probeText(answer) };
    } catch (error) {
      this.rowNotice = { id: camera.id, kind: "error", text: errorText(error) };
    }
    this.renderTable();
  }

  async remove(camera) {
    if (!window.confirm(t("cameras.delete.confirm", { id: camera.id }))) return;
    try {
      await api(`/cameras/${camera.id}`, { method: "DELETE" });
      this.rowNotice = null;
    } catch (error) {
      this.rowNotice = { id: camera.id, kind: "error", text: errorText(error) };
    }
    this.load();
  }

  // -- adding a camera -------------------------------------------------------------------
  addPanel() {
    return h(
      "section",
      { class: "panel add-camera", dataset: { testid: "add-panel" } },
      h(
        "div",
        { class: "tabs", role: "tablist" },
        ["rtsp", "onvif"].map((tab) =>
          h(
            "button",
            {
              type: "button",
              role: "tab",
              class: ["tab", this.tab === tab && "on"],
              "aria-selected": String(this.tab === tab),
              dataset: { tab },
              onclick: () => {
                this.tab = tab;
                this.result = null;
                this.render();
              },
            },
            t(`add.tab.${tab}`),
          ),
        ),
      ),
      this.tab === "rtsp" ? this.rtspForm() : this.onvifForm(),
      this.result &&
        h(
          "p",
          { class: ["notice", this.result.kind], dataset: { testid: "add-result" }, role: "status" },
          this.result.text,
        ),
    );
  }

  input(name, title, attrs = {}) {
    return h(
      "label",
      {},
      title,
      h("input", {
        name,
        value: this.form[name],
        oninput: (e) => {
          this.form[name] = e.target.value;
        },
        ...attrs,
      }),
    );
  }

  gridCells() {
    const cells = [];
    for (const centre of this.app.centres.values()) {
      for (const cell of centre.grid_cells || []) cells.push({ cell, centre });
    }
    return cells.sort((a, b) => a.cell.localeCompare(b.cell));
  }

  rtspForm() {
    return h(
      "form",
      { class: "form-grid", onsubmit: (e) => this.save(e) },
      this.input("id", t("add.id"), { required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,63}" }),
      this.input("name", t("add.name"), { required: true }),
      this.input("source", t("add.source"), {
        required: true,
        placeholder: "rtsp://192.0.2.10:554/Streaming/Channels/102",
        class: "wide",
      }),
      this.input("username", t("add.username"), { autocomplete: "off" }),
      this.input("password", t("add.password"), { type: "password", autocomplete: "new-password" }),
      h(
        "label",
        {},
        t("add.grid_cell"),
        h(
          "select",
          {
            name: "grid_cell",
            required: true,
            onchange: (e) => {
              this.form.grid_cell = e.target.value;
            },
          },
          h("option", { value: "" }, "–"),
          this.gridCells().map(({ cell, centre }) =>
            h(
              "option",
              { value: cell, selected: cell === this.form.grid_cell },
              `${cell} — ${centre.path || centre.name}`,
            ),
          ),
        ),
      ),
      this.input("address", t("add.address")),
      h(
        "div",
        { class: "form-buttons" },
        h(
          "button",
          { type: "button", disabled: this.busy, onclick: () => this.testSource() },
          t("add.test"),
        ),
        h("button", { type: "submit", class: "primary", disabled: this.busy }, t("add.save")),
      ),
    );
  }

  location() {
    const found = this.gridCells().find((c) => c.cell === this.form.grid_cell);
    if (!found) return null;
    const names = (found.centre.path || found.centre.name).split(" / ");
    const [district, street, community] =
      names.length >= 3 ? names.slice(-3) : [names[0], names[0], names.at(-1)];
    return {
      district,
      street,
      community,
      grid_cell: found.cell,
      address: this.form.address || null,
    };
  }

  async testSource() {
    if (!this.form.source) return;
    this.busy = true;
    this.result = { kind: "muted", text: t("add.probing") };
    this.render();
    try {
      const answer = await api("/cameras/test", {
        method: "POST",
        json: {
          source: this.form.source,
          username: this.form.username || null,
          password: this.form.password || null,
        },
      });
      this.result = probeText(answer);
    } catch (error) {
      this.result = { kind: "error", text: errorText(error) };
    }
    this.busy = false;
    this.render();
  }

  async save(event) {
    event.preventDefault();
    const location = this.location();
    const spec = {
      id: this.form.id.trim(),
      name: this.form.name.trim(),
      source: this.form.source.trim(),
      username: this.form.username || null,
      password: this.form.password || null,
      location,
      zones: [],
    };
    this.busy = true;
    this.render();
    try {
      const camera = await api("/cameras", { method: "POST", json: spec });
      this.result = {
        kind: "ok",
        text: t("add.saved", { id: camera.id, published: camera.published ? t("yes") : t("no") }),
      };
      this.form = emptyForm();
      this.onvif = null;
    } catch (error) {
      this.result = { kind: "error", text: errorText(error) };
    }
    this.busy = false;
    this.render();
    this.load();
  }

  onvifForm() {
    const form = h(
      "form",
      { class: "form-grid", onsubmit: (e) => this.probeOnvif(e) },
      h(
        "label",
        { class: "wide" },
        t("add.onvif.address"),
        h("input", {
          name: "onvifAddress",
          required: true,
          value: this.form.onvifAddress,
          placeholder: "192.0.2.10:8080",
          oninput: (e) => {
            this.form.onvifAddress = e.target.value;
          },
        }),
      ),
      this.input("onvifUsername", t("add.username"), { autocomplete: "off" }),
      this.input("onvifPassword", t("add.password"), {
        type: "password",
        autocomplete: "new-password",
      }),
      h(
        "div",
        { class: "form-buttons" },
        h("button", { type: "submit", class: "primary", disabled: this.busy }, t("add.onvif.probe")),
      ),
    );
    const answer = this.onvif;
    if (!answer || !answer.profiles || !answer.profiles.length) return form;
    return h(
      "div",
      {},
      form,
      h(
        "div",
        { class: "onvif-result", dataset: { testid: "onvif-result" } },
        h(
          "p",
          { class: "strong" },
          t("add.onvif.device", {
            manufacturer: answer.manufacturer || "?",
            model: answer.model || "",
            firmware: answer.firmware || "?",
            serial: answer.serial || "?",
          }),
        ),
        h(
          "table",
          { class: "grid" },
          h(
            "tbody",
            {},
            answer.profiles.map((p) =>
              h(
                "tr",
                {},
                h(
                  "td",
                  {},
                  h("input", {
                    type: "radio",
                    name: "profile",
                    value: p.token,
                    checked: p.token === this.onvifProfile,
                    disabled: !p.stream_uri,
                    onchange: () => {
                      this.onvifProfile = p.token;
                    },
                  }),
                ),
                h("td", {}, p.name, p.token === answer.recommended_profile ? ` (${t("add.onvif.recommended")})` : ""),
                h(
                  "td",
                  {},
                  [p.encoding, p.width && `${p.width}×${p.height}`, p.fps && `${p.fps} fps`]
                    .filter(Boolean)
                    .join(" · "),
                ),
                h("td", { class: "mono small" }, p.stream_uri || "–"),
              ),
            ),
          ),
        ),
        h(
          "button",
          {
            type: "button",
            class: "primary",
            dataset: { testid: "use-stream" },
            onclick: () => this.useProfile(),
          },
          t("add.onvif.use"),
        ),
      ),
    );
  }

  async probeOnvif(event) {
    event.preventDefault();
    this.busy = true;
    this.onvif = null;
    this.result = { kind: "muted", text: t("add.probing") };
    this.render();
    try {
      const answer = await api("/cameras/onvif-probe", {
        method: "POST",
        json: {
          address: this.form.onvifAddress,
          username: this.form.onvifUsername || null,
          password: this.form.onvifPassword || null,
        },
      });
      if (answer.stage !== "done") {
        this.result = {
          kind: "error",
          text: t("add.onvif.failed", { stage: answer.stage, message: answer.message }),
        };
      } else {
        this.onvif = answer;
        this.onvifProfile = answer.recommended_profile;
        this.result = { kind: answer.ok ? "ok" : "error", text: answer.message };
      }
    } catch (error) {
      this.result = { kind: "error", text: errorText(error) };
    }
    this.busy = false;
    this.render();
  }

  useProfile() {
    const answer = this.onvif;
    const profile = answer.profiles.find((p) => p.token === this.onvifProfile);
    if (!profile || !profile.stream_uri) return;
    Object.assign(this.form, {
      id: this.form.id || answer.suggested_id || "",
      name: this.form.name || answer.suggested_name || "",
      source: profile.stream_uri,
      username: this.form.onvifUsername,
      password: this.form.onvifPassword,
    });
    this.tab = "rtsp";
    this.result = null;
    this.render();
  }
}

function probeText(answer) {
  if (answer.ok) {
    return {
      kind: "ok",
      text: t("add.test.ok", { media: answer.media.join(", "), latency: answer.latency_ms }),
    };
  }
  return { kind: "error", text: t("add.test.failed", { stage: answer.stage, message: answer.message }) };
}
