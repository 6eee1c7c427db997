// The dispatch API, same origin. The token lives in sessionStorage (gone when the tab closes)
// and travels in the Authorization header — never in a URL, except the live feed's
// WebSocket, where browsers cannot set headers and the API expects ?token=.
import { t } from "./i18n.js";

const TOKEN_KEY = "sharpeyes.token";
const unauthorizedListeners = new Set();

export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Called when the API answers 401 to a logged-in request (expired or revoked token). */
export function onUnauthorized(listener) {
  unauthorizedListeners.add(listener);
}

/** The API's own words: 4xx bodies say what is wrong and how to fix it. */
export function describe(status, body) {
  if (body && typeof body.message === "string") return body.message; // 422: one line each
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((p) => `${(p.loc || []).join(".")}: ${p.msg}`).join("; ");
  }
  return `HTTP ${status}`;
}

/**
 * api("/cases", {query: {state: ["reported"]}}) → parsed JSON.
 * Options: method, json (a body sent as JSON), body + contentType (raw), query, blob (→ Blob).
 */
export async function api(path, options = {}) {
  const { method = "GET", json, query, blob = false, contentType } = options;
  let { body } = options;
  const headers = {};
  const current = token();
  if (current) headers.Authorization = `Bearer ${current}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (contentType) {
    headers["Content-Type"] = contentType;
  }
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      for (const item of [value].flat()) {
        if (item !== undefined && item !== null && item !== "") params.append(name, item);
      }
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body });
  } catch (error) {
    throw new ApiError(0, null, t("error.network", { message: error.message }));
  }
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (response.status === 401 && current) {
      for (const listener of unauthorizedListeners) listener();
    }
    throw new ApiError(response.status, data, describe(response.status, data));
  }
  if (blob) return response.blob();
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** Log in with the OAuth2 password flow; returns the token response. */
export async function login(username, password) {
  const form = new URLSearchParams({ username, password });
  return api("/auth/token", {
    method: "POST",
    body: form.toString(),
    contentType: "application/x-www-form-urlencoded",
  });
}

/**
 * An image that needs the bearer token (snapshots, thumbnails, photos) as an object URL.
 * Returns {url, source, takenAt} or throws ApiError; revoke the url when done.
 */
export async function authorisedImage(path, query) {
  const current = token();
  let url = path;
  if (query) url += `?${new URLSearchParams(query)}`;
  let response;
  try {
    response = await fetch(url, { headers: current ? { Authorization: `Bearer ${current}` } : {} });
  } catch (error) {
    throw new ApiError(0, null, t("error.network", { message: error.message }));
  }
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    throw new ApiError(response.status, data, describe(response.status, data));
  }
  const blob = await response.blob();
  return {
    url: URL.createObjectURL(blob),
    source: response.headers.get("x-thumbnail-source"),
    takenAt: response.headers.get("x-thumbnail-taken-at"),
  };
}

/** A friendly line for an error, with the API's own message. */
export function errorText(error) {
  if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
  if (error.status === 404) return `${t("error.not_found")} (${error.message})`;
  if (error.status === 403) return t("error.forbidden", { message: error.message });
  if (error.status === 0) return error.message;
  return t("error.generic", { status: error.status, message: error.message });
}
