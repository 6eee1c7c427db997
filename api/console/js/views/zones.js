// The zone editor: polygons in normalised image coordinates (0..1, origin top-left) drawn on
// the camera's current view — the pipeline's live thumbnail, else its newest alert snapshot,
// else a blank canvas with the stream's aspect ratio. The API validates the zones; its 422
// message (e.g. "the polygon's edges 0-1 and 2-3 cross each other …") is shown as it is.
import { api, authorisedImage, errorText } from "../api.js";
import { clear, formatTime, h, svg } from "../dom.js";
import { t } from "../i18n.js";

const DEFAULT_SIZE = [1600, 900];
const HANDLE_PX = 7;

function round(value) {
  return Math.round(Math.min(1, Math.max(0, value)) * 10000) / 10000;
}

export class ZoneEditorView {
  constructor(app, params) {
    this.app = app;
    this.cameraId = params[0];
    this.camera = null;
    this.zones = [];
    this.selected = -1;
    this.drawing = null; // points of the polygon being drawn
    this.cursor = null;
    this.drag = null;
    this.dirty = false;
    this.picture = null; // {url, source, takenAt, width, height}
    this.message = null; // {kind, text}
    this.error = null;
    this.busy = false;
    this.onKey = (e) => this.key(e);
  }

  get editable() {
    return this.app.can("cameras.write") && this.camera && this.camera.origin === "api";
  }

  mount(container) {
    this.container = container;
    document.addEventListener("keydown", this.onKey);
    this.render();
    this.load();
  }

  unmount() {
    document.removeEventListener("keydown", this.onKey);
    if (this.picture && this.picture.url) URL.revokeObjectURL(this.picture.url);
  }

  async load() {
    try {
      this.camera = await api(`/cameras/${this.cameraId}`);
      this.zones = structuredClone(this.camera.zones);
      this.selected = this.zones.length ? 0 : -1;
      this.error = null;
    } catch (error) {
      this.error = error;
    }
    this.render();
    if (this.camera) await this.loadPicture();
  }

  async loadPicture() {
    if (this.picture && this.picture.url) URL.revokeObjectURL(this.picture.url);
    let picture = null;
    try {
      const image = await authorisedImage(`/cameras/${this.cameraId}/thumbnail.jpg`, {
        fallback: "alert",
      });
      const size = await naturalSize(image.url);
      picture = { ...image, width: size[0], height: size[1] };
    } catch {
      let size = DEFAULT_SIZE;
      try {
        const health = await api(`/cameras/${this.cameraId}/health`);
        if (health.stream_size) size = health.stream_size;
      } catch {
        // no health either: 16:9
      }
      picture = { url: null, source: "blank", takenAt: null, width: size[0], height: size[1] };
    }
    this.picture = picture;
    this.render();
  }

  // -- rendering -------------------------------------------------------------------------
  render() {
    if (!this.container) return;
    clear(this.container);
    const back = h("a", { href: "#/cameras", class: "button ghost" }, t("zones.back"));
    if (this.error) {
      this.container.append(
        h("div", { class: "page" }, back, h("p", { class: "error" }, errorText(this.error))),
      );
      return;
    }
    if (!this.camera) {
      this.container.append(h("div", { class: "page" }, back, h("p", {}, t("cases.loading"))));
      return;
    }
    this.stage = h("div", { class: "stage", dataset: { testid: "zone-stage" } });
    this.container.append(
      h(
        "div",
        { class: "page zones-page" },
        h(
          "div",
          { class: "page-head" },
          back,
          h("h2", {}, t("zones.title", { camera: this.camera.name })),
        ),
        h(
          "div",
          { class: "zones-layout" },
          h("div", { class: "stage-column" }, this.stage, (this.captionSlot = h("div", {}))),
          (this.sideSlot = h("div", { class: "side-slot" })),
        ),
      ),
    );
    this.renderStage();
    this.refresh();
  }

  /** Everything but the picture: the side panel, the caption and the overlay. */
  refresh() {
    if (!this.sideSlot) return;
    clear(this.sideSlot).append(this.sidePanel());
    clear(this.captionSlot).append(this.stageCaption());
    this.renderOverlay();
  }

