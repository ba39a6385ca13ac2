// The list, detail and review views, registered on window.llmloopConsole.views.
"use strict";
(function () {
  const { api, el, query, drawTable, cell, format, views, pageData } = window.llmloopConsole;
  const post = (path, body) => api(path, { method: "POST", body: JSON.stringify(body) });
  const when = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "");
  const tag = (text, cls) => el("span", { class: "tag " + (cls || "") }, text);

  function confirmDialog(message, confirmLabel) {
    // A real <dialog>: the test (and the person) must press the button to go on.
    return new Promise((resolve) => {
      const dialog = el("dialog", { id: "confirm" },
        el("p", {}, message),
        el("button", { id: "confirm-yes", class: "danger", onclick: () => { dialog.close(); dialog.remove(); resolve(true); } }, confirmLabel),
        " ",
        el("button", { id: "confirm-no", class: "secondary", onclick: () => { dialog.close(); dialog.remove(); resolve(false); } }, "Cancel"));
      document.body.append(dialog);
      dialog.showModal();
    });
  }

  function notice(root, text, cls) {
    const p = el("p", { class: cls || "muted", id: "notice" }, text);
    const old = document.getElementById("notice");
    if (old) old.replaceWith(p); else root.prepend(p);
  }

  // --- conversations ---------------------------------------------------------------------
  views.conversations = async function (root) {
    const params = new URLSearchParams(window.location.search);
    const search = el("form", { class: "filters", id: "search" },
      el("label", {}, "Search prompts, answers, trace or session id", el("input", { name: "q", value: params.get("q") || "", size: 40 })),
      el("label", {}, "Flag", el("select", { name: "flag" }, ["", "feedback", "negative", "low_confidence", "toxic", "refusal", "pii"].map((f) =>
        el("option", { value: f, selected: params.get("flag") === f ? "selected" : null }, f || "any")))),
      el("button", { type: "submit" }, "Search"));
    search.addEventListener("submit", (e) => {
      e.preventDefault();
      params.set("q", search.elements.q.value); params.set("flag", search.elements.flag.value); params.delete("before");
      window.location.search = params.toString();
    });
    const list = el("div", { id: "conversation-list" });
    const pager = el("div", { class: "pager" });
    root.replaceChildren(search, list, pager);
    const page = await api("/console/api/conversations?" + query());
    const data = {
      columns: ["time", "model", "model_version", "prompt_version", "prompt", "completion", "latency", "flags", "feedback"],
      rows: page.rows.map((r) => [when(r.ts), r.model, r.model_version, r.prompt_version, r.prompt, r.completion,
        format("ms", r.latency_ms), (r.flags || []).join(" "), `+${r.feedback.up} / -${r.feedback.down}`]),
    };
    drawTable(list, data, (row, i) => { window.location = "/console/conversations/" + page.rows[i].id; });
    list.dataset.rows = page.rows.length;
    if (page.next_before) {
      pager.append(el("a", { class: "button", id: "older", href: "?" + query({ before: page.next_before }) }, "Older →"));
    }
  };

  views.conversation = async function (root) {
    const c = await api("/console/api/conversations/" + encodeURIComponent(pageData.id));
    const title = c.by === "single" ? "A single completion" : `${c.by} ${c.key}: ${c.steps.length} step(s)`;
    root.replaceChildren(el("p", { class: "muted" }, title));
    c.steps.forEach((s, i) => {
      const e = s.enrichment || {};
      const flags = [e.toxic ? tag("toxic", "bad") : "", e.refusal ? tag("refusal", "bad") : "", ...(e.pii || []).map((p) => tag("pii:" + p, "bad"))];
      const fb = s.feedback.length
        ? el("table", { class: "feedback" }, el("tr", {}, ["time", "kind", "source", "value", "comment / correction", "user"].map((h) => el("th", {}, h))),
          s.feedback.map((f) => el("tr", {}, el("td", {}, when(f.ts)), el("td", {}, f.kind), el("td", {}, f.source),
            el("td", {}, f.kind === "preference" ? (f.completion_id === s.id ? "chosen" : "rejected") : cell("", f.value)),
            el("td", {}, f.correction || f.comment || ""), el("td", {}, f.user_id || ""))))
        : el("p", { class: "muted" }, "no feedback");
      root.append(el("div", { class: "step" + (s.id === c.focus ? " focus" : ""), "data-step": i },
        el("h3", {}, `Step ${i + 1} · ${s.model} ${s.model_version} · ${s.prompt_version} · ${when(s.ts)}`),
        el("p", { class: "muted" }, `id ${s.id} · trace ${s.trace_id || "-"} · parent ${s.parent_id || "-"} · session ${s.session_id || "-"} · user ${s.user_id || "-"}`),
        el("p", {}, `tokens ${e.prompt_tokens ?? s.prompt_tokens ?? "?"} + ${e.completion_tokens ?? s.completion_tokens ?? "?"}`,
          ` · latency ${format("ms", s.latency_ms)} · cost ${format("currencyUSD", e.cost_usd ?? s.cost_usd)}`,
          ` · sentiment ${cell("", e.completion_sentiment)} · toxicity ${cell("", e.completion_toxicity)} `, flags),
        el("strong", {}, "Prompt"), el("pre", {}, s.prompt),
        el("strong", {}, "Completion"), el("pre", {}, s.completion),
        el("strong", {}, "Feedback"), fb));
    });
  };

  // --- alerts ----------------------------------------------------------------------------
  async function replayButton(root, project, ids, label) {
    return el("button", {
      class: "danger replay", onclick: async () => {
        if (!(await confirmDialog(`Send ${ids.length} dead-lettered notification(s) again?`, "Replay"))) return;
        try {
          const out = await post("/console/api/alerts/replay", { project, notification_ids: ids });
          notice(root, `queued ${out.queued} notification(s) again`);
        } catch (err) { notice(root, err.message, "error"); }
      },
    }, label);
  }

  views.alerts = async function (root) {
    const out = await api("/console/api/alerts?" + query());
    const list = el("div", { id: "alert-list" });
    root.replaceChildren(el("h3", {}, "Alerts"), list);
    drawTable(list, {
      columns: ["status", "rule", "severity", "labels", "value", "threshold", "first fired", "updated"],
      rows: out.alerts.map((a) => [a.status, a.rule, a.severity, a.latest_labels, a.value, a.threshold, when(a.first_fired), when(a.updated_at)]),
    }, (row, i) => { window.location = "/console/alerts/" + out.alerts[i].fingerprint; });
    const dead = el("div", { id: "dead-letters" });
    root.append(el("h3", {}, "Dead letters"), dead);
    drawTable(dead, {
      columns: ["dead-lettered", "rule", "receiver", "type", "http", "error", "failed attempts"],
      rows: out.dead_letters.map((d) => [when(d.dead_lettered_at), d.rule, d.receiver, d.receiver_type, d.http_status, d.error, d.failed_attempts]),
    });
    const byProject = {};
    for (const d of out.dead_letters) (byProject[d.project_id] = byProject[d.project_id] || []).push(d.notification_id);
    for (const [project, ids] of Object.entries(byProject)) root.append(await replayButton(root, project, ids, `Replay ${ids.length} dead letter(s) of ${project}`));
  };

  views.alert = async function (root) {
    const a = await api("/console/api/alerts/" + encodeURIComponent(pageData.fp));
    const chart = el("div", { id: "metric-history" });
    root.replaceChildren(
      el("p", {}, tag(a.alert.status, a.alert.status === "firing" ? "bad" : "ok"), ` ${a.alert.rule} · ${cell("", a.alert.labels)} · value ${cell("", a.alert.value)} (threshold ${cell("", a.alert.threshold)})`),
      el("p", { class: "muted" }, (a.alert.annotations || {}).summary || ""),
      el("p", {}, el("a", { id: "review-window", href: "/console/review?" + new URLSearchParams({
        kind: "single", flag: "negative", project: a.alert.project_id, model: (a.alert.labels || {}).model || "",
        from: Math.floor(a.changes[0].ts - 3600), to: Math.ceil((a.alert.ends_at || a.changes[a.changes.length - 1].ts) + 600),
      }).toString() }, "Review the negatively rated answers of this alert's window →"), " · ",
        el("a", { id: "conversations-window", href: "/console/conversations?" + new URLSearchParams({
          project: a.alert.project_id, model: (a.alert.labels || {}).model || "",
          from: Math.floor(a.changes[0].ts - 3600), to: Math.ceil((a.alert.ends_at || a.changes[a.changes.length - 1].ts) + 600),
        }).toString() }, "Conversations of this alert's window (e.g. a drift window) →")),
      el("h3", {}, `Metric history: ${a.metric || "?"}`), chart);
    if (a.history.length) {
      const series = [{}, { label: a.metric, stroke: "#2f6fdf", width: 1.5, points: { show: true } }];
      const cols = [a.history.map((h) => h.time), a.history.map((h) => h.value)];
      if (a.threshold_line != null) { series.push({ label: "alert threshold", stroke: "#c62828", dash: [6, 4] }); cols.push(a.history.map(() => a.threshold_line)); }
      new uPlot({ width: Math.max(320, root.clientWidth - 20), height: 240, series }, cols, chart);
    } else chart.append(el("p", { class: "muted" }, "no metric rows for this alert's labels"));
    const changes = el("div", { id: "alert-changes" });
    const deliveries = el("div", { id: "deliveries" });
    const dead = el("div", { id: "alert-dead-letters" });
    root.append(el("h3", {}, "State changes"), changes, el("h3", {}, "Notifications and delivery attempts"), deliveries, el("h3", {}, "Dead letters"), dead);
    drawTable(changes, { columns: ["time", "status", "value", "threshold"], rows: a.changes.map((c) => [when(c.ts), c.status, c.value, c.threshold]) });
    drawTable(deliveries, {
      columns: ["time", "notification", "status", "receiver", "type", "attempt", "outcome", "http", "error", "ms"],
      rows: a.deliveries.map((d) => [when(d.ts), d.notification_id.slice(0, 12), d.status, d.receiver, d.receiver_type, d.attempt, d.outcome, d.http_status, d.error, d.duration_ms]),
    });
    deliveries.dataset.rows = a.deliveries.length;
    drawTable(dead, { columns: ["dead-lettered", "receiver", "error", "failed attempts"], rows: a.dead_letters.map((d) => [when(d.dead_lettered_at), d.receiver, d.error, d.failed_attempts]) });
    if (a.dead_letters.length) root.append(await replayButton(root, a.alert.project_id, a.dead_letters.map((d) => d.notification_id), "Replay dead letters"));
  };

  // --- retraining ------------------------------------------------------------------------
  views.retraining = async function (root) {
    const r = await api("/console/api/retraining?" + query());
    const sections = {
      jobs: el("div", { id: "jobs" }), versions: el("div", { id: "versions" }), counts: el("div", { id: "pair-counts" }),
      pairs: el("div", { id: "pairs" }), datasets: el("div", { id: "datasets" }),
    };
    root.replaceChildren(
      el("h3", {}, "Jobs"), sections.jobs, el("h3", {}, "Model versions and gate verdicts"), sections.versions,
      el("h3", {}, "Preference pairs"), sections.counts, sections.pairs, el("h3", {}, "Dataset versions"), sections.datasets);
    drawTable(sections.jobs, {
      columns: ["job", "model", "stage", "progress", "message", "dataset", "model version", "requested", "updated"],
      rows: r.jobs.map((j) => [j.job_id, j.model, j.stage, j.progress == null ? "" : Math.round(j.progress * 100) + "%", j.message, j.dataset_version, j.model_version, when(j.requested_at), when(j.updated_at)]),
    });
    const table = el("table", {}, el("tr", {}, ["model", "version", "status", "gate", "reasons", "dataset", "registered", ""].map((h) => el("th", {}, h))));
    for (const v of r.versions) {
      const button = v.status === "promoted" ? "" : el("button", {
        class: v.gate_passed ? "promote" : "promote danger", "data-version": v.version, onclick: async () => {
          const warn = v.gate_passed ? "" : " Its evaluation gate FAILED: promoting it overrides the gate.";
          if (!(await confirmDialog(`Promote ${v.version} (${v.model}) to serve?${warn}`, v.gate_passed ? "Promote" : "Override the gate and promote"))) return;
          try {
            await post(`/console/api/models/${encodeURIComponent(v.version)}/promote`, { project: v.project_id, override_failed_gate: !v.gate_passed });
            notice(root, `promoted ${v.version}; the page shows it once the processor has recorded it`);
          } catch (err) { notice(root, err.message, "error"); }
        },
      }, "Promote…");
      table.append(el("tr", {}, el("td", {}, v.model), el("td", {}, v.version), el("td", {}, v.status),
        el("td", {}, tag(v.gate_passed ? "passed" : "failed", v.gate_passed ? "ok" : "bad")), el("td", {}, (v.gate_reasons || []).join("; ")),
        el("td", {}, v.dataset_version), el("td", {}, when(v.registered_at)), el("td", {}, button)));
    }
    sections.versions.replaceChildren(r.versions.length ? table : el("span", { class: "muted" }, "no model versions yet"));
    drawTable(sections.counts, { columns: ["project", "model", "source", "pairs"], rows: r.pair_counts.map((c) => [c.project, c.model, c.source, c.pairs]) });
    drawTable(sections.pairs, {
      columns: ["model", "source", "prompt", "chosen", "rejected", "made"],
      rows: r.pairs.map((p) => [p.model, p.source, typeof p.prompt === "string" ? p.prompt : JSON.stringify(p.prompt), p.chosen, p.rejected, p.created_at]),
    });
    sections.pairs.dataset.rows = r.pairs.length;
    const live = r.jobs.some((j) => !["succeeded", "failed", "model_registered", "model_promoted"].includes(j.stage));
    if (live && !root.dataset.refreshing) {  // jobs with live progress: refresh while one runs
      root.dataset.refreshing = "1";
      setTimeout(() => { delete root.dataset.refreshing; views.retraining(root); }, 5000);
    }
    drawTable(sections.datasets, {
      columns: ["model", "version", "created", "pairs", "train / eval", "by source", "dropped", "filters applied", "sample pair"],
      rows: r.datasets.map((d) => [d.model, d.version, d.created_at, (d.counts || {}).pairs, `${(d.counts || {}).train} / ${(d.counts || {}).eval}`,
        (d.counts || {}).by_source || {}, (d.counts || {}).dropped || {}, (d.filters || []).join(", "),
        (d.sample || []).slice(0, 1).map((p) => `${JSON.stringify(p.prompt).slice(0, 80)} → chosen: ${JSON.stringify(p.chosen).slice(0, 80)} / rejected: ${JSON.stringify(p.rejected).slice(0, 80)}`).join("")]),
    });
    if (!r.operations) sections.datasets.append(el("p", { class: "muted" }, "this console has no retraining state beside it"));
  };

  // --- review ----------------------------------------------------------------------------
  views.review = async function (root) {
    const params = new URLSearchParams(window.location.search);
    const kind = params.get("kind") || "pair";
    const bar = el("form", { class: "filters", id: "queue" },
      el("label", {}, "Queue", el("select", { name: "kind" },
        el("option", { value: "pair", selected: kind === "pair" ? "selected" : null }, "pick the better of two answers"),
        el("option", { value: "single", selected: kind === "single" ? "selected" : null }, "rate or correct one answer"))),
      el("label", {}, "Only", el("select", { name: "flag" }, ["", "negative", "low_confidence", "toxic", "refusal", "pii"].map((f) =>
        el("option", { value: f, selected: params.get("flag") === f ? "selected" : null },
          { "": "everything", negative: "negatively rated", low_confidence: "low confidence (a judge scored it low)" }[f] || f)))),
      el("button", { type: "submit" }, "Load"));
    bar.addEventListener("submit", (e) => { e.preventDefault(); params.set("kind", bar.elements.kind.value); params.set("flag", bar.elements.flag.value); window.location.search = params.toString(); });
    if (params.get("from")) bar.append(el("span", { class: "muted" }, ` answers from ${when(+params.get("from"))} to ${when(+params.get("to"))} (an alert's window)`));
    const box = el("div", { id: "review-item" });
    root.replaceChildren(bar, box);
    const { item } = await api("/console/api/review/next?" + query({ kind }));
    if (!item) { box.append(el("p", { class: "muted", id: "queue-empty" }, "Nothing to review with these filters.")); return; }
    const judge = async (body) => {
      try {
        const out = await post("/console/api/review/judge", Object.assign({ key: item.key }, body));
        box.replaceChildren(el("p", { id: "judged" }, `sent ${out.sent.join(", ")} feedback (${out.event_ids.join(", ")})`),
          el("a", { class: "button", href: "?" + params.toString() }, "Next item"));
      } catch (err) { notice(root, err.message, "error"); }
    };
    const skip = el("button", { class: "secondary", id: "skip", onclick: async () => { await post("/console/api/review/skip", { key: item.key }); window.location.reload(); } }, "Skip");
    box.append(el("p", { class: "muted" }, `${item.project} · ${item.model}`), el("strong", {}, "Prompt"), el("pre", { class: "prompt" }, item.prompt));
    if (item.kind === "pair") {
      box.append(el("div", { class: "pair" }, item.answers.map((a, i) => el("div", { class: "answer", "data-answer": i },
        el("p", { class: "muted" }, `${a.model_version} · ${a.prompt_version}`), el("pre", {}, a.completion),
        el("button", { class: "choose", "data-id": a.id, onclick: () => judge({ verdict: "preference", chosen_id: a.id }) }, "This one is better")))), skip);
    } else {
      const a = item.answers[0];
      const correction = el("textarea", { rows: 4, cols: 80, name: "correction", placeholder: "what the answer should have been" });
      box.append(el("div", { class: "answer" }, el("pre", {}, a.completion),
        el("p", {}, "Rate: ", [1, 2, 3, 4, 5].map((n) => el("button", { class: "secondary score", "data-score": n, onclick: () => judge({ verdict: "score", completion_id: a.id, value: n }) }, String(n)))),
        correction, el("p", {}, el("button", { id: "send-correction", onclick: () => judge({ verdict: "correction", completion_id: a.id, correction: correction.value }) }, "Send correction"))), skip);
    }
  };
})();
