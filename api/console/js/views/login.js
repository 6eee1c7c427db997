// The login form (OAuth2 password flow). The click also unlocks audio for the alert beep.
import { errorText, login } from "../api.js";
import { unlock } from "../cue.js";
import { clear, h } from "../dom.js";
import { LANGUAGES, language, setLanguage, t } from "../i18n.js";

export class LoginView {
  constructor(app, message) {
    this.app = app;
    this.message = message || "";
    this.busy = false;
    this.username = "";
  }

  mount(container) {
    this.container = container;
    this.render();
  }

  render() {
    const form = h(
      "form",
      { class: "login-card", onsubmit: (e) => this.submit(e) },
      h("div", { class: "brand big" }, h("span", { class: "logo" }, "◉"), t("app.title")),
      h("h1", {}, t("login.title")),
      h(
        "label",
        {},
        t("login.username"),
        h("input", {
          name: "username",
          autocomplete: "username",
          required: true,
          value: this.username,
          autofocus: true,
        }),
      ),
      h(
        "label",
        {},
        t("login.password"),
        h("input", {
          name: "password",
          type: "password",
          autocomplete: "current-password",
          required: true,
        }),
      ),
      h("button", { class: "primary", type: "submit", disabled: this.busy }, t("login.submit")),
      h("p", { class: "error", role: "alert", dataset: { testid: "login-error" } }, this.message),
      h(
        "div",
        { class: "login-lang" },
        LANGUAGES.map((lang) =>
          h(
            "button",
            {
              type: "button",
              class: ["link", lang === language() && "active"],
              dataset: { lang },
              onclick: () => setLanguage(lang),
            },
            { en: "English", "zh-CN": "中文" }[lang],
          ),
        ),
      ),
    );
    clear(this.container).append(h("div", { class: "login-page" }, form));
  }

  async submit(event) {
    event.preventDefault();
    unlock();
    const data = new FormData(event.target);
    this.username = String(data.get("username") || "");
    this.busy = true;
    try {
      const answer = await login(this.username, String(data.get("password") || ""));
      await this.app.loggedIn(answer.access_token);
    } catch (error) {
      this.busy = false;
      this.message = t("login.failed", { message: errorText(error) });
      this.render();
    }
  }
}