  stageCaption() {
    const p = this.picture;
    let text = "";
    if (p) {
      const time = formatTime(p.takenAt || new Date().toISOString());
      if (p.source === "live") text = t("zones.source.live", { time });
      else if (p.source === "alert") text = t("zones.source.alert", { time });
      else text = t("zones.source.blank", { aspect: `${p.width}×${p.height}` });
    }
    return h(
      "div",
      { class: "stage-caption" },
      h("span", { dataset: { testid: "picture-source", source: p ? p.source : "" } }, text),
      h("button", { type: "button", class: "small", onclick: () => this.loadPicture() }, t("zones.reload")),
      h(
        "span",
        { class: "muted" },
        this.editable ? t(this.drawing ? "zones.help.draw" : "zones.help.edit") : "",
      ),
    );
  }

  renderStage() {
    const p = this.picture || { url: null, width: DEFAULT_SIZE[0], height: DEFAULT_SIZE[1] };
    this.size = [p.width, p.height];
    this.stage.style.aspectRatio = `${p.width} / ${p.height}`;
    // As wide as the column allows, but never taller than the screen (keeps the aspect).
    this.stage.style.width = `min(100%, calc((100vh - 210px) * ${p.width / p.height}))`;
    const background = p.url
      ? h("img", { src: p.url, alt: "", draggable: "false" })
      : h("div", { class: "blank" });
    this.svgEl = svg("svg", {
      viewBox: `0 0 ${p.width} ${p.height}`,
      preserveAspectRatio: "none",
      class: "zone-svg",
      dataset: { testid: "zone-svg" },
      onpointerdown: (e) => this.pointerDown(e),
      onpointermove: (e) => this.pointerMove(e),
      onpointerup: (e) => this.pointerUp(e),
      ondblclick: (e) => {
        e.preventDefault();
        if (this.drawing) this.finish();
      },
      oncontextmenu: (e) => e.preventDefault(),
    });
    clear(this.stage).append(background, this.svgEl);
    this.renderOverlay();
  }

  /** Just the SVG: cheap enough to redo on every pointer move. */
  renderOverlay() {
    if (!this.svgEl) return;
    const [w, hgt] = this.size;
    const scale = this.stage.clientWidth ? w / this.stage.clientWidth : w / 1000;
    const r = HANDLE_PX * scale;
    const pts = (points) => points.map(([x, y]) => `${x * w},${y * hgt}`).join(" ");
    clear(this.svgEl);
    this.svgEl.classList.toggle("drawing", Boolean(this.drawing));
    this.zones.forEach((zone, index) => {
      const selected = index === this.selected && !this.drawing;
      this.svgEl.append(
        svg("polygon", {
          class: ["zone-shape", selected && "selected"],
          points: pts(zone.polygon),
          dataset: { zone: String(index) },
        }),
      );
      const [cx, cy] = centroid(zone.polygon);
      this.svgEl.append(
        svg("text", { x: cx * w, y: cy * hgt, class: "zone-label", "font-size": 16 * scale }, zone.name),
      );
    });
    const zone = this.zones[this.selected];
    if (zone && !this.drawing && this.editable) {
      zone.polygon.forEach(([x, y], i) => {
        const [nx, ny] = zone.polygon[(i + 1) % zone.polygon.length];
        this.svgEl.append(
          svg("circle", {
            class: "midpoint",
            cx: ((x + nx) / 2) * w,
            cy: ((y + ny) / 2) * hgt,
            r: r * 0.7,
            dataset: { insert: String(i + 1) },
          }),
        );
      });
      zone.polygon.forEach(([x, y], i) => {
        this.svgEl.append(
          svg("circle", { class: "vertex", cx: x * w, cy: y * hgt, r, dataset: { vertex: String(i) } }),
        );
      });
    }
    if (this.drawing) {
      const points = this.cursor ? [...this.drawing, this.cursor] : this.drawing;
      this.svgEl.append(svg("polyline", { class: "drawing-line", points: pts(points) }));
      this.drawing.forEach(([x, y], i) => {
        this.svgEl.append(
          svg("circle", { class: ["vertex", i === 0 && "first"], cx: x * w, cy: y * hgt, r }),
        );
      });
    }
  }

