// MCPbox admin UI: progressive enhancement only. Every page works without this file.
// 1. Live activity: rows arrive from /ui/activity/stream (server-sent events).
// 2. Keyboard shortcuts on the review page: a = Approve, r = reason, d = diff.
(function () {
  "use strict";

  function text(tag, value, className) {
    var cell = document.createElement(tag);
    if (className) {
      var inner = document.createElement(className === "code" ? "code" : "span");
      if (className !== "code") inner.className = "badge " + value;
      inner.textContent = value;
      cell.appendChild(inner);
    } else {
      cell.textContent = value;
    }
    return cell;
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
      row.appendChild(text("td", event.created_at));
      row.appendChild(text("td", event.level, "badge"));
      row.appendChild(text("td", event.actor));
      row.appendChild(text("td", event.action, "code"));
      row.appendChild(text("td", event.message));
      body.insertBefore(row, body.firstChild);
    });
  }

  function reviewShortcuts() {
    var approve = document.querySelector("[data-key='a']");
    var reason = document.getElementById("reason");
    var diff = document.getElementById("diff");
    if (!approve && !reason) return;
    document.addEventListener("keydown", function (e) {
      var t = e.target;
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
      if (e.key === "a" && approve) { approve.focus(); e.preventDefault(); }
      else if (e.key === "r" && reason) { reason.focus(); e.preventDefault(); }
      else if (e.key === "d" && diff) { diff.focus(); e.preventDefault(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    liveActivity();
    reviewShortcuts();
  });
})();
