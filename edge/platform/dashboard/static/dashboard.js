// The dashboard's only script: live log tail (with pause) and live deploy steps.
// Pages are complete without it; this only keeps them moving.
"use strict";

(function () {
  var MAX_LINES = 2000;

  function isNewer(id, than) {
    var a = id.split("-").map(Number);
    var b = than.split("-").map(Number);
    return a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
  }

  function stamp(ts) {
    return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function logLine(record) {
    var li = el("li", "kind-" + record.kind + " level-" + record.level);
    li.dataset.id = record.id;
    li.append(el("time", "", stamp(record.ts)), " ");
    li.append(el("span", "env", record.environment), " ");
    li.append(el("span", "fn", record.function || "[" + record.kind + "]"), " ");
    li.append(el("span", "msg", record.message));
    return li;
  }

  function startLogs(list) {
    var lastId = list.dataset.lastId || "0-0";
    var paused = false;
    var held = [];
    var button = document.getElementById("pause");
    var state = document.getElementById("live-state");

    function show(records) {
      var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      records.forEach(function (r) { list.append(logLine(r)); });
      while (list.children.length > MAX_LINES) list.firstElementChild.remove();
      if (atBottom && records.length) list.lastElementChild.scrollIntoView({block: "end"});
    }

    function label() {
      state.textContent = paused
        ? "Paused: " + held.length + " new line(s) held"
        : "Live: new lines appear as they are written";
      button.textContent = paused ? "Resume" : "Pause";
      button.setAttribute("aria-pressed", paused ? "true" : "false");
    }

    button.hidden = false;
    button.addEventListener("click", function () {
      paused = !paused;
      if (!paused) { show(held); held = []; }
      label();
    });
    label();

    var source = new EventSource(list.dataset.stream);
    source.onmessage = function (event) {
      var record = JSON.parse(event.data);
      if (!isNewer(record.id, lastId)) return;
      lastId = record.id;
      if (paused) { held.push(record); label(); } else { show([record]); }
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function deploySection(box, record) {
    var found = box.querySelector('section[data-deploy="' + CSS.escape(record.deploy) + '"]');
    if (found) return found;
    var none = document.getElementById("no-deploys");
    if (none) none.remove();
    var section = el("section", "deploy state-running");
    section.dataset.deploy = record.deploy;
    var title = el("h2");
    title.append(el("span", "env", record.environment), " ", el("time", "", stamp(record.ts)), " ");
    title.append(el("span", "badge badge-running", "running"));
    section.append(title, el("ol", "steps"));
    box.prepend(section);
    return section;
  }

  function startDeploys(box) {
    var source = new EventSource(box.dataset.stream);
    source.onmessage = function (event) {
      var record = JSON.parse(event.data);
      var section = deploySection(box, record);
      section.querySelector(".steps").append(el("li", "", record.line));
      var badge = section.querySelector(".badge");
      badge.textContent = record.state;
      badge.className = "badge badge-" + record.state;
      section.className = "deploy state-" + record.state;
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  var log = document.getElementById("log");
  if (log && log.dataset.stream) startLogs(log);
  var deploys = document.getElementById("deploys");
  if (deploys && deploys.dataset.stream) startDeploys(deploys);
})();