  sidePanel() {
    const editable = this.editable;
    const panel = h("aside", { class: "panel zone-panel", dataset: { testid: "zone-panel" } });
    if (this.dirty) panel.append(h("span", { class: "pill warn" }, t("zones.unsaved")));
    if (this.camera.origin !== "api") panel.append(h("p", { class: "notice" }, t("zones.readonly")));
    else if (!this.app.can("cameras.write")) panel.append(h("p", { class: "notice" }, t("zones.no_write")));
    if (editable) {
      panel.append(
        h(
          "div",
          { class: "form-buttons" },
          this.drawing
            ? [
                h(
                  "button",
                  {
                    type: "button",
                    class: "primary",
                    dataset: { testid: "finish-zone" },
                    disabled: this.drawing.length < 3,
                    onclick: () => this.finish(),
                  },
                  t("zones.finish"),
                ),
                h("button", { type: "button", class: "ghost", onclick: () => this.cancelDrawing() }, t("zones.cancel")),
              ]
            : h(
                "button",
                { type: "button", dataset: { testid: "new-zone" }, onclick: () => this.startDrawing() },
                t("zones.new"),
              ),
        ),
      );
    }
    if (!this.zones.length) panel.append(h("p", { class: "muted" }, t("zones.empty")));
    const list = h("ol", { class: "zone-list" });
    this.zones.forEach((zone, index) => {
      const selected = index === this.selected;
      list.append(
        h(
          "li",
          { class: ["zone-item", selected && "selected"], dataset: { zoneIndex: String(index) } },
          h(
            "button",
            {
              type: "button",
              class: "zone-select",
              onclick: () => {
                this.selected = index;
                this.refresh();
              },
            },
            h("strong", {}, zone.name),
            h("span", { class: "muted" }, ` ${zone.id} · ${t("zones.points", { n: zone.polygon.length })}`),
          ),
          selected && this.zoneFields(zone, index, editable),
        ),
      );
    });
    panel.append(list);
    if (editable) {
      panel.append(
        h(
          "div",
          { class: "form-buttons" },
          h(
            "button",
            {
              type: "button",
              class: "primary",
              disabled: this.busy || Boolean(this.drawing),
              dataset: { testid: "save-zones" },
              onclick: () => this.save(),
            },
            t("zones.save"),
          ),
        ),
      );
    }
    if (this.message) {
      panel.append(
        h(
          "p",
          {
            class: ["notice", this.message.kind],
            role: this.message.kind === "error" ? "alert" : "status",
            dataset: { testid: "zone-message" },
          },
          this.message.text,
        ),
      );
    }
    return panel;
  }

  zoneFields(zone, index, editable) {
    const gathering = zone.gathering || {};
    const field = (name, title, value, type, apply) =>
      h(
        "label",
        {},
        title,
        h("input", {
          name,
          type,
          value: value ?? "",
          disabled: !editable,
          step: type === "number" ? "any" : undefined,
          onchange: (e) => {
            apply(type === "number" ? Number(e.target.value) : e.target.value.trim());
            this.dirty = true;
            this.refresh();
          },
        }),
      );
    return h(
      "div",
      { class: "zone-fields" },
      field("zone-id", t("zones.id"), zone.id, "text", (v) => (zone.id = v)),
      field("zone-name", t("zones.name"), zone.name, "text", (v) => (zone.name = v)),
      field("min_people", t("zones.min_people"), gathering.min_people ?? 20, "number", (v) => {
        zone.gathering = { ...zone.gathering, min_people: v };
      }),
      field("min_duration_s", t("zones.min_duration_s"), gathering.min_duration_s ?? 30, "number", (v) => {
        zone.gathering = { ...zone.gathering, min_duration_s: v };
      }),
      field("clear_after_s", t("zones.clear_after_s"), gathering.clear_after_s ?? 30, "number", (v) => {
        zone.gathering = { ...zone.gathering, clear_after_s: v };
      }),
      h(
        "div",
        { class: "mono small points", dataset: { testid: "zone-points" } },
        zone.polygon.map(([x, y]) => `(${x.toFixed(3)}, ${y.toFixed(3)})`).join(" "),
      ),
      editable &&
        h(
          "button",
          {
            type: "button",
            class: "small danger",
            onclick: () => {
              this.zones.splice(index, 1);
              this.selected = Math.min(this.selected, this.zones.length - 1);
              this.dirty = true;
              this.refresh();
            },
          },
          t("zones.delete"),
        ),
    );
  }

  // -- drawing and editing ---------------------------------------------------------------
  point(event) {
    const box = this.svgEl.getBoundingClientRect();
    return [round((event.clientX - box.left) / box.width), round((event.clientY - box.top) / box.height)];
  }

  near(a, b, pixels = HANDLE_PX * 1.6) {
    const box = this.svgEl.getBoundingClientRect();
    return Math.hypot((a[0] - b[0]) * box.width, (a[1] - b[1]) * box.height) <= pixels;
  }

