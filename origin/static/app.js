// MCPbox admin UI: progressive enhancement only. Every page works without this file.
// 1. Times: the server writes "3 minutes ago" in <time datetime> with the exact UTC time as its
//    title; here the title becomes the exact time in the browser's own time zone.
// 2. Live activity: rows arrive from /ui/activity/stream (server-sent events).
// 3. Single-key shortcuts on the review page (each element with data-key gets the focus on its
//    key). Off until the person turns them on (WCAG 2.1.4); the choice is kept in localStorage,
//    and the hint lists exactly the keys of the page's data-key elements.
(function () {
  "use strict";

  function localTitle(time) {
    var at = new Date(time.getAttribute("datetime"));
    if (isNaN(at.getTime())) return;
    try {
      time.title = at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "long" });
    } catch (e) {
      time.title = at.toString();
    }
  }

  function localTimes() {
    document.querySelectorAll("time[datetime]").forEach(localTitle);
  }

  function cell(content) {
    var td = document.createElement("td");
    if (typeof content === "string") td.textContent = content;
    else td.appendChild(content);
    return td;
  }

  // The badge of a level as the server renders it (one mapping, in the page's <template>).
  function levelBadge(level) {
    var template = document.getElementById("level-badges");
    var found = null;
    if (template) {
      template.content.querySelectorAll("[data-level]").forEach(function (holder) {
        if (holder.getAttribute("data-level") === level) found = holder.firstElementChild;
      });
    }
    if (found) return found.cloneNode(true);
    var span = document.createElement("span");
    span.className = "badge plain";
    span.textContent = level;
    return span;
  }

  function liveActivity() {
    var status = document.getElementById("live-status");
    var table = document.getElementById("activity");
    if (!status || !table || !window.EventSource) return;
    var body = table.tBodies[0];
    var source = new EventSource(status.getAttribute("data-stream"));
    source.addEventListener("open", function () {
      status.textContent = "Live: new events appear at the top.";
    });
    source.addEventListener("error", function () {
      status.textContent = "Live updates interrupted; retrying…";
    });
    source.addEventListener("activity", function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      var row = document.createElement("tr");
      row.className = "fresh";
      var time = document.createElement("time");
      time.setAttribute("datetime", event.created_at);
      time.textContent = "just now";
      localTitle(time);
      var action = document.createElement("code");
      action.textContent = event.action;
      row.appendChild(cell(time));
      row.appendChild(cell(levelBadge(event.level)));
      row.appendChild(cell(event.actor));
      row.appendChild(cell(action));
      var message = cell(event.message);
      message.className = "text";
      row.appendChild(message);
      body.insertBefore(row, body.firstChild);
    });
  }

  var SHORTCUTS = "mcpbox.shortcuts";

  function stored() {
    try { return window.localStorage.getItem(SHORTCUTS) === "on"; } catch (e) { return false; }
  }

  function store(on) {
    try { window.localStorage.setItem(SHORTCUTS, on ? "on" : "off"); } catch (e) { /* private mode */ }
  }

  // Keys typed into a field are text, never shortcuts (a checkbox or a button takes no text).
  function typing(t) {
    if (!t || !t.tagName) return false;
    if (t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable) return true;
    return t.tagName === "INPUT" && !/^(checkbox|radio|button|submit|reset)$/.test(t.type);
  }

  function reviewShortcuts() {
    var box = document.getElementById("shortcuts");
    var toggle = document.getElementById("shortcuts-on");
    var list = document.getElementById("shortcut-keys");
    var targets = document.querySelectorAll("[data-key]");
    if (!box || !toggle || !list || targets.length === 0) return;
    var byKey = {};
    list.appendChild(document.createTextNode("(when on, a key moves the focus: "));
    targets.forEach(function (target, i) {
      var key = target.getAttribute("data-key");
      byKey[key] = target;
      var kbd = document.createElement("kbd");
      kbd.textContent = key;
      if (i > 0) list.appendChild(document.createTextNode(", "));
      list.appendChild(kbd);
      list.appendChild(document.createTextNode(" " + (target.getAttribute("data-key-name") || key)));
    });
    list.appendChild(document.createTextNode(")"));
    toggle.checked = stored();
    toggle.addEventListener("change", function () { store(toggle.checked); });
    box.hidden = false;
    document.addEventListener("keydown", function (e) {
      if (!toggle.checked || e.altKey || e.ctrlKey || e.metaKey) return;
      if (typing(e.target)) return;
      var target = Object.prototype.hasOwnProperty.call(byKey, e.key) ? byKey[e.key] : null;
      if (target) { target.focus(); e.preventDefault(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    liveActivity();
    reviewShortcuts();
  });
})();
