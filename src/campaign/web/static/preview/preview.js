// campaign preview: live reload, tabs, dark mode, iframe heights, the send-test form.
"use strict";
(function () {
  const body = document.body;
  const campaign = body.dataset.campaign;
  const generation = Number(body.dataset.generation);
  const live = document.getElementById("live");

  // Live reload. The server rebuilds first and announces after, so a reload finds the new
  // build ready. "hello" comes first on every (re)connection: a page rendered just before a
  // rebuild finished learns that it is stale.
  function reload() {
    sessionStorage.setItem("preview-scroll", JSON.stringify([location.pathname, window.scrollY]));
    location.reload();
  }
  const events = new EventSource("/events" + (campaign ? "?campaign=" + encodeURIComponent(campaign) : ""));
  events.addEventListener("hello", (e) => {
    live.classList.add("on");
    if (JSON.parse(e.data).generation !== generation) reload();
  });
  events.addEventListener("build", (e) => {
    const data = JSON.parse(e.data);
    if (!campaign || data.campaigns.includes(campaign)) reload();
  });
  events.onerror = () => live.classList.remove("on");

  // Tabs; the open one is kept in the address (#text), so it survives a reload.
  const tabs = document.querySelectorAll("[data-tab]");
  function show(name) {
    tabs.forEach((tab) => {
      const on = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", on);
      document.getElementById("tab-" + tab.dataset.tab).hidden = !on;
    });
  }
  tabs.forEach((tab) => tab.addEventListener("click", () => {
    history.replaceState(null, "", "#" + tab.dataset.tab);
    show(tab.dataset.tab);
  }));
  if (tabs.length && document.getElementById("tab-" + location.hash.slice(1))) show(location.hash.slice(1));

  // Each iframe as tall as its email, so the page scrolls instead of the frames; then the
  // scroll position from before a live reload comes back.
  const frames = Array.from(document.querySelectorAll(".frames iframe"));
  let pending = frames.length;
  function restoreScroll() {
    const saved = JSON.parse(sessionStorage.getItem("preview-scroll") || "null");
    sessionStorage.removeItem("preview-scroll");
    if (saved && saved[0] === location.pathname) window.scrollTo(0, saved[1]);
  }
  frames.forEach((frame) => frame.addEventListener("load", () => {
    const doc = frame.contentDocument;
    if (doc) frame.style.height = doc.documentElement.scrollHeight + "px";
    if (--pending === 0) restoreScroll();
  }));
  if (!frames.length) restoreScroll();

  // Dark mode: the server rewrites the email's prefers-color-scheme queries (?scheme=dark);
  // a cookie lets the next page load start in the same mode.
  const dark = document.getElementById("dark");
  if (dark) dark.addEventListener("change", () => {
    document.cookie = "preview_scheme=" + (dark.checked ? "dark" : "light") + "; path=/; SameSite=Strict";
    frames.forEach((frame) => {
      frame.src = frame.src.split("?")[0] + (dark.checked ? "?scheme=dark" : "");
    });
  });

  // Send a test without leaving the page (a reload must never post the form again).
  const form = document.getElementById("send-test");
  if (form) form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const result = document.getElementById("send-result");
    result.className = "";
    result.textContent = "Sending…";
    try {
      const reply = await fetch(form.action, { method: "POST", body: new FormData(form) });
      const data = await reply.json();
      result.textContent = data.message;
      result.className = data.ok ? "sent" : "failed";
    } catch (error) {
      result.textContent = "The preview server did not answer: " + error;
      result.className = "failed";
    }
  });
})();