  startDrawing() {
    this.drawing = [];
    this.cursor = null;
    this.message = null;
    this.refresh();
  }

  cancelDrawing() {
    this.drawing = null;
    this.refresh();
  }

  finish() {
    const points = this.drawing || [];
    if (points.length < 3) return;
    const taken = new Set(this.zones.map((z) => z.id));
    let n = this.zones.length + 1;
    while (taken.has(`zone-${n}`)) n += 1;
    this.zones.push({
      id: `zone-${n}`,
      name: `Zone ${n}`,
      polygon: points,
      gathering: { min_people: 20, min_duration_s: 30, clear_after_s: 30 },
    });
    this.selected = this.zones.length - 1;
    this.drawing = null;
    this.cursor = null;
    this.dirty = true;
    this.refresh();
  }

  pointerDown(event) {
    if (!this.editable) return;
    const target = event.target;
    const p = this.point(event);
    if (this.drawing) {
      if (event.button !== 0) return;
      if (this.drawing.length >= 3 && this.near(p, this.drawing[0])) {
        this.finish();
        return;
      }
      const last = this.drawing.at(-1);
      if (last && this.near(p, last, 3)) return; // the second click of a double-click
      this.drawing.push(p);
      this.refresh(); // the finish button's state changes
      return;
    }
    const zone = this.zones[this.selected];
    if (target.dataset.vertex !== undefined && zone) {
      const index = Number(target.dataset.vertex);
      if (event.altKey || event.button === 2) {
        if (zone.polygon.length > 3) {
          zone.polygon.splice(index, 1);
          this.dirty = true;
          this.refresh();
        }
        return;
      }
      this.drag = { index };
      this.svgEl.setPointerCapture(event.pointerId);
      return;
    }
    if (target.dataset.insert !== undefined && zone) {
      const index = Number(target.dataset.insert);
      zone.polygon.splice(index, 0, p);
      this.drag = { index };
      this.dirty = true;
      this.svgEl.setPointerCapture(event.pointerId);
      this.renderOverlay();
      return;
    }
    if (target.dataset.zone !== undefined) {
      this.selected = Number(target.dataset.zone);
      this.refresh();
    }
  }

  pointerMove(event) {
    if (this.drawing) {
      this.cursor = this.point(event);
      this.renderOverlay();
    } else if (this.drag) {
      this.zones[this.selected].polygon[this.drag.index] = this.point(event);
      this.dirty = true;
      this.renderOverlay();
    }
  }

  pointerUp() {
    if (this.drag) {
      this.drag = null;
      this.refresh();
    }
  }

  key(event) {
    if (!this.drawing || event.target.closest("input, textarea, select")) return;
    if (event.key === "Enter") this.finish();
    if (event.key === "Escape") this.cancelDrawing();
  }

  async save() {
    this.busy = true;
    this.message = null;
    this.refresh();
    try {
      const camera = await api(`/cameras/${this.cameraId}/zones`, { method: "PUT", json: this.zones });
      this.camera = camera;
      this.zones = structuredClone(camera.zones);
      this.dirty = false;
      this.message = {
        kind: "ok",
        text: t("zones.saved", { version: camera.version, published: camera.published ? t("yes") : t("no") }),
      };
    } catch (error) {
      this.message = { kind: "error", text: this.explain(error) };
    }
    this.busy = false;
    this.refresh();
  }

  /** The API's words, with each problem tied to the zone it is about. */
  explain(error) {
    const detail = error.body && error.body.detail;
    if (error.status === 422 && Array.isArray(detail)) {
      return detail
        .map((problem) => {
          const loc = problem.loc || [];
          const index = loc[0] === "body" && typeof loc[1] === "number" ? loc[1] : null;
          const zone = index !== null ? this.zones[index] : null;
          const where = loc.slice(2).join(".");
          const message = where ? `${where}: ${problem.msg}` : problem.msg;
          return zone ? t("zones.error.zone", { zone: zone.name, message }) : message;
        })
        .join("; ");
    }
    if (error.status === 422) return t("zones.error", { message: error.message });
    return errorText(error);
  }
}

function centroid(points) {
  const n = points.length || 1;
  return [points.reduce((s, p) => s + p[0], 0) / n, points.reduce((s, p) => s + p[1], 0) / n];
}

function naturalSize(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
    img.onerror = () => reject(new Error("not an image"));
    img.src = url;
  });
}
