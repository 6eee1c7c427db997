// The console's shell: login, the header (navigation by permission, feed state, escalation
// badge, critical banner, language), hash routes, and the live feed shared by every view.
import { api, errorText, onUnauthorized, setToken, token } from "./api.js";
import { beep } from "./cue.js";
import { clear, h } from "./dom.js";
import { LiveFeed } from "./feed.js";
import {
  caseTitle,
  LANGUAGES,
  label,
  language,
  onLanguageChange,
  setLanguage,
  t,
} from "./i18n.js";
import { CaseStore } from "./store.js";
import { CamerasView } from "./views/cameras.js";
import { CasesView } from "./views/cases.js";
import { LoginView } from "./views/login.js";
import { StatsView } from "./views/stats.js";
import { ZoneEditorView } from "./views/zones.js";

const root = document.getElementById("app");

const ROUTES = [
  { pattern: /^#\/cases(?:\/(\d+))?$/, name: "cases", permission: "cases.read", View: CasesView },
  {
    pattern: /^#\/cameras\/([a-z0-9][a-z0-9_-]{0,63})\/zones$/,
    name: "cameras",
    permission: "cameras.read",
    View: ZoneEditorView,
  },
  { pattern: /^#\/cameras$/, name: "cameras", permission: "cameras.read", View: CamerasView },
  { pattern: /^#\/stats$/, name: "stats", permission: "stats.read", View: StatsView },
];
const NAV = [
  { name: "cases", hash: "#/cases", permission: "cases.read", key: "nav.cases" },
  { name: "cameras", hash: "#/cameras", permission: "cameras.read", key: "nav.cameras" },
  { name: "stats", hash: "#/stats", permission: "stats.read", key: "nav.stats" },
];

class Console {
  constructor() {
    this.me = null;
    this.permissions = new Set();
    this.centres = new Map();
    this.children = new Map();
    this.feed = null;
    this.store = null;
    this.view = null;
    this.viewKey = null;
    this.escalated = []; // case ids escalated since the badge was last opened
    this.critical = null; // the case the critical banner shows
    onLanguageChange(() => this.rerender());
    onUnauthorized(() => this.logout(t("login.expired")));
    window.addEventListener("hashchange", () => this.route());
  }

  can(permission) {
    return this.permissions.has(permission);
  }

  /** Centre ids at and below ``id`` (the API's scope rule, for filtering live events). */
  subtree(id) {
    const found = new Set([id]);
    const stack = [id];
    while (stack.length) {
      for (const child of this.children.get(stack.pop()) || []) {
        if (!found.has(child)) {
          found.add(child);
          stack.push(child);
        }
      }
    }
    return found;
  }

  centreName(id) {
    const centre = this.centres.get(id);
    return centre ? centre.name : id === null || id === undefined ? "–" : `#${id}`;
  }

  async start() {
    if (!token()) return this.showLogin();
    try {
      this.me = await api("/auth/me");
    } catch (error) {
      setToken(null);
      return this.showLogin(error.status === 401 ? t("login.expired") : errorText(error));
    }
    this.permissions = new Set(this.me.permissions);
    try {
      const centres = await api("/centres");
      this.centres = new Map(centres.map((c) => [c.id, c]));
      this.children = new Map();
      for (const c of centres) {
        if (!this.children.has(c.parent_id)) this.children.set(c.parent_id, []);
        this.children.get(c.parent_id).push(c.id);
      }
    } catch {
      this.centres = new Map();
    }
    document.body.dataset.role = this.me.role;
    if (this.can("cases.read")) {
      this.store = new CaseStore(this);
      this.feed = new LiveFeed();
      this.feed.addEventListener("state", () => this.renderStatus());
      // The first hello: load the list (events after it arrive live). Later hellos follow
      // a replay of what was missed (?after=), so the list is already current — unless the
      // replay hit the API's cap, when only a reload is sure to be complete.
      this.feed.addEventListener("hello", (e) => {
        if (e.detail.first || e.detail.replayed >= 1000) this.store.reload();
      });
      this.feed.addEventListener("event", (e) => this.onFeedEvent(e.detail));
      this.feed.addEventListener("unauthorized", () => this.logout(t("login.expired")));
      this.feed.start();
    }
    this.renderShell();
    this.route();
  }

  showLogin(message) {
    this.teardown();
    document.body.dataset.view = "login";
    clear(root);
    this.view = new LoginView(this, message);
    this.view.mount(root);
  }

  async loggedIn(accessToken) {
    setToken(accessToken);
    await this.start();
  }

  logout(message) {
    setToken(null);
    this.teardown();
    history.replaceState(null, "", "#/cases");
    this.showLogin(message);
  }

  teardown() {
    if (this.view && this.view.unmount) this.view.unmount();
    this.view = null;
    this.viewKey = null;
    if (this.feed) this.feed.stop();
    this.feed = null;
    this.store = null;
    this.me = null;
    this.escalated = [];
    this.critical = null;
    delete document.body.dataset.role;
    delete document.body.dataset.feed;
  }

  onFeedEvent(event) {
    const result = this.store.apply(event);
    if (!result) return;
    const c = result.case;
    const raisedToCritical =
      c.severity === "critical" && (result.created || result.previous?.severity !== "critical");
    if (event.type === "alert" && raisedToCritical && !["closed", "dismissed"].includes(c.state)) {
      this.critical = c;
      beep();
      this.renderBanner();
    }
    if (event.type === "escalation") {
      this.escalated = [c.id, ...this.escalated.filter((id) => id !== c.id)];
      this.renderStatus();
    }
    this.updateTitle();
  }

  updateTitle() {
    const fresh = this.store ? this.store.fresh.size : 0;
    document.title = `${fresh ? `(${fresh}) ` : ""}${t("app.title")}`;
  }

  // -- shell ---------------------------------------------------------------------------
  renderShell() {
    clear(root);
    this.header = h("header", { class: "topbar" });
    this.banner = h("div", { class: "banner-slot" });
    this.main = h("main", { id: "view" });
    root.append(this.header, this.banner, this.main);
    this.renderHeader();
    this.renderBanner();
  }

  renderHeader() {
    if (!this.header) return;
    const current = ROUTES.find((r) => r.pattern.test(location.hash));
    const me = this.me;
    const centre = me.centre ? me.centre.path || me.centre.name : t("user.whole_org");
    clear(this.header).append(
      h("div", { class: "brand" }, h("span", { class: "logo" }, "◉"), t("app.title")),
      h(
        "nav",
        { "aria-label": "main" },
        NAV.filter((n) => this.can(n.permission)).map((n) =>
          h(
            "a",
            {
              href: n.hash,
              class: ["nav-link", current && current.name === n.name && "active"],
              dataset: { nav: n.name },
            },
            t(n.key),
          ),
        ),
      ),
      (this.statusSlot = h("div", { class: "status-slot" })),
      h(
        "div",
        { class: "user" },
        h("span", { class: "user-name", dataset: { testid: "user" } }, me.username),
        h("span", { class: "user-role" }, label("role", me.role)),
        h("span", { class: "user-centre", title: centre }, centre),
      ),
      h(
        "select",
        {
          class: "lang",
          "aria-label": "language",
          dataset: { testid: "language" },
          onchange: (e) => setLanguage(e.target.value),
        },
        LANGUAGES.map((lang) =>
          h("option", { value: lang, selected: lang === language() }, langName(lang)),
        ),
      ),
      h("button", { class: "ghost", onclick: () => this.logout() }, t("nav.logout")),
    );
    this.renderStatus();
  }

  renderStatus() {
    if (!this.statusSlot) return;
    clear(this.statusSlot);
    if (this.feed) {
      const state = this.feed.state;
      this.statusSlot.append(
        h(
          "span",
          { class: ["feed-state", state], dataset: { testid: "feed-state", state } },
          h("span", { class: "dot" }),
          t(`feed.${state}`),
        ),
      );
    }
    if (this.escalated.length) {
      this.statusSlot.append(
        h(
          "button",
          {
            class: "badge-button escalations",
            dataset: { testid: "escalations" },
            title: t("feed.escalations.title", { n: this.escalated.length }),
            onclick: () => {
              const newest = this.escalated[0];
              this.escalated = [];
              this.renderStatus();
              location.hash = `#/cases/${newest}`;
            },
          },
          "⇧ ",
          t("feed.escalations"),
          h("span", { class: "count" }, String(this.escalated.length)),
        ),
      );
    }
  }

  renderBanner() {
    if (!this.banner) return;
    clear(this.banner);
    const c = this.critical;
    if (!c) return;
    this.banner.append(
      h(
        "div",
        { class: "critical-banner", role: "alert", dataset: { testid: "critical-banner" } },
        h("strong", {}, t("cue.critical", { title: caseTitle(c) })),
        h(
          "span",
          {},
          [c.camera_name, c.community, t("cases.people", { n: c.people_count })]
            .filter(Boolean)
            .join(" · "),
        ),
        h(
          "button",
          {
            class: "primary",
            onclick: () => {
              this.critical = null;
              this.renderBanner();
              location.hash = `#/cases/${c.id}`;
            },
          },
          t("cue.open"),
        ),
        h(
          "button",
          {
            class: "ghost",
            onclick: () => {
              this.critical = null;
              this.renderBanner();
            },
          },
          t("cue.dismiss"),
        ),
      ),
    );
  }

  rerender() {
    if (!this.me) {
      if (this.view) this.view.render();
      return;
    }
    this.renderHeader();
    this.renderBanner();
    this.updateTitle();
    if (this.view) this.view.render();
  }

  // -- routing ---------------------------------------------------------------------------
  defaultHash() {
    const first = NAV.find((n) => this.can(n.permission));
    return first ? first.hash : "#/cameras";
  }

  route() {
    if (!this.me) return;
    const hash = location.hash || "";
    const route = ROUTES.find((r) => r.pattern.test(hash));
    if (!route || !this.can(route.permission)) {
      location.replace(this.defaultHash());
      return;
    }
    const params = hash.match(route.pattern).slice(1);
    const key = `${route.View.name}`;
    if (this.view && this.viewKey === key && this.view.update) {
      this.view.update(params); // same view, other case: keep the list and its scroll
    } else {
      if (this.view && this.view.unmount) this.view.unmount();
      clear(this.main);
      this.view = new route.View(this, params);
      this.viewKey = key;
      document.body.dataset.view = route.name;
      this.view.mount(this.main);
    }
    this.renderHeader();
    this.updateTitle();
  }
}

function langName(lang) {
  return { en: "English", "zh-CN": "中文" }[lang] || lang;
}

const app = new Console();
window.addEventListener("DOMContentLoaded", () => app.start());
