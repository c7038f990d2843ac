/* Replaybook UI script: relative times, the start form, schedule buttons, and the
   execution page's live view (Server-Sent Events from /api/executions/ID/stream).
   Pages are rendered by the server; this only updates them. Text from the server
   is put in with textContent, never parsed as markup, except panel fragments,
   which the server rendered (and escaped) itself. */
(function () {
  "use strict";

  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var skew = 0; // server clock minus ours, from the execution page's data

  function now() { return Date.now() + skew; }
  function ms(iso) { return iso ? Date.parse(iso) : NaN; }

  function agoText(iso) {
    var s = (now() - ms(iso)) / 1000;
    if (isNaN(s)) return "";
    var future = s < 0;
    s = Math.abs(s);
    var t = s < 45 ? Math.floor(s) + " s" : s < 3600 ? Math.round(s / 60) + " min" :
      s < 86400 ? Math.round(s / 3600) + " h" : Math.round(s / 86400) + " d";
    return future ? "in " + t : t + " ago";
  }

  function durationText(seconds) {
    if (seconds == null || isNaN(seconds)) return "—";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.floor(seconds % 60) + " s";
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  }

  function refreshTimes() {
    $$("[data-ago]").forEach(function (el) { el.textContent = agoText(el.getAttribute("data-ago")); });
    $$("[data-since]").forEach(function (el) {
      el.textContent = durationText((now() - ms(el.getAttribute("data-since"))) / 1000);
    });
  }

  /* A request body as JSON text; `raw` maps keys to JSON text put in as it is (a
     payload as typed: re-serialising it would turn 12345678901234567890 into
     12345678901234567000 and 1e400 into null, where the server should judge it). */
  function jsonBody(fields, raw) {
    var parts = [];
    Object.keys(fields).forEach(function (k) {
      if (fields[k] !== undefined) parts.push(JSON.stringify(k) + ":" + JSON.stringify(fields[k]));
    });
    Object.keys(raw || {}).forEach(function (k) { parts.push(JSON.stringify(k) + ":" + raw[k]); });
    return "{" + parts.join(",") + "}";
  }

  function api(method, url, body) {
    var init = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    return fetch(url, init).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!r.ok) {
          var msg = data && data.detail ? data.detail : r.status + " " + r.statusText;
          if (data && data.errors) msg += ": " + data.errors.map(function (e) { return e.message; }).join("; ");
          if (typeof msg !== "string") msg = JSON.stringify(msg);
          var err = new Error(msg);
          err.status = r.status;
          throw err;
        }
        return data;
      });
    });
  }

  function showError(el, message) {
    if (!el) return;
    el.textContent = message || "";
    el.hidden = !message;
  }

  function badge(status) {
    var b = document.createElement("span");
    b.className = "badge st-" + status;
    b.setAttribute("data-status", status);
    b.textContent = status === "pending" ? "not reached" : status; // as the graph's legend says
    return b;
  }

  /* -- generic page behaviour ----------------------------------------------------- */

  function initCommon() {
    $$("select[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () {
        var form = s.form;
        $$("input[name=offset]", form).forEach(function (i) { i.remove(); });
        form.submit();
      });
    });
    $$("select[data-nav]").forEach(function (s) {
      s.addEventListener("change", function () { window.location.href = s.value; });
    });
    $$("pre[data-lines]").forEach(function (pre) {
      var lines = pre.textContent.replace(/\n$/, "").split("\n");
      pre.textContent = "";
      lines.forEach(function (line, i) {
        var n = document.createElement("span");
        n.className = "ln";
        n.textContent = String(i + 1);
        pre.appendChild(n);
        pre.appendChild(document.createTextNode(line + "\n"));
      });
    });
    refreshTimes();
    setInterval(refreshTimes, 10000);
  }

  /* -- graphs: fit a wide drawing to its box, or centre it ------------------------------ */

  var FIT_WHEN_WIDER = 1.5; // fitted at first when the drawing is this much wider than its box

  function initGraphFit() {
    $$("[data-fit-for]").forEach(function (btn) {
      var wrap = document.getElementById(btn.getAttribute("data-fit-for"));
      var svg = wrap && $("svg.graph", wrap);
      if (!svg) return;
      var drawn = Number(svg.getAttribute("width"));
      function set(fit) {
        wrap.classList.toggle("fit", fit);
        btn.setAttribute("aria-pressed", fit ? "true" : "false");
        btn.textContent = fit ? "Fitted" : "Fit";
        btn.title = fit ? "Back to full size" : "Scale the drawing to the box's width";
        if (!fit) wrap.scrollLeft = Math.max(0, (wrap.scrollWidth - wrap.clientWidth) / 2);
      }
      if (!(drawn > wrap.clientWidth)) return; // it fits already: no button
      btn.hidden = false;
      btn.addEventListener("click", function () { set(!wrap.classList.contains("fit")); });
      set(drawn > wrap.clientWidth * FIT_WHEN_WIDER);
    });
  }

  /* -- catalog: start an execution -------------------------------------------------- */

  function parsePayload(text) {
    var value;
    try {
      value = JSON.parse(text.trim() === "" ? "{}" : text);
    } catch (e) {
      return { error: "Payload is not valid JSON: " + e.message };
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return { error: "Payload must be a JSON object, like {\"key\": 1}." };
    }
    // Sent as typed: JSON.parse only checks it (see jsonBody).
    return { value: value, text: text.trim() === "" ? "{}" : text };
  }

  function initStartForm() {
    var form = $("#start-form");
    if (!form) return;
    var area = $("#payload", form);
    var error = $("#payload-error", form);
    var button = $("#start-button", form);
    area.addEventListener("input", function () {
      if (!error.hidden && !parsePayload(area.value).error) {
        showError(error, "");
        area.classList.remove("invalid");
      }
    });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var parsed = parsePayload(area.value);
      if (parsed.error) {
        showError(error, parsed.error);
        area.classList.add("invalid");
        area.focus();
        return;
      }
      button.disabled = true;
      api("POST", "/api/executions", jsonBody({
        path: form.getAttribute("data-path"),
        version: Number(form.getAttribute("data-version"))
      }, { payload: parsed.text })).then(function (out) {
        window.location.href = "/ui/executions/" + encodeURIComponent(out.execution_id);
      }).catch(function (e) {
        button.disabled = false;
        showError(error, "Could not start: " + e.message);
      });
    });
  }

  /* -- schedules ----------------------------------------------------------------------- */

  function initScheduleForm() {
    var form = $("#schedule-form");
    if (!form) return;
    var error = $("#schedule-error", form);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var parsed = parsePayload($("#schedule-payload", form).value);
      if (parsed.error) {
        showError(error, parsed.error);
        return;
      }
      var body = {
        playbook: form.getAttribute("data-path"),
        cron: $("#schedule-cron", form).value.trim(),
        timezone: $("#schedule-tz", form).value.trim() || "UTC",
        catch_up: $("#schedule-catch-up", form).value
      };
      if ($("#schedule-pin", form).checked) body.version = Number(form.getAttribute("data-version"));
      $("#schedule-button", form).disabled = true;
      api("POST", "/api/schedules", jsonBody(body, { payload: parsed.text })).then(function () {
        window.location.href = "/ui/schedules";
      }).catch(function (e) {  // a bad cron or time zone: the server says which
        $("#schedule-button", form).disabled = false;
        showError(error, "Could not add: " + e.message);
      });
    });
  }

  function initSchedules() {
    $$("[data-schedule-action]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var action = btn.getAttribute("data-schedule-action");
        var id = btn.getAttribute("data-id");
        if (action === "delete" && btn.getAttribute("data-armed") !== "1") {
          btn.setAttribute("data-armed", "1");
          btn.textContent = "Confirm delete";
          return;
        }
        btn.disabled = true;
        var url = "/api/schedules/" + encodeURIComponent(id) + (action === "delete" ? "" : "/" + action);
        api(action === "delete" ? "DELETE" : "POST", url).then(function () {
          window.location.reload();
        }).catch(function (e) {
          btn.disabled = false;
          showError($("#action-error"), e.message);
        });
      });
    });
  }

  /* -- executions list: running rows follow their executions ---------------------------- */

  var LIST_POLL_MS = 3000;
  var LIST_PARALLEL = 4; // requests in flight at once

  function initExecutionsList() {
    var table = $("#executions-table");
    if (!table) return;
    var running = $$("tr[data-execution]", table).filter(function (r) {
      return $(".cell-status .badge", r).getAttribute("data-status") === "running";
    });
    window.replaybookListPolling = running.length > 0; // for tests and the console
    if (!running.length) return;

    function update(row, out) {
      if (!out || !out.status || out.status === "running") return true;
      var cell = $(".cell-status", row);
      cell.textContent = "";
      cell.appendChild(badge(out.status));
      var dur = $(".cell-duration", row);
      dur.textContent = durationText((ms(out.updated_at) - ms(out.created_at || row.getAttribute("data-created"))) / 1000);
      row.setAttribute("data-finished", "1");
      return false; // no longer followed
    }

    function round() {
      var queue = running.slice();
      var still = [];
      var active = 0;
      return new Promise(function (done) {
        function next() {
          if (!queue.length && !active) { done(still); return; }
          while (active < LIST_PARALLEL && queue.length) {
            var row = queue.shift();
            active++;
            (function (row) {
              api("GET", "/api/executions/" + encodeURIComponent(row.getAttribute("data-execution")))
                .then(function (out) { if (update(row, out)) still.push(row); },
                      function (e) { if (e.status !== 404) still.push(row); })  // away: ask again later
                .then(function () { active--; next(); });
            })(row);
          }
        }
        next();
      });
    }

    function schedule() {
      setTimeout(function () {
        round().then(function (still) {
          running = still;
          window.replaybookListPolling = running.length > 0;
          if (running.length) schedule(); // stops once none is running
        });
      }, LIST_POLL_MS);
    }
    schedule();
  }

  /* -- the execution page ------------------------------------------------------------- */

  var TERMINAL = { completed: 1, failed: 1, cancelled: 1 };
  var OUTCOME = { "step.completed": "completed", "step.failed": "failed", "step.retrying": "retrying" };

  function ExecutionPage(data) {
    this.id = data.execution_id;
    this.status = data.status;
    this.lastSeq = data.last_seq;
    this.startedAt = data.started_at;
    this.endedAt = data.ended_at;
    this.steps = data.steps;
    this.order = data.order;
    this.attempts = {};
    this.scheduled = {};
    this.items = {};
    this.selected = null;
    this.source = null;
    this.dirty = false;
    this.panelTimer = null;
    var self = this;
    data.attempts.forEach(function (a) { self.attempts[a.step + "|" + a.visit + "|" + a.attempt] = a; });
    this.nodes = {};
    $$("#graph .node").forEach(function (n) { self.nodes[n.getAttribute("data-step")] = n; });
    this.rows = {};
    $$("#steps-table tr[data-step]").forEach(function (r) { self.rows[r.getAttribute("data-step")] = r; });
  }

  ExecutionPage.prototype.start = function () {
    var self = this;
    Object.keys(this.nodes).forEach(function (name) {
      var node = self.nodes[name];
      node.addEventListener("click", function () { self.select(name); });
      node.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); self.select(name); } });
    });
    Object.keys(this.rows).forEach(function (name) {
      self.rows[name].addEventListener("click", function () { self.select(name); });
    });
    $("#panel").addEventListener("click", function (e) {
      if (e.target.closest && e.target.closest("[data-close-panel]")) self.select(null);
    });
    $("#cancel-button").addEventListener("click", function () { self.act("cancel"); });
    $("#resume-button").addEventListener("click", function () { self.act("resume"); });
    var m = /step=([^&]+)/.exec(window.location.hash);
    if (m) this.select(decodeURIComponent(m[1]));
    this.renderTimeline();
    this.setStatus(this.status);
    if (this.status === "running") this.connect();
    setInterval(function () {
      if (self.status === "running") { self.renderTimeline(); self.renderDuration(); }
    }, 1000);
  };

  ExecutionPage.prototype.connect = function () {
    var self = this;
    if (this.source) this.source.close();
    var es = new EventSource("/api/executions/" + encodeURIComponent(this.id) + "/stream?after=" + this.lastSeq);
    this.source = es;
    if (!this.reconnecting) this.setLive("connecting");
    es.onopen = function () { self.reconnecting = false; self.setLive("live"); };
    es.addEventListener("event", function (m) { self.apply(JSON.parse(m.data)); });
    es.addEventListener("end", function (m) {
      es.close();
      self.source = null;
      self.reconnecting = false;
      self.setLive(null);
      self.setStatus(JSON.parse(m.data).status);
      self.refreshPanel();
    });
    es.onerror = function () {
      // The browser would reconnect from the first event again; reconnect from ours.
      es.close();
      self.source = null;
      if (self.status === "running") {
        self.reconnecting = true;
        self.setLive("reconnecting");
        setTimeout(function () { if (!self.source && self.status === "running") self.connect(); }, 1500);
      } else {
        self.setLive(null);
      }
    };
  };

  /* The stream's state by the title: live, connecting, reconnecting (the server is
     away or restarting: the page keeps what it has and catches up when it is back),
     or nothing once the execution has finished. */
  ExecutionPage.prototype.setLive = function (state) {
    var el = $("#live-indicator");
    el.hidden = !state;
    if (!state) return;
    el.setAttribute("data-state", state);
    el.title = state === "reconnecting" ? "Lost the server's event stream; trying again" : "";
    $(".live-text", el).textContent = state === "reconnecting" ? "reconnecting…" : state === "connecting" ? "connecting…" : "live";
  };

  ExecutionPage.prototype.attempt = function (e) {
    var key = e.step + "|" + (e.visit || 1) + "|" + (e.attempt || 1);
    var a = this.attempts[key];
    if (!a) {
      a = this.attempts[key] = {
        step: e.step, visit: e.visit || 1, attempt: e.attempt || 1,
        start: this.scheduled[e.step + "|" + (e.visit || 1)] || e.at, end: null, status: "running"
      };
    }
    return a;
  };

  var EVENTS_PAGE = 10000; // what the Events link's ?limit= gets at once

  ExecutionPage.prototype.renderEventCount = function () {
    var n = this.lastSeq;
    var count = $("#event-count");
    if (count) count.textContent = n.toLocaleString("en-US");
    var more = $("#events-more");
    if (more) {
      more.hidden = n <= EVENTS_PAGE;
      more.firstChild.textContent = "the first 10,000 of " + n.toLocaleString("en-US") + "; more with ";
    }
  };

  ExecutionPage.prototype.apply = function (e) {
    if (e.seq <= this.lastSeq) return;
    this.lastSeq = e.seq;
    this.eventsDirty = true;
    var t = e.type, d = e.data || {}, step = e.step;
    if (t === "execution.completed" || t === "execution.failed" || t === "execution.cancelled") {
      this.endedAt = e.at;
      this.setStatus(t.split(".")[1]);
      var self = this;
      Object.keys(this.attempts).forEach(function (k) {
        var a = self.attempts[k];
        if (!a.end) { a.end = e.at; a.status = "cancelled"; }
      });
    } else if (t === "execution.resumed") {
      this.endedAt = null;
      this.setStatus("running");
    }
    if (step && this.steps[step]) this.applyStep(this.steps[step], e, t, d);
    this.changed(step);
  };

  ExecutionPage.prototype.applyStep = function (s, e, t, d) {
    var step = e.step;
    if (e.index !== undefined && e.index !== null) {
      if ((t === "step.completed" || t === "step.failed") && s.items) {
        // Counted as they come (the page was rendered with the counts so far); an
        // item seen twice here (a resumed one) counts once.
        var outcomes = this.items[step] || (this.items[step] = {});
        var before = outcomes[e.index];
        var now = t === "step.failed" ? "failed" : "completed";
        outcomes[e.index] = now;
        if (!before) s.items.done = Math.min(s.items.done + 1, s.items.total || Infinity);
        if (now === "failed" && before !== "failed") s.items.failed++;
        if (now !== "failed" && before === "failed") s.items.failed = Math.max(0, s.items.failed - 1);
      }
      return;
    }
    if (t === "step.scheduled") {
      this.scheduled[step + "|" + (e.visit || 1)] = e.at;
      s.status = "scheduled";
      s.visits = e.visit || s.visits + 1;
      s.attempts = 0;
      if (s.type === "router" || s.type === "start" || s.type === "end") this.attempt(e);
    } else if (t === "step.started") {
      if (Array.isArray(d.items) && s.items) {
        s.items.total = d.items.length;
        s.items.done = 0;
        s.items.failed = 0;
        this.items[step] = {};
      }
      if (s.status === "scheduled" || s.status === "retrying" || s.status === "running") s.status = "running";
      s.attempts = Math.max(s.attempts, e.attempt || 1);
      var a = this.attempt(e);
      if (!a.startMarked) { a.start = e.at; a.startMarked = true; }
    } else if (OUTCOME[t]) {
      s.status = OUTCOME[t];
      s.attempts = Math.max(s.attempts, e.attempt || 1);
      var b = this.attempt(e);
      b.end = e.at;
      b.status = OUTCOME[t];
      if (typeof d.duration_ms === "number") b.start = new Date(ms(e.at) - d.duration_ms).toISOString();
    } else if (t === "step.skipped") {
      s.status = "skipped";
      s.attempts = 0;
    } else if (t === "step.cancelled") {
      s.status = "cancelled";
      var self = this;
      Object.keys(this.attempts).forEach(function (k) {
        var x = self.attempts[k];
        if (x.step === step && !x.end) { x.end = e.at; x.status = "cancelled"; }
      });
    }
  };

  ExecutionPage.prototype.changed = function (step) {
    var self = this;
    if (step) (this.changedSteps || (this.changedSteps = {}))[step] = 1;
    if (step === this.selected || (!step && !this.selected)) this.refreshPanelSoon();
    if (this.dirty) return;
    this.dirty = true;
    window.requestAnimationFrame(function () {
      self.dirty = false;
      var names = Object.keys(self.changedSteps || {});
      self.changedSteps = {};
      names.forEach(function (n) { self.renderStep(n); });
      self.renderReached();
      if (self.eventsDirty) { self.eventsDirty = false; self.renderEventCount(); }
      self.renderTimeline();
    });
  };

  ExecutionPage.prototype.renderStep = function (name) {
    var s = this.steps[name];
    var node = this.nodes[name];
    if (node) {
      var keep = node.getAttribute("class").split(/\s+/).filter(function (c) { return c.indexOf("st-") !== 0; });
      var itemsFailed = s.items && s.items.total ? s.items.failed : 0;
      keep = keep.filter(function (c) { return c !== "items-failed"; });
      keep.push("st-" + s.status);
      if (itemsFailed) keep.push("items-failed");
      node.setAttribute("class", keep.join(" "));
      var prog = node.querySelector(".prog");
      if (prog) {
        prog.textContent = s.items && s.items.total ?
          s.items.done + "/" + s.items.total + (itemsFailed ? " · " + itemsFailed + " failed" : "") :
          (s.visits > 1 ? "↻" + s.visits + " " : "") + (s.attempts > 1 ? "×" + s.attempts : "");
      }
    }
    var row = this.rows[name];
    if (row) {
      var cell = row.querySelector(".cell-status");
      cell.textContent = "";
      cell.appendChild(badge(s.status));
      row.querySelector(".cell-attempts").textContent = s.attempts || "";
      row.querySelector(".cell-visits").textContent = s.visits || "";
      var last = this.lastAttempt(name);
      row.querySelector(".cell-duration").textContent = last && last.end ? durationText((ms(last.end) - ms(last.start)) / 1000) : "";
      if (s.items && s.items.total) {
        row.querySelector(".cell-progress").textContent = s.items.done + "/" + s.items.total + (s.items.failed ? " · " + s.items.failed + " failed" : "");
      }
    }
  };

  ExecutionPage.prototype.renderReached = function () {
    var el = $("#steps-reached");
    if (!el) return;
    var self = this;
    var reached = this.order.filter(function (n) { return self.steps[n].status !== "pending"; }).length;
    el.textContent = reached + " of " + this.order.length + " reached";
  };

  ExecutionPage.prototype.lastAttempt = function (name) {
    var best = null;
    var self = this;
    Object.keys(this.attempts).forEach(function (k) {
      var a = self.attempts[k];
      if (a.step === name && (!best || a.visit > best.visit || (a.visit === best.visit && a.attempt > best.attempt))) best = a;
    });
    return best;
  };

  ExecutionPage.prototype.setStatus = function (status) {
    this.status = status;
    var holder = $("#exec-status");
    holder.textContent = "";
    holder.appendChild(badge(status));
    $("#cancel-button").hidden = status !== "running";
    $("#resume-button").hidden = !(status === "failed" || status === "cancelled");
    if (status === "running" && !this.source && this.started) this.connect();
    this.started = true;
    this.renderDuration();
  };

  ExecutionPage.prototype.renderDuration = function () {
    var el = $("#exec-duration");
    var end = this.endedAt ? ms(this.endedAt) : now();
    el.textContent = durationText((end - ms(this.startedAt)) / 1000);
  };

  ExecutionPage.prototype.act = function (action) {
    var self = this;
    var btn = $("#" + action + "-button");
    var err = $("#action-error");
    btn.disabled = true;
    showError(err, "");
    api("POST", "/api/executions/" + encodeURIComponent(this.id) + "/" + action, {}).then(function (out) {
      btn.disabled = false;
      if (action === "resume") {
        self.endedAt = null;
        self.setStatus("running");
      } else if (out && out.status && TERMINAL[out.status]) {
        self.setStatus(out.status);
      }
    }).catch(function (e) {
      btn.disabled = false;
      showError(err, "Could not " + action + ": " + e.message);
    });
  };

  ExecutionPage.prototype.select = function (name) {
    if (name && !this.steps[name]) name = null;
    this.selected = name;
    var self = this;
    Object.keys(this.nodes).forEach(function (n) { self.nodes[n].classList.toggle("selected", n === name); });
    Object.keys(this.rows).forEach(function (n) { self.rows[n].classList.toggle("selected", n === name); });
    $$(".tl-row").forEach(function (r) { r.classList.toggle("selected", r.getAttribute("data-step") === name); });
    var hash = name ? "#step=" + encodeURIComponent(name) : " ";
    if (window.history && window.history.replaceState) window.history.replaceState(null, "", hash === " " ? window.location.pathname : hash);
    if (name && this.nodes[name] && this.nodes[name].scrollIntoView) {
      this.nodes[name].scrollIntoView({ block: "nearest", inline: "nearest" });
    }
    this.refreshPanel();
  };

  ExecutionPage.prototype.refreshPanelSoon = function () {
    var self = this;
    if (this.panelTimer) return;
    this.panelTimer = setTimeout(function () { self.panelTimer = null; self.refreshPanel(); }, 250);
  };

  ExecutionPage.prototype.refreshPanel = function () {
    var panel = $("#panel");
    var wanted = this.selected;
    var url = "/ui/executions/" + encodeURIComponent(this.id) + "/panel" + (wanted ? "?step=" + encodeURIComponent(wanted) : "");
    var self = this;
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
      if (self.selected !== wanted) return; // a newer selection won
      panel.innerHTML = html;
      refreshTimes();
    });
  };

  ExecutionPage.prototype.renderTimeline = function () {
    var box = $("#timeline");
    var self = this;
    var list = Object.keys(this.attempts).map(function (k) { return self.attempts[k]; }).filter(function (a) { return a.start; });
    if (!list.length) return;
    var t0 = ms(this.startedAt);
    var t1 = this.endedAt ? ms(this.endedAt) : now();
    list.forEach(function (a) { t1 = Math.max(t1, a.end ? ms(a.end) : now()); });
    var total = Math.max(t1 - t0, 1);
    var byStep = {};
    list.forEach(function (a) { (byStep[a.step] || (byStep[a.step] = [])).push(a); });
    var frag = document.createDocumentFragment();
    var axis = document.createElement("div");
    axis.className = "tl-axis";
    axis.appendChild(document.createElement("span")).textContent = "step";
    var ticks = axis.appendChild(document.createElement("div"));
    ticks.className = "tl-ticks";
    for (var i = 0; i <= 4; i++) {
      var tick = ticks.appendChild(document.createElement("span"));
      tick.className = "tl-tick";
      tick.style.left = (i * 25) + "%";
      if (i === 4) tick.style.transform = "translateX(-100%)";
      if (i === 0) tick.style.transform = "none";
      tick.textContent = "+" + durationText((total * i) / 4000);
    }
    axis.appendChild(document.createElement("span")).textContent = "took";
    frag.appendChild(axis);
    this.order.forEach(function (name) {
      var attempts = byStep[name];
      if (!attempts) return;
      var row = document.createElement("div");
      row.className = "tl-row" + (name === self.selected ? " selected" : "");
      row.setAttribute("data-step", name);
      var label = row.appendChild(document.createElement("span"));
      label.className = "tl-name";
      label.textContent = name;
      label.title = name;
      var track = row.appendChild(document.createElement("div"));
      track.className = "tl-track";
      var took = 0;
      attempts.forEach(function (a) {
        var start = ms(a.start), end = a.end ? ms(a.end) : now();
        var bar = track.appendChild(document.createElement("span"));
        bar.className = "tl-bar st-" + a.status;
        bar.style.left = ((start - t0) / total * 100).toFixed(3) + "%";
        bar.style.width = Math.max((end - start) / total * 100, 0.15).toFixed(3) + "%";
        bar.title = name + " attempt " + a.attempt + " (visit " + a.visit + "): " + a.status + ", " + durationText((end - start) / 1000);
        took = (end - start) / 1000;
      });
      var dur = row.appendChild(document.createElement("span"));
      dur.className = "tl-dur";
      dur.textContent = durationText(took);
      row.addEventListener("click", function () { self.select(name); });
      frag.appendChild(row);
    });
    box.textContent = "";
    box.appendChild(frag);
    $("#timeline-range").textContent = durationText(total / 1000) + " from start" + (this.endedAt ? "" : " (running)");
  };

  function initExecution() {
    var data = $("#live-data");
    if (!data) return;
    var parsed = JSON.parse(data.textContent);
    skew = ms(parsed.now) - Date.now();
    var page = new ExecutionPage(parsed);
    window.replaybookExecution = page; // for debugging in the console
    page.start();
  }

  document.addEventListener("DOMContentLoaded", function () {
    initCommon();
    initGraphFit();
    initStartForm();
    initScheduleForm();
    initSchedules();
    initExecutionsList();
    initExecution();
  });
})();
