// tmctl console: live figures by server-sent events (one stream per page; one
// shared poller on the server). Plain JavaScript, no build step, no CDN.
(function () {
  "use strict";
  var body = document.body;
  var page = body.getAttribute("data-page");
  var taskId = body.getAttribute("data-task-id");
  var live = document.getElementById("live");
  if (!window.EventSource || ["overview", "tasks", "task"].indexOf(page) < 0) { return; }

  var url = "/events" + (taskId ? "?task=" + encodeURIComponent(taskId) : "");
  var source = new EventSource(url);
  source.onopen = function () { live.setAttribute("data-state", "on"); };
  source.onerror = function () { live.setAttribute("data-state", "error"); };
  source.addEventListener("problem", function (e) {
    live.setAttribute("data-state", "error");
    live.title = JSON.parse(e.data).message;
  });

  source.addEventListener("overview", function (e) {
    live.setAttribute("data-state", "on");
    var figures = JSON.parse(e.data);
    Object.keys(figures).forEach(function (name) {
      var value = figures[name] === null ? "-" : String(figures[name]);
      document.querySelectorAll('[data-figure="' + name + '"]').forEach(function (el) {
        if (el.textContent !== value) {
          el.textContent = value;
          var box = el.closest(".box");
          if (box) { box.classList.add("changed"); setTimeout(function () { box.classList.remove("changed"); }, 600); }
        }
      });
    });
    var dlq = document.getElementById("box-dlq");
    if (dlq && figures["dlq.total"] !== undefined) {
      var alert = Number(figures["dlq.total"]) > 0;
      dlq.classList.toggle("alert", alert);
      dlq.setAttribute("data-alert", alert ? "true" : "false");
    }
  });

  source.addEventListener("tasks", function (e) {
    var changed = JSON.parse(e.data);
    Object.keys(changed).forEach(function (id) {
      var status = changed[id];
      var shown = document.querySelectorAll('[data-task-status="' + CSS.escape(id) + '"]');
      shown.forEach(function (el) {
        if (el.textContent !== status) {
          el.textContent = status;
          el.className = "status s-" + status;
          var row = el.closest("tr");
          if (row) { row.classList.add("flash"); setTimeout(function () { row.classList.remove("flash"); }, 800); }
        }
      });
      if (page === "task" && id === taskId && shown.length && status !== body.getAttribute("data-shown-status")) {
        // the page's other parts (history, path, actions) follow the new status: re-read them once it settles
        body.setAttribute("data-shown-status", status);
        clearTimeout(window.__tmctlReload);
        window.__tmctlReload = setTimeout(function () { location.reload(); }, 700);
      }
      if (page === "tasks" && !shown.length && body.getAttribute("data-first-page") === "true") {
        var filter = body.getAttribute("data-status-filter");
        if (!filter || filter === status) { addRow(id, status); }
      }
    });
  });

  function addRow(id, status) {
    var tbody = document.querySelector("#task-table tbody");
    if (!tbody) { return; }
    var empty = tbody.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    var tr = document.createElement("tr");
    tr.setAttribute("data-task-id", id);
    tr.setAttribute("data-testid", "task-row-" + id);
    tr.className = "flash";
    var td = document.createElement("td");
    var a = document.createElement("a");
    a.href = "/tasks/" + encodeURIComponent(id);
    a.className = "mono";
    a.textContent = id;
    td.appendChild(a);
    tr.appendChild(td);
    var td2 = document.createElement("td");
    var span = document.createElement("span");
    span.className = "status s-" + status;
    span.setAttribute("data-task-status", id);
    span.textContent = status;
    td2.appendChild(span);
    tr.appendChild(td2);
    for (var i = 0; i < 4; i++) { tr.appendChild(document.createElement("td")); }
    tbody.insertBefore(tr, tbody.firstChild);
  }
})();
