// AOC web UI, entry module: signs in when needed, then shows the view the URL names and follows
// every state change (links, back button, filters) to the views. No framework, no build step, no
// CDN: native ES modules under the CSP's `script-src 'self'`. Each concern lives in ./modules.

import { loadAlertsBadge, showAlerts, wireAlerts } from "./modules/alerts.js";
import { setUpAuth, signIn, signOut } from "./modules/api.js";
import { setUpAsk, wireAsk } from "./modules/ask.js";
import { closeDetail, wireDetail } from "./modules/detail.js";
import { $ } from "./modules/dom.js";
import { showEvents, wireEvents } from "./modules/events.js";
import { setUpExplain } from "./modules/explain.js";
import { showOverview, wireOverview } from "./modules/overview.js";
import { showSources } from "./modules/sources.js";
import { current, navigate, subscribe, VIEWS } from "./modules/state.js";
import { setZone } from "./modules/time.js";

const SHOW = { overview: showOverview, events: showEvents, alerts: showAlerts, sources: showSources };

function render(state, previous) {
  setZone(state.tz);
  for (const button of document.querySelectorAll("[data-tz]")) {
    button.setAttribute("aria-pressed", String(button.dataset.tz === state.tz));
  }
  for (const tab of document.querySelectorAll("#tabs [data-view]")) {
    if (tab.dataset.view === state.view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  for (const name of VIEWS) $("view-" + name).hidden = name !== state.view;
  if (state.view !== "events" && !$("detail").hidden) closeDetail();
  const changedView = previous && previous.view !== state.view;
  // The time zone changes every time shown: redraw the view from scratch.
  const zoneChanged = previous && previous.tz !== state.tz;
  SHOW[state.view](state, changedView || zoneChanged ? null : previous);
  if (changedView) {
    document.title = `${$("tab-" + state.view).firstChild.textContent.trim()} · AOC`;
  }
}

async function loadHealth() {
  try {
    const response = await fetch("/health");
    const body = await response.json();
    $("health").textContent = body.status;
    $("health").className = "pill " + body.status;
  } catch {
    $("health").textContent = "unreachable";
    $("health").className = "pill down";
  }
}

function wire() {
  for (const tab of document.querySelectorAll("#tabs [data-view]")) {
    tab.addEventListener("click", (e) => {
      if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
      e.preventDefault();
      navigate({ view: tab.dataset.view, event: "" });
    });
  }
  for (const button of document.querySelectorAll("[data-tz]")) {
    button.addEventListener("click", () => navigate({ tz: button.dataset.tz }, { replace: true }));
  }
  $("sign-in").addEventListener("click", signIn);
  $("sign-in-main").addEventListener("click", signIn);
  $("sign-out").addEventListener("click", signOut);
  wireEvents();
  wireDetail();
  wireAlerts();
  wireOverview();
  wireAsk();
}

function showSignedIn(user) {
  const signedIn = user !== null;
  $("sign-in").hidden = user !== null;
  $("sign-out").hidden = !user;
  $("user").hidden = !user;
  $("user").textContent = user || "";
  $("signed-out").hidden = signedIn;
  $("content").hidden = !signedIn;
  $("tabs").hidden = !signedIn;
}

async function start() {
  wire();
  loadHealth();
  let user;
  try {
    user = await setUpAuth();
  } catch (error) {
    $("signed-out").hidden = false;
    $("signed-out").querySelector("p").textContent = "Could not set up sign-in: " + error.message;
    return;
  }
  showSignedIn(user);
  if (user === null) return;
  // A narrow window starts with the field list folded away.
  if (window.matchMedia("(max-width: 900px)").matches) $("facets-panel").open = false;
  setUpAsk();
  setUpExplain();
  loadAlertsBadge();
  subscribe(render);
  render(current(), null);
}

start();
